"""Figures for every tool, drawn with matplotlib's object API on an Agg canvas: no pyplot state, no global backend
switch and no display, so plotting works on servers and inside worker threads. PNGs are written atomically and
carry the `Software` text "ifcn", so a command can tell its own earlier figure (which it may replace) from a user's
file (which it must not)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ifcn.io import atomic_write_bytes

DPI = 100
#: The PNG `Software` text every figure carries, by which `is_own_png` tells this tool's files from a user's.
SOFTWARE = "ifcn"


def blank_figure(width: float, height: float) -> Any:
    """An empty figure of `width` × `height` inches at `DPI` on its own Agg canvas (place axes with `add_axes`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def new_figure(width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    """(figure, axes) of `width` × `height` inches at `DPI`."""
    fig = blank_figure(width, height)
    return fig, fig.add_subplot()


def new_grid(width: float, height: float, rows: int, cols: int) -> tuple[Any, Any]:
    """(figure, rows × cols array of axes) of `width` × `height` inches at `DPI`."""
    fig = blank_figure(width, height)
    return fig, fig.subplots(rows, cols, squeeze=False)


def save_png(fig: Any, path: Path, *, tight: bool = True) -> None:
    """Render `fig` to `path` atomically (`tight` trims the margins to the drawn content)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": SOFTWARE},
                **({"bbox_inches": "tight"} if tight else {}))
    atomic_write_bytes(Path(path), buf.getvalue())


def is_own_png(path: Path) -> bool:
    """Whether `path` is a PNG written by `save_png` (so a command may write it again)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == SOFTWARE
    except (OSError, UnidentifiedImageError, ValueError):
        return False
