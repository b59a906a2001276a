"""The one click type and its one padder.

A click is `Click(y, x, positive)` in image pixels everywhere: the simulated users, NoC logs, training's extra click
rounds, the Predictor, the export and the demo. A plain `(y, x, positive)` tuple is accepted wherever users pass
clicks (`as_click`). At the network boundary clicks become padded tensors: per sign, (B, K, 2) (y, x) coordinates
with a (B, K) validity mask (`pad_clicks`, `click_tensors`), K ≥ 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch


@dataclass(frozen=True)
class Click:
    """One click at pixel (y, x); positive clicks add to the object, negative ones remove from it."""

    y: int
    x: int
    positive: bool

    def to_json(self) -> list:
        """The NoC log's form: `["+" or "-", y, x]`."""
        return ["+" if self.positive else "-", self.y, self.x]


#: A click as users write it: a `Click` or a (y, x, positive) tuple.
ClickLike = Click | tuple[int, int, bool]


def as_click(click: ClickLike) -> Click:
    """A `Click` from a `Click` or a (y, x, positive) tuple (anything else is a ValueError saying the form)."""
    if isinstance(click, Click):
        return click
    try:
        y, x, positive = click
    except (TypeError, ValueError):
        raise ValueError(f"a click is a Click or a (y, x, positive) tuple, got {click!r}") from None
    return Click(int(y), int(x), bool(positive))


def clicks_from_points(point_coords: object, point_labels: object) -> list[Click]:
    """Clicks from Segment Anything's form: `point_coords` (N, 2) as (x, y) pixels (floats are rounded) and
    `point_labels` (N,) with 1 = positive, 0 = negative (SAM's other labels, e.g. -1 padding, are refused)."""
    coords = np.asarray(point_coords, dtype=np.float64)
    labels = np.asarray(point_labels)
    if coords.ndim != 2 or coords.shape[1] != 2 or labels.shape != (coords.shape[0],):
        raise ValueError(f"point_coords must be (N, 2) (x, y) and point_labels (N,), got shapes {coords.shape} and "
                         f"{labels.shape}")
    if not np.isin(labels, (0, 1)).all() or not np.isfinite(coords).all():
        raise ValueError("point_labels must be 1 (positive) or 0 (negative) and point_coords finite")
    return [Click(round(y), round(x), bool(label)) for (x, y), label in zip(coords.tolist(), labels.tolist(),
                                                                               strict=True)]


class PaddedClicks(NamedTuple):
    """Clicks of one sign for a batch: (B, K, 2) (y, x) coordinates and the (B, K) mask of the real ones."""

    coords: torch.Tensor
    valid: torch.Tensor


def pad_clicks(points: Sequence[np.ndarray | Sequence[tuple[int, int]]], multiple: int = 1) -> PaddedClicks:
    """Per sample (y, x) point lists -> int32 (B, K, 2) coordinates and their (B, K) validity mask.

    K is the longest list (at least 1), rounded up to a multiple of `multiple` (the loader pads to a few shapes so
    compiled graphs vary little).
    """
    arrays = [np.asarray(p, np.int32).reshape(-1, 2) for p in points]
    k = max([1, *(len(a) for a in arrays)])
    k = -(-k // multiple) * multiple
    coords = np.zeros((len(arrays), k, 2), np.int32)
    valid = np.zeros((len(arrays), k), bool)
    for i, a in enumerate(arrays):
        coords[i, :len(a)] = a
        valid[i, :len(a)] = True
    return PaddedClicks(torch.from_numpy(coords), torch.from_numpy(valid))


def click_tensors(clicks: Sequence[Sequence[Click]], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """One click list per image -> the batch keys of the network input: `pos`, `pos_valid`, `neg`, `neg_valid`
    (coordinates as float32, the exported graphs' input type)."""
    batch = {}
    for sign, positive in (("pos", True), ("neg", False)):
        padded = pad_clicks([[(c.y, c.x) for c in row if c.positive == positive] for row in clicks])
        batch[sign], batch[f"{sign}_valid"] = padded.coords.float().to(device), padded.valid.to(device)
    return batch
