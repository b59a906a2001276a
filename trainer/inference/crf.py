"""Dense CRF refinement (Krähenbühl & Koltun 2011, as DeepLab applies it after its FCN): the one CRF step of
`ifcn-eval predict --crf`, `ifcn-eval miou --crf` and `ifcn-eval noc --refine crf`.

The unary is -log of the network's probabilities; two pairwise terms with Potts compatibility smooth the labels: a
Gaussian over position (removes isolated pixels) and a bilateral one over position and RGB colour (pulls label
boundaries onto colour edges). Mean-field inference returns per-pixel marginals of the same shape as the input.

The defaults are DeepLab v2's published VOC 2012 settings (ResNet-101: `bi_w 4, bi_xy_std 67, bi_rgb_std 3,
pos_w 3, pos_xy_std 1, max_iter 10`; its VGG-16 model uses 4/65/3 and 2/2), found by DeepLab's cross-validation on
VOC images of about 500 px; other image scales may want other spatial deviations.

The solver is the optional extra `[crf]` (pydensecrf2, built from source: it needs a C/C++ compiler). This module
imports it only when a CRF runs, and `require_crf` refuses a run that asks for one without it, naming the install
command. No torch here: NumPy arrays in and out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.inference.grabcut import seed_mask

INSTALL = ("pip install -e \".[crf]\" (or: pip install pydensecrf2); it builds from source and needs a C/C++ "
           "compiler and the Python headers (Debian/Ubuntu: apt-get install build-essential python3-dev)")
#: Probabilities are clipped to this before the log, so a confident network never gives an infinite unary.
MIN_PROB = 1e-5
#: Most mean-field iterations a run may ask for (DeepLab uses 10; each costs a pass over every pixel and label).
MAX_ITERATIONS = 100


@dataclass(frozen=True)
class CrfParams:
    """The CRF's settings (recorded in every output that used them): mean-field iterations, the Gaussian (position)
    term's standard deviation in pixels and weight, the bilateral term's position and colour deviations and weight."""

    iterations: int = 10
    gaussian_sxy: float = 1.0
    gaussian_weight: float = 3.0
    bilateral_sxy: float = 67.0
    bilateral_srgb: float = 3.0
    bilateral_weight: float = 4.0

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"--crf-iters must lie in 1..{MAX_ITERATIONS} (got {self.iterations}); DeepLab uses 10")
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb"):
            if not getattr(self, name) > 0:
                raise ValueError(f"the CRF's {name} must be positive (got {getattr(self, name)})")
        for name in ("gaussian_weight", "bilateral_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"the CRF's {name} must be at least 0 (got {getattr(self, name)})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def require_crf() -> ModuleType:
    """The solver module (`pydensecrf.densecrf`); a ValueError with the install command when the extra is missing."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise ValueError(f"the dense CRF needs the optional extra [crf]: {INSTALL}") from None
    return dcrf


def dense_crf(image: np.ndarray, probs: np.ndarray, params: CrfParams | None = None) -> np.ndarray:
    """Mean-field marginals (C, H, W) float32 of the CRF whose unary is -log `probs` (C, H, W, each pixel's class
    probabilities) on the RGB uint8 `image` (H, W, 3)."""
    params = params or CrfParams()
    dcrf = require_crf()
    c, h, w = probs.shape
    if image.shape != (h, w, 3) or image.dtype != np.uint8:
        raise ValueError(f"the CRF needs an (H, W, 3) uint8 RGB image of the probabilities' size {(h, w)}, got "
                         f"{image.shape} {image.dtype}")
    unary = -np.log(np.clip(probs.reshape(c, -1), MIN_PROB, 1.0), dtype=np.float32)
    crf = dcrf.DenseCRF2D(w, h, c)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_weight)
    rgb = np.array(image, np.uint8, order="C")  # a writable copy: pydensecrf refuses read-only (decoded) arrays
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb, rgbim=rgb,
                             compat=params.bilateral_weight)
    return np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(c, h, w)


def crf_labels(image: np.ndarray, probs: np.ndarray, params: CrfParams | None = None) -> np.ndarray:
    """The (H, W) uint8 label map (argmax of the CRF's marginals) of class probabilities `probs` (C, H, W)."""
    return dense_crf(image, probs, params).argmax(0).astype(np.uint8)


def crf_foreground(image: np.ndarray, prob: np.ndarray, clicks: Sequence[Click], threshold: float,
                   params: CrfParams | None = None) -> np.ndarray:
    """An interactive mask refined by a two-label CRF: unary from the foreground probability `prob` (H, W), the
    disks around the clicks fixed to their label (GrabCut's seeds); foreground = marginal > `threshold`."""
    seeds = seed_mask(prob > threshold, clicks)
    fg = np.where(seeds == cv2.GC_FGD, 1.0, np.where(seeds == cv2.GC_BGD, 0.0, prob)).astype(np.float32)
    return dense_crf(image, np.stack([1.0 - fg, fg]), params)[1] > threshold
