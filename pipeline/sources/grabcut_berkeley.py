"""GrabCut (50 images) and Berkeley (96 images / 100 objects) as the interactive-segmentation benchmarks distribute
them (spec §8): GrabCut `data_GT/` (`.jpg` and `.bmp` images) + `boundary_GT/` (`.bmp` masks); Berkeley `images/` +
`masks/` (`.png`). Mask levels: 0 background, 128 the unknown band (ignored), above 128 the object. Levels 1..127
occur in neither release: a mask holding them was converted or damaged, and is refused rather than guessed at.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ifcn.errors import InputError
from ifcn.pipeline.sources import single_object_map
from ifcn.pipeline.sources.paired import PairedFolderSource, largest_object
from ifcn.pipeline.synth import SynthConfig, SynthImage, boundary_band, encode_jpeg

BAND, OBJECT = 128, 255
#: Width in pixels of the synthetic GrabCut masks' unknown band across the object boundary.
SYNTH_BAND_WIDTH = 5
#: Every how many synthetic GrabCut images one is a BMP (the release mixes JPEG and BMP images).
SYNTH_BMP_EVERY = 3
GET = ("get the {name} benchmark as the interactive-segmentation tools distribute it (for example RITM's datasets "
       "page) and pass the folder holding {images}/ and {masks}/ as --root")


def band_rule(levels: np.ndarray, path: Path, key: str) -> np.ndarray:
    """0 -> background, 128 -> ignore (255), above 128 -> object 1; any of 1..127 raises naming the mask."""
    odd = np.unique(levels[(levels > 0) & (levels < BAND)])
    if odd.size:
        raise InputError(path, f"holds mask values {odd[:8].tolist()} between 1 and 127; a GrabCut/Berkeley mask holds "
                         f"0 (background), {BAND} (unknown band) and values above {BAND} (object)",
                         "restore the original mask (a resized or re-encoded mask blends levels)",
                         kind="bad_mask_value", key=key)
    return single_object_map(levels > BAND, ignore=levels == BAND)


def _write_grabcut(images: Path, masks: Path, key: str, image: SynthImage, config: SynthConfig) -> None:
    """A JPEG or (every third image) a 24-bit BMP, and a gray BMP mask: object 255, a 128 band across its boundary."""
    if int(key.split("_")[-1]) % SYNTH_BMP_EVERY == 0:
        Image.fromarray(image.rgb).save(images / f"{key}.bmp", format="BMP")
    else:
        (images / f"{key}.jpg").write_bytes(encode_jpeg(image.rgb, config.jpeg_quality))
    obj = largest_object(image.object_map)
    levels = np.where(obj, OBJECT, 0).astype(np.uint8)
    levels[boundary_band(obj.astype(np.uint8), SYNTH_BAND_WIDTH)] = BAND
    Image.fromarray(levels, mode="L").save(masks / f"{key}.bmp", format="BMP")


def _write_berkeley(images: Path, masks: Path, key: str, image: SynthImage, config: SynthConfig) -> None:
    """A JPEG and a 0/255 gray PNG mask of its largest object."""
    (images / f"{key}.jpg").write_bytes(encode_jpeg(image.rgb, config.jpeg_quality))
    ok, png = cv2.imencode(".png", np.where(largest_object(image.object_map), OBJECT, 0).astype(np.uint8))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the mask of {key}")
    (masks / f"{key}.png").write_bytes(png.tobytes())


GRABCUT = PairedFolderSource(name="grabcut", images="data_GT", masks="boundary_GT", mask_suffix=".bmp",
                             synth_folder="GrabCut", get=GET.format(name="GrabCut", images="data_GT",
                                                                    masks="boundary_GT"),
                             rule=band_rule, synth_writer=_write_grabcut)
BERKELEY = PairedFolderSource(name="berkeley", images="images", masks="masks", mask_suffix=".png",
                              synth_folder="Berkeley", get=GET.format(name="Berkeley", images="images", masks="masks"),
                              rule=band_rule, synth_writer=_write_berkeley)
