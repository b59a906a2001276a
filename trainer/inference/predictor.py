"""`Predictor`, the public inference API: an image (and clicks) in, probabilities at the image's own size out.

It is the only place that turns images and clicks into the network input at inference, through
`ifcn.trainer.inputs.batch_input` like training and validation: the NoC engine calls `predict_batch` (the predictor
is callable for its protocol), the web demo and users call `predict`, and the exported graphs wrap the same model.

    from ifcn import Predictor
    predictor = Predictor.from_checkpoint("runs/r18/best.pt", device="cpu")
    probability = predictor.predict(image_rgb_uint8, [(120, 200, True), (40, 30, False)])  # (H, W) float32
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ifcn.trainer.checkpoint import load_model
from ifcn.trainer.distributed import resolve_device
from ifcn.trainer.evaluation.clicker import Click
from ifcn.trainer.evaluation.grabcut import grabcut_refine
from ifcn.trainer.inference.zoom import ZoomIn, ZoomSettings
from ifcn.trainer.inputs import PREV, batch_input
from ifcn.trainer.models.config import ModelConfig
from ifcn.trainer.precision import autocast, check_precision

#: A click as users write it, (y, x, positive), or the evaluator's `Click`.
ClickLike = Click | tuple[int, int, bool]
#: Smallest side every backbone accepts (VGG pools five times); smaller images are edge-padded, then cropped back.
MIN_SIDE = 32
TASKS = ("interactive", "semantic")


def as_click(click: ClickLike) -> Click:
    """A `Click` from a `Click` or a (y, x, positive) tuple."""
    if isinstance(click, Click):
        return click
    y, x, positive = click
    return Click(bool(positive), int(y), int(x))


def checked_clicks(clicks: Sequence[ClickLike], height: int, width: int) -> list[Click]:
    """The clicks as `Click`s, refusing any outside the height x width image (a ValueError naming it)."""
    out = [as_click(c) for c in clicks]
    for c in out:
        if not (0 <= c.y < height and 0 <= c.x < width):
            raise ValueError(f"click (y={c.y}, x={c.x}) lies outside the {height}x{width} image: y must be in "
                             f"[0, {height - 1}] and x in [0, {width - 1}]")
    return out


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


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Interactive: sigmoid of the one logit, (B, 1, H, W) -> (B, H, W); semantic: softmax over the classes."""
    return torch.sigmoid(logits[:, 0]) if task == "interactive" else torch.softmax(logits, dim=1)


class Predictor:
    """A trained FCN of either task, ready to predict on `device`.

    Interactive checkpoints (RGB + 2 click channels, + the previous mask with `--prev-mask`; one logit) give the
    foreground probability of the clicked object; semantic ones (RGB, `num_classes` logits) give per-class
    probabilities. `batch_invariant` selects kernels whose per-image results do not depend on the batch size
    (slower); `channels_last` runs the convolutions in NHWC, which oneDNN does faster on the CPU.
    """

    def __init__(self, model: torch.nn.Module, task: str, device: torch.device | str = "cpu", precision: str = "fp32",
                 batch_invariant: bool = False, channels_last: bool = False) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.device = torch.device(device)
        check_precision(precision, self.device)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory_format).eval()
        self.task = task
        self.precision = precision
        self.batch_invariant = batch_invariant
        self.channels_last = channels_last

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", precision: str = "fp32",
                        batch_invariant: bool = False, channels_last: bool = False) -> Predictor:
        """Rebuild a checkpoint written by `ifcn-train` (either task); `device` is auto, cpu or cuda."""
        dev = resolve_device(device)
        model, _, state = load_model(Path(path), dev)
        return cls(model, state.get("task", "interactive"), dev, precision, batch_invariant, channels_last)

    @property
    def config(self) -> ModelConfig:
        """The model's configuration (backbone, stride, channels, classes)."""
        return self.model.config

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def prev_mask(self) -> bool:
        """Whether the network also takes the previous prediction (a model trained with `--prev-mask`)."""
        return self.config.prev_mask

    def logits(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]] | None = None,
               prev: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 logits (B, C, H, W) for uint8 RGB `images` (B, 3, H, W): interactive checkpoints need one click list
        per image (coordinates in image pixels), semantic ones take none. A `--prev-mask` model also takes `prev`,
        each image's previous foreground probabilities (B, H, W) (zeros when not given: before the first click).
        On `self.device`."""
        if (clicks is None) != (self.task == "semantic"):
            raise ValueError("an interactive checkpoint needs one click list per image (use the demo, "
                             "`ifcn-eval demo`, or `Predictor.predict(image, clicks)`)" if clicks is None else
                             "a semantic checkpoint takes no clicks: call predict(image) without them")
        if prev is not None and not self.prev_mask:
            raise ValueError("this network has no previous-mask channel (it was trained without --prev-mask)")
        h, w = images.shape[-2:]
        if h < MIN_SIDE or w < MIN_SIDE:  # pad bottom/right, so click coordinates stay valid
            pad = (0, max(0, MIN_SIDE - w), 0, max(0, MIN_SIDE - h))
            images = F.pad(images.float(), pad, mode="replicate").to(torch.uint8)
            prev = None if prev is None else F.pad(prev[:, None].float(), pad, mode="replicate")[:, 0]
            return self.logits(images, clicks, prev)[..., :h, :w]
        batch = {"image": images.permute(0, 2, 3, 1)}
        if clicks is not None:
            batch["pos"], batch["pos_valid"] = click_tensors(clicks, True, self.device)
            batch["neg"], batch["neg_valid"] = click_tensors(clicks, False, self.device)
        if prev is not None:
            batch[PREV] = prev
        kernels = batch_invariant_kernels(self.device) if self.batch_invariant else contextlib.nullcontext()
        with torch.inference_mode(), kernels, autocast(self.device, self.precision):
            return self.model(batch_input(batch, self.device, self.channels_last, self.prev_mask)).float()

    def predict_batch(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]] | None = None,
                      prev: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities for uint8 RGB `images` (B, 3, H, W): (B, H, W) foreground (interactive, one click list per
        image; `prev` as in `logits`) or (B, C, H, W) per class (semantic, no clicks). On `self.device`."""
        return probabilities(self.logits(images, clicks, prev), self.task)

    #: The NoC engine's `Predictor` protocol: a batch of images and click lists in, probabilities out.
    __call__ = predict_batch

    def image_tensor(self, image: np.ndarray) -> torch.Tensor:
        """A (1, 3, H, W) uint8 tensor on the device from an (H, W, 3) uint8 RGB array (checked)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise ValueError(f"an image must be an (H, W, 3) uint8 RGB array, got {image.dtype} with shape "
                             f"{image.shape}")
        # Shared with the array when writable (nothing writes into it; a 12-megapixel copy costs ~40 ms per click);
        # decoded images are often read-only, which torch cannot share.
        tensor = torch.from_numpy(image) if image.flags.writeable else torch.tensor(image)
        return tensor.permute(2, 0, 1)[None].to(self.device)

    def predict(self, image: np.ndarray, clicks: Sequence[ClickLike] = (), *, prev: np.ndarray | None = None,
                grabcut: bool = False, threshold: float = 0.5, zoom: ZoomSettings | None = None) -> np.ndarray:
        """Probabilities at the image's size for an (H, W, 3) uint8 RGB image, as float32 numpy.

        Interactive: `clicks` are (y, x, positive) in image pixels (or `Click`s); returns the (H, W) foreground
        probability. A `--prev-mask` model also takes `prev`, the (H, W) probabilities it returned before the last
        click (None before the first). With `zoom` (`ifcn.trainer.inference.zoom`), clicks after the first are
        predicted on a view around the object, which `prev` (then needed for any network) locates. With `grabcut`,
        the mask (probability > `threshold`) is refined by GrabCut
        seeded with it and the clicks (spec §6 item 7), and the result is that mask as 0.0/1.0. Semantic: no clicks;
        returns (C, H, W) class probabilities (argmax over axis 0 = the label map).
        """
        x = self.image_tensor(image)
        if self.task == "semantic":
            if clicks or grabcut or prev is not None:
                raise ValueError("a semantic checkpoint takes no clicks and no GrabCut: call predict(image)")
            return self.predict_batch(x)[0].cpu().numpy()
        chosen = checked_clicks(clicks, *image.shape[:2])
        previous = None
        if prev is not None:
            if np.shape(prev) != image.shape[:2]:
                raise ValueError(f"prev must be the image's ({image.shape[0]}, {image.shape[1]}) probabilities, got "
                                 f"shape {np.shape(prev)}")
            previous = torch.as_tensor(np.asarray(prev, np.float32))[None].to(self.device)
        if zoom is None:
            probs = self.predict_batch(x, [chosen], previous)[0].cpu().numpy()
        else:
            zoomed_batch = ZoomIn(self, zoom)
            probs = zoomed_batch(x, [chosen], previous)[0].cpu().numpy()
        if not grabcut:
            return probs
        return grabcut_refine(image, probs > threshold, chosen).astype(np.float32)
