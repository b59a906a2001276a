"""Predictors: a batch of (image, clicks) in, foreground probabilities out.

The NoC engine only needs the `Predictor` protocol, so tests can drive it with rule-based predictors and the CLI
with a network (`ModelPredictor`), which builds its input with `ifcn.trainer.inputs.batch_input` exactly as the
trainer does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Protocol

import torch

from ifcn.trainer.evaluation.clicker import Click
from ifcn.trainer.inputs import PREV, batch_input
from ifcn.trainer.precision import autocast, check_precision


class Predictor(Protocol):
    """What the NoC engine calls once per click step for a batch of objects of one image size.

    A predictor with a true `prev_mask` attribute (a `--prev-mask` model) is also given `prev`, each object's
    previous probabilities (B, H, W) on `device` (zeros before its first click); others are called without it.
    """

    device: torch.device

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        """Foreground probabilities (B, H, W) for uint8 RGB `images` (B, 3, H, W) on `device`, one click list each."""
        ...


def click_tensors(clicks: Sequence[Sequence[Click]], positive: bool,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The clicks of one sign as padded (B, K, 2) (y, x) coordinates and a (B, K) validity mask (K >= 1)."""
    chosen = [[(c.y, c.x) for c in row if c.positive == positive] for row in clicks]
    k = max([1, *(len(row) for row in chosen)])
    coords = torch.zeros(len(chosen), k, 2, dtype=torch.float32)
    valid = torch.zeros(len(chosen), k, dtype=torch.bool)
    for i, row in enumerate(chosen):
        if row:
            coords[i, :len(row)] = torch.tensor(row, dtype=torch.float32)
            valid[i, :len(row)] = True
    return coords.to(device), valid.to(device)


@contextlib.contextmanager
def batch_invariant_kernels(device: torch.device) -> Iterator[None]:
    """Convolution kernels whose per-sample results do not depend on the batch size.

    oneDNN (CPU), NNPACK (CPU, batches of 16 or more) and cuDNN pick algorithms by batch shape, so the logits of one
    image can differ in the last bits (~1e-6) between batch sizes. PyTorch's native convolutions run one gemm per
    sample: bit-identical per sample whatever the batch, about 2x slower on the CPU. (Untested on CUDA here.)
    """
    if device.type == "cuda":
        with torch.backends.cudnn.flags(enabled=False):
            yield
        return
    previous = torch.backends.mkldnn.set_flags(_enabled=False, _allow_tf32=None, _fp32_precision=None)[0]
    try:
        with torch.backends.nnpack.flags(enabled=False):
            yield
    finally:
        torch.backends.mkldnn.set_flags(_enabled=previous, _allow_tf32=None, _fp32_precision=None)


class ModelPredictor:
    """An interactive network (5 input channels, or 6 with `prev_mask`; one logit) as a predictor; probabilities =
    sigmoid(logit).

    `batch_invariant` trades speed for predictions that are bit-identical whatever the batch size, so batched and
    one-at-a-time NoC runs give identical logs with a real network too. `prev_mask` (`ModelConfig.prev_mask`): the
    network takes the previous probabilities as its sixth channel (`prev` of each call; zeros when not given).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "fp32",
                 batch_invariant: bool = False, prev_mask: bool = False) -> None:
        self.model = model.eval()
        self.device = torch.device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.batch_invariant = batch_invariant
        self.prev_mask = prev_mask

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]],
                 prev: torch.Tensor | None = None) -> torch.Tensor:
        if prev is not None and not self.prev_mask:
            raise ValueError("this network has no previous-mask channel (it was trained without --prev-mask)")
        pos, pos_valid = click_tensors(clicks, True, self.device)
        neg, neg_valid = click_tensors(clicks, False, self.device)
        kernels = batch_invariant_kernels(self.device) if self.batch_invariant else contextlib.nullcontext()
        with torch.inference_mode(), kernels, autocast(self.device, self.precision):
            batch = {"image": images.permute(0, 2, 3, 1), "pos": pos, "pos_valid": pos_valid, "neg": neg,
                     "neg_valid": neg_valid, **({} if prev is None else {PREV: prev})}
            logits = self.model(batch_input(batch, self.device, prev_mask=self.prev_mask))
        return torch.sigmoid(logits[:, 0].float())
