"""Matplotlib on a headless machine: figures made with the Agg backend, saved as PNG atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ifcn.pipeline.atomic import atomic_write_bytes


def new_figure(width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    """(figure, axes) on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def save_png(fig: Any, path: Path) -> None:
    """Render `fig` to `path` atomically and release it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
