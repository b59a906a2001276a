"""Iterative click training (`ifcn-train --iterative N`): clicks placed on the model's own errors during training, as
RITM ("Reviving Iterative Training with Mask Guidance for Interactive Segmentation", Sofiiuk et al. 2022) trains.

At test time every click after the first answers the model's own mistakes, while the shards' clicks are simulated from
the ground truth alone. So, for a batch, with probability P, k extra rounds (k uniform in 1..N) run before the
training step, without gradients and with the model in eval mode (BatchNorm on its running statistics, no dropout:
the predictions a user would see): predict with the current clicks, threshold at the standard protocol's 0.49, and add
one click per sample where the standard clicker (spec §6, `error_clicks.standard_clicks`, the evaluator's rule) puts
it on the prediction's errors. The step then trains on the final click set. The clicks sampled into the shards stay
the starting point; void and crop padding (target 255) are never clicked, and neither is a pixel clicked already.
With the default P = N/(N+1) the number of extra rounds is uniform in 0..N, which is how RITM draws it.

A `--prev-mask` model also sees the previous round's probabilities as a sixth input channel (zeros before the first
prediction), so the last extra round's prediction is part of the trained step's input.

The rounds of a batch come from a generator seeded by (seed, epoch, batch index in the epoch, rank): a resumed run
draws what the uninterrupted one drew, whatever the loader workers, and no global random state is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ifcn.labels import VOID
from ifcn.trainer.core.clickmaps import DEFAULT_SPEC
from ifcn.trainer.core.error_clicks import STANDARD_THRESHOLD, standard_clicks
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.core.inputs import INPUT_KEYS, PREV, batch_input
from ifcn.trainer.core.precision import autocast
from ifcn.trainer.evaluation.validation import EvalMode

#: Most extra rounds per batch: each costs a forward pass of the batch (RITM uses 3; the protocol makes 20 clicks).
MAX_ROUNDS = 20
#: Keeps the rounds' generator apart from the data order's, which is seeded by (seed, epoch, rank, group).
_STREAM = 12
#: What the rounds need of a batch on the device.
_KEYS = (*INPUT_KEYS, "target")


def default_prob(max_rounds: int) -> float:
    """The default `--iterative-prob`: N/(N+1), so that the number of extra rounds is uniform in 0..N (RITM's draw)."""
    return max_rounds / (max_rounds + 1)


@dataclass(frozen=True)
class IterativeSettings:
    """`--iterative N` (`max_rounds`), `--iterative-prob P` (`prob`), and whose draws these are (`seed`, `rank`).
    Checked where they are set (`TrainConfig`)."""

    max_rounds: int
    prob: float
    seed: int
    rank: int = 0

    def rounds(self, epoch: int, step: int) -> int:
        """The extra rounds of batch `step` (0-based) of epoch `epoch` on this rank: 0 with probability 1 - P, else
        uniform in 1..N."""
        rng = np.random.default_rng([self.seed, epoch, step, self.rank, _STREAM])
        if rng.random() >= self.prob:
            return 0
        return int(rng.integers(1, self.max_rounds + 1))


def clicked_pixels(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(B, H, W) bool: the pixels of the batch's valid clicks of either sign (never clicked again)."""
    b, h, w = batch["target"].shape
    clicked = torch.zeros(b, h, w, dtype=torch.bool, device=batch["target"].device)
    for sign in ("pos", "neg"):
        valid = batch[f"{sign}_valid"]
        rows = torch.arange(b, device=valid.device).unsqueeze(1).expand_as(valid)[valid]
        yx = batch[sign][valid].long()
        clicked[rows, yx[:, 0], yx[:, 1]] = True
    return clicked


def add_clicks(batch: Mapping[str, torch.Tensor], found: torch.Tensor, positive: torch.Tensor, ys: torch.Tensor,
               xs: torch.Tensor) -> dict[str, torch.Tensor]:
    """`batch` with one more click slot per sign: sample i's click (ys[i], xs[i]) is valid in `pos` where `found` and
    `positive`, in `neg` where `found` and not `positive`, and padding elsewhere (the padded layout of the loader)."""
    out = dict(batch)
    for sign, chosen in (("pos", found & positive), ("neg", found & ~positive)):
        yx = torch.stack([ys, xs], dim=1).to(batch[sign].dtype)
        out[sign] = torch.cat([batch[sign], yx.unsqueeze(1)], dim=1)
        out[f"{sign}_valid"] = torch.cat([batch[f"{sign}_valid"], chosen.unsqueeze(1)], dim=1)
    return out


def click_rounds(model: torch.nn.Module, batch: Mapping[str, torch.Tensor], rounds: int, *, device: torch.device,
                 precision: str = "fp32", channels_last: bool = False, spec: InputSpec = DEFAULT_SPEC,
                 threshold: float = STANDARD_THRESHOLD) -> dict[str, torch.Tensor]:
    """`batch` (the loader's layout) after `rounds` extra click rounds, its tensors on `device`: one more click slot
    per sign and round and, with `spec.prev_mask`, `prev` = the last round's probabilities (zeros after no round).

    `model` must be the bare network (no DDP or torch.compile wrapper): the rounds are per-rank inference, with no
    collective and no recompilation for eval mode. It is in eval mode for the rounds and back in its mode after.
    """
    out = {k: batch[k].to(device, non_blocking=True) for k in _KEYS}
    target = out["target"]
    if spec.prev_mask:
        out[PREV] = torch.zeros(target.shape, device=device)
    gt, ignore = target == 1, target == VOID
    clicked = clicked_pixels(out)
    with EvalMode(model), torch.no_grad():
        for _ in range(rounds):
            x = batch_input(out, device, spec, channels_last)
            with autocast(device, precision):
                logits = model(x)
            probs = torch.sigmoid(logits[:, 0].float())
            found, positive, ys, xs = standard_clicks(gt, probs > threshold, ignore, clicked)
            out = add_clicks(out, found, positive, ys, xs)
            hit = found.nonzero()[:, 0]
            clicked[hit, ys[hit], xs[hit]] = True
            if spec.prev_mask:
                out[PREV] = probs
    return out
