"""No-learning baselines for `ifcn-eval noc --baseline NAME`: predictors without a model or checkpoint, run by the
same NoC engine, clicker and protocol on the same objects, so that they sit in the same table as trained models.

`grabcut`: OpenCV GrabCut initialised from the clicks alone (`grabcut.click_seed_mask`: positive clicks sure
foreground, negative sure background, the box around the positives grown by a margin probable foreground, the rest
sure background), 5 iterations, the RNG reseeded per call so that results depend on the inputs only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ifcn.trainer.evaluation.clicker import Click
from ifcn.trainer.inference.grabcut import grabcut_from_clicks

#: A baseline's mask of one RGB uint8 image (H, W, 3) from its clicks: a bool (H, W) array.
MaskFromClicks = Callable[[np.ndarray, Sequence[Click]], np.ndarray]
BASELINES: dict[str, MaskFromClicks] = {"grabcut": grabcut_from_clicks}


class BaselinePredictor:
    """The `Predictor` of a baseline: each object's mask as probabilities 0/1, on the CPU, `workers` threads (OpenCV
    releases the GIL)."""

    prev_mask = False

    def __init__(self, name: str, workers: int = 1) -> None:
        if name not in BASELINES:
            raise ValueError(f"unknown --baseline {name!r}; choose one of {sorted(BASELINES)}")
        self.name, self.workers, self.device = name, workers, torch.device("cpu")
        self._mask = BASELINES[name]

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        rgb = images.permute(0, 2, 3, 1).cpu().numpy()
        jobs = list(zip(rgb, clicks, strict=True))
        if self.workers > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(min(self.workers, len(jobs))) as pool:
                masks = list(pool.map(lambda job: self._mask(*job), jobs))
        else:
            masks = [self._mask(*job) for job in jobs]
        return torch.from_numpy(np.stack(masks)).float()
