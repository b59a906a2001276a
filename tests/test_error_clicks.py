"""The batched torch standard clicker equals the evaluator's numpy clicker, click for click."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.core.error_clicks import squared_depth, standard_clicks
from ifcn.trainer.evaluation.clicker import depth, standard_click


def _blobs(rng: np.random.Generator, shape: tuple[int, int], n: int) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for _ in range(n):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(1, max(2, shape[1] // 2))), int(rng.integers(1, max(2, shape[0] // 2))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask.astype(bool)


def _masks(rng: np.random.Generator, shape: tuple[int, int]) -> list[np.ndarray]:
    h, w = shape
    square = np.zeros(shape, bool)
    square[h // 4:3 * h // 4, w // 4:3 * w // 4] = True  # many pixels tie at the deepest value
    return [_blobs(rng, shape, 3), rng.random(shape) < 0.8, np.ones(shape, bool), np.zeros(shape, bool), square,
            np.eye(h, w, dtype=bool)]


@pytest.mark.parametrize("shape", [(1, 9), (7, 1), (23, 31), (64, 48)])
def test_squared_depth_equals_the_numpy_transform(shape: tuple[int, int]) -> None:
    masks = _masks(np.random.default_rng(shape[0] * 100 + shape[1]), shape)
    got = squared_depth(torch.from_numpy(np.stack(masks)))
    assert got.dtype == torch.int32
    for mask, values in zip(masks, got.numpy(), strict=True):
        np.testing.assert_array_equal(values, depth(mask))


def test_standard_clicks_equal_the_numpy_clicker_step_after_step() -> None:
    rng = np.random.default_rng(7)
    shape, n = (37, 45), 12
    gts = np.stack([_blobs(rng, shape, 2) for _ in range(n)])
    ignores = np.stack([_blobs(rng, shape, 1) & (rng.random(shape) < 0.5) for _ in range(n)])
    clicked = np.zeros((n, *shape), bool)
    gts[0] = False  # nothing to find but false positives
    seen_negative = seen_none = False
    for _ in range(6):
        preds = np.stack([_blobs(rng, shape, 2) for _ in range(n)])
        preds[1] = gts[1]  # a perfect prediction: no click
        expected = [standard_click(gts[i], preds[i], ignores[i], clicked[i]) for i in range(n)]
        found, positive, ys, xs = standard_clicks(*(torch.from_numpy(a) for a in (gts, preds, ignores, clicked)))
        got = [Click(int(y), int(x), bool(p)) if f else None
               for f, p, y, x in zip(found.tolist(), positive.tolist(), ys.tolist(), xs.tolist(), strict=True)]
        assert got == expected
        for i, click in enumerate(expected):
            seen_none |= click is None
            if click is not None:
                seen_negative |= not click.positive
                clicked[i, click.y, click.x] = True
    assert seen_negative and seen_none
