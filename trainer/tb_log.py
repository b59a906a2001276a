"""TensorBoard output of a run (`--tensorboard`, rank 0 only): every metrics record as scalars and, at each
validation, a few validation items drawn as [image with clicks | target | prediction].

TensorBoard is an optional extra (`pip install -e ".[tensorboard]"`); asking for it without the package installed is
refused up front with that command, never silently ignored.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ifcn.palette import voc_colormap
from ifcn.shards.manifest import ShardSet
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.data.items import Item
from ifcn.trainer.evaluation.validation import EvalMode, eval_items, forward_items
from ifcn.trainer.train_config import SetupError

INSTALL = 'pip install -e ".[tensorboard]" (or: pip install tensorboard)'
#: Validation items drawn at each validation.
PREVIEW_ITEMS = 4
CLICK_RADIUS = 3
POSITIVE_RGB, NEGATIVE_RGB = (0, 255, 0), (255, 0, 0)


def draw_item(item: Item, prediction: np.ndarray) -> np.ndarray:
    """[image with clicks (green positive, red negative) | target | prediction] side by side, HWC uint8 RGB; labels in
    VOC colours (interactive: 1 = object, 255 = void)."""
    image = np.ascontiguousarray(item.image.copy())
    for points, colour in ((item.pos, POSITIVE_RGB), (item.neg, NEGATIVE_RGB)):
        for y, x in points:
            cv2.circle(image, (int(x), int(y)), CLICK_RADIUS, colour, -1)
    colours = voc_colormap()
    return np.concatenate([image, colours[item.target()], colours[prediction]], axis=1)


def validation_previews(model: torch.nn.Module, shards: ShardSet, task: str, device: torch.device, precision: str,
                        count: int = PREVIEW_ITEMS, spec: InputSpec | None = None) -> list[np.ndarray]:
    """The first `count` validation items of this rank, drawn by `draw_item` with the model's prediction (`prev_mask`:
    as in `validate_interactive`)."""
    drawings = []
    with EvalMode(model), torch.inference_mode():
        for item in islice(eval_items(shards, task), count):
            logits, _ = forward_items(model, [item], task, device, precision, spec)
            pred = (logits[0, 0] > 0) if task == "interactive" else logits[0].argmax(0)
            drawings.append(draw_item(item, pred.to(torch.uint8).cpu().numpy()))
    return drawings


def require_tensorboard() -> None:
    """Raise SetupError naming the install command when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise SetupError(f"--tensorboard needs the tensorboard package, which is not installed: {INSTALL}; "
                         "or drop --tensorboard (metrics.jsonl and curves.png hold the same numbers)") from None


class TensorBoardLog:
    """A SummaryWriter on `folder` (check `require_tensorboard` first)."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder))

    def scalars(self, record: dict[str, Any]) -> None:
        """Every number of a metrics record, as `<kind>/<name>` at the record's step."""
        for name, value in record.items():
            if isinstance(value, float | int) and not isinstance(value, bool) and name not in ("epoch", "step"):
                self.writer.add_scalar(f"{record['kind']}/{name}", value, record["step"])
        self.writer.flush()

    def images(self, drawings: list[np.ndarray], step: int) -> None:
        for i, drawing in enumerate(drawings):
            self.writer.add_image(f"val/{i}", drawing, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
