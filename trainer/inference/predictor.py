"""`Predictor`, the public inference API: an image (and clicks) in, probabilities or a mask at the image's size out.

It is the only place that turns images and clicks into the network input at inference, through
`ifcn.trainer.core.inputs.batch_input` and the checkpoint's `InputSpec`, like training and validation: the NoC engine
calls `predict_batch` (the predictor is callable for its protocol), the web demo and users call `predict`, and the
exported graphs wrap the same model.

    from ifcn import Predictor
    predictor = Predictor.from_checkpoint("runs/r18/best.pt", device="cpu")      # or "cuda:0", "mps", torch.device
    probability = predictor.predict(image, [(120, 200, True), (40, 30, False)])  # (H, W) float32 in [0, 1]
    mask = predictor.predict(image, [(120, 200, True)], threshold=0.5)            # (H, W) bool

Images: a PIL image, a numpy array (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or float in [0, 1], or a
torch tensor (3, H, W) (torchvision's layout) of the same types. Clicks: `Click(y, x, positive)` or (y, x, positive)
tuples, in image pixels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ifcn.trainer.core.checkpoint import load_model
from ifcn.trainer.core.clicks import Click, ClickLike, as_click, click_tensors, clicks_from_points
from ifcn.trainer.core.device import resolve_device
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.core.inputs import PREV, batch_input
from ifcn.trainer.core.names import SEMANTIC, TASKS
from ifcn.trainer.core.precision import autocast, check_precision
from ifcn.trainer.inference.grabcut import grabcut_refine
from ifcn.trainer.inference.zoom import ZoomIn, ZoomSettings
from ifcn.trainer.models.model_config import ModelConfig

#: Smallest side every backbone accepts (VGG pools five times); smaller images are edge-padded, then cropped back.
MIN_SIDE = 32
#: The foreground threshold GrabCut is seeded with when `predict(..., grabcut=True)` gets no `threshold`.
GRABCUT_THRESHOLD = 0.5
ImageLike = Image.Image | np.ndarray | torch.Tensor


def _to_uint8(pixels: np.ndarray, what: str) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype.kind == "f":
        if pixels.size and (np.nanmin(pixels) < 0 or np.nanmax(pixels) > 1 or np.isnan(pixels).any()):
            raise ValueError(f"a float {what} must hold values in [0, 1] (divide uint8 pixels by 255, or pass uint8)")
        return np.rint(pixels * 255).astype(np.uint8)
    raise ValueError(f"{what} pixels must be uint8 or float in [0, 1], got {pixels.dtype}")


def rgb_array(image: ImageLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any accepted image form (see the module docstring); a ValueError says what was wrong.

    A PIL image's pixels are taken as they are stored (`ifcn.trainer.inference.images.read_image` applies a file's
    EXIF orientation: decode user photos with it to get masks in the orientation they are displayed in)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 3 and tensor.shape[0] in (1, 3, 4):
            tensor = tensor.permute(1, 2, 0)
        elif tensor.ndim != 2:
            raise ValueError(f"an image tensor must be (3, H, W), (1, H, W), (4, H, W) or (H, W), got shape "
                             f"{tuple(image.shape)}")
        image = tensor.numpy()
    pixels = np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4) or 0 in pixels.shape:
        raise ValueError(f"an image must be (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, got shape {pixels.shape}")
    return np.ascontiguousarray(_to_uint8(pixels[:, :, :3], "image"))


def checked_clicks(clicks: Sequence[ClickLike], height: int, width: int) -> list[Click]:
    """The clicks as `Click`s, refusing any outside the height x width image (a ValueError naming it)."""
    out = [as_click(c) for c in clicks]
    for c in out:
        if not (0 <= c.y < height and 0 <= c.x < width):
            raise ValueError(f"click (y={c.y}, x={c.x}) lies outside the {height}x{width} image: y must be in "
                             f"[0, {height - 1}] and x in [0, {width - 1}]")
    return out


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
    probabilities. `spec` is the model's input contract (`from_checkpoint` reads the checkpoint's; default: the
    contract of checkpoints written before it was stored). `batch_invariant` selects kernels whose per-image results
    do not depend on the batch size (slower); `channels_last` runs the convolutions in NHWC, which oneDNN does faster
    on the CPU.
    """

    def __init__(self, model: torch.nn.Module, task: str, device: torch.device | str = "cpu", precision: str = "fp32",
                 batch_invariant: bool = False, channels_last: bool = False, spec: InputSpec | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory_format).eval()
        self.task = task
        self.spec = spec if spec is not None else InputSpec.legacy(model.config.in_channels)
        if self.spec.channels != model.config.in_channels:
            raise ValueError(f"the input contract has {self.spec.channels} channels but the model takes "
                             f"{model.config.in_channels}")
        self.precision = precision
        self.batch_invariant = batch_invariant
        self.channels_last = channels_last

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: torch.device | str = "auto", precision: str = "fp32",
                        batch_invariant: bool = False, channels_last: bool = False) -> Predictor:
        """Rebuild a checkpoint written by `ifcn-train` (either task) with its input contract; `device` is `auto`
        (CUDA when present) or any torch device (`cpu`, `cuda:0`, `mps`, a `torch.device`)."""
        dev = resolve_device(device)
        model, _, spec, state = load_model(Path(path), dev)
        return cls(model, state.get("task", "interactive"), dev, precision, batch_invariant, channels_last, spec)

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
        return self.spec.prev_mask

    def logits(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]] | None = None,
               prev: torch.Tensor | None = None) -> torch.Tensor:
        """Float32 logits (B, C, H, W) for uint8 RGB `images` (B, 3, H, W): interactive checkpoints need one click list
        per image (coordinates in image pixels), semantic ones take none. A `--prev-mask` model also takes `prev`,
        each image's previous foreground probabilities (B, H, W) (zeros when not given: before the first click).
        On `self.device`."""
        if (clicks is None) != (self.task == SEMANTIC):
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
        batch = {"image": images.to(self.device).permute(0, 2, 3, 1)}
        if clicks is not None:
            batch.update(click_tensors(clicks, self.device))
        if prev is not None:
            batch[PREV] = prev
        kernels = batch_invariant_kernels(self.device) if self.batch_invariant else contextlib.nullcontext()
        with torch.inference_mode(), kernels, autocast(self.device, self.precision):
            return self.model(batch_input(batch, self.device, self.spec, self.channels_last)).float()

    def image_batch(self, images: torch.Tensor | Sequence[ImageLike]) -> torch.Tensor:
        """(B, 3, H, W) uint8 on the device from a uint8 tensor in that layout or a sequence of same-size images."""
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            if images.dtype != torch.uint8 or images.shape[1] != 3:
                raise ValueError(f"a batch tensor must be (B, 3, H, W) uint8 RGB, got {images.dtype} with shape "
                                 f"{tuple(images.shape)}; or pass a list of images")
            return images.to(self.device)
        arrays = [rgb_array(image) for image in images]
        if len(arrays) == 1:  # shared with the array when writable: a 12-megapixel copy costs ~40 ms per click
            array = arrays[0]
            tensor = torch.from_numpy(array) if array.flags.writeable else torch.tensor(array)
            return tensor.permute(2, 0, 1)[None].to(self.device)
        if len({a.shape for a in arrays}) > 1:
            raise ValueError(f"the images of a batch must share one size, got {sorted({a.shape[:2] for a in arrays})}")
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(self.device)

    def predict_batch(self, images: torch.Tensor | Sequence[ImageLike],
                      clicks: Sequence[Sequence[ClickLike]] | None = None,
                      prev: torch.Tensor | None = None) -> torch.Tensor:
        """Probabilities for a batch of same-size images, as a (B, 3, H, W) uint8 RGB tensor or a sequence of any
        image form `predict` takes: (B, H, W) foreground (interactive, one list of clicks of either form per image;
        `prev` as in `logits`) or (B, C, H, W) per class (semantic, no clicks). A tensor on `self.device`."""
        batch = self.image_batch(images)
        chosen = None
        if clicks is not None:
            chosen = [checked_clicks(row, *batch.shape[-2:]) for row in clicks]
        return probabilities(self.logits(batch, chosen, prev), self.task)

    #: The NoC engine's `Predictor` protocol: a batch of images and click lists in, probabilities out.
    __call__ = predict_batch

    def predict(self, image: ImageLike, clicks: Sequence[ClickLike] = (), *, prev: Any = None,
                threshold: float | None = None, grabcut: bool = False, zoom: ZoomSettings | None = None,
                point_coords: Any = None, point_labels: Any = None) -> np.ndarray:
        """The prediction for one image (any form in the module docstring), at its size, as numpy.

        Interactive: `clicks` are `Click`s or (y, x, positive) tuples in image pixels, or give them as Segment Anything
        does: `point_coords` (N, 2) as (x, y) and `point_labels` (N,), 1 positive / 0 negative. Returns the (H, W)
        float32 foreground probability when `threshold` is None, else the (H, W) bool mask probability > `threshold`.
        With `grabcut`, that mask (threshold 0.5 when None) is refined by GrabCut seeded with it and the clicks (spec §6
        item 7) and returned as a bool mask. A `--prev-mask` model also takes `prev`, the (H, W) probabilities it
        returned before the last click (None before the first). With `zoom` (`ifcn.trainer.inference.zoom`), clicks
        after the first are predicted on a view around the object, which `prev` (then needed for any network) locates.
        Semantic: no clicks, no threshold; returns (C, H, W) class probabilities (argmax over axis 0 = the label map).
        """
        rgb = rgb_array(image)
        if self.task == SEMANTIC:
            if clicks or grabcut or prev is not None or threshold is not None:
                raise ValueError("a semantic checkpoint takes no clicks, threshold or GrabCut: call predict(image)")
            return self.predict_batch([rgb])[0].cpu().numpy()
        if point_coords is not None or point_labels is not None:
            if clicks:
                raise ValueError("give the clicks either as `clicks` or as point_coords + point_labels, not both")
            clicks = clicks_from_points(point_coords, point_labels)
        chosen = checked_clicks(clicks, *rgb.shape[:2])
        previous = None
        if prev is not None:
            if np.shape(prev) != rgb.shape[:2]:
                raise ValueError(f"prev must be the image's ({rgb.shape[0]}, {rgb.shape[1]}) probabilities, got "
                                 f"shape {np.shape(prev)}")
            previous = torch.as_tensor(np.asarray(prev, np.float32))[None].to(self.device)
        batch = self.image_batch([rgb])
        predict_batch = self.predict_batch if zoom is None else ZoomIn(self, zoom)
        probs = predict_batch(batch, [chosen], previous)[0].cpu().numpy()
        if grabcut:
            return grabcut_refine(rgb, probs > (GRABCUT_THRESHOLD if threshold is None else threshold), chosen)
        return probs if threshold is None else probs > threshold
