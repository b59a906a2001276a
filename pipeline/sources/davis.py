"""DAVIS as the interactive-segmentation benchmarks use it (the 345-frame subset; spec §8): `img/*.jpg` + `gt/*.png`,
one object per image matched by file stem, any colour channel above 0 is the object, nothing ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ifcn.palette import save_index_png
from ifcn.pipeline.sources import single_object_map
from ifcn.pipeline.sources.paired import PairedFolderSource, largest_object
from ifcn.pipeline.synth import SynthConfig, SynthImage, encode_jpeg

GET = ("get the DAVIS interactive-segmentation subset as the interactive-segmentation tools distribute it (for example "
       "RITM's datasets page) and pass the folder holding img/ and gt/ as --root")


def any_channel_rule(levels: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Any channel above 0 -> object 1, else background; DAVIS masks have no ignore region."""
    return single_object_map(levels > 0)


def _write_davis(images: Path, masks: Path, key: str, image: SynthImage, config: SynthConfig) -> None:
    """A JPEG and a palette PNG mask whose object is palette index 1 (DAVIS's dark red, (128, 0, 0))."""
    (images / f"{key}.jpg").write_bytes(encode_jpeg(image.rgb, config.jpeg_quality))
    save_index_png(largest_object(image.object_map).astype(np.uint8), masks / f"{key}.png")


DAVIS = PairedFolderSource(name="davis", images="img", masks="gt", mask_suffix=".png", synth_folder="DAVIS", get=GET,
                           rule=any_channel_rule, synth_writer=_write_davis)
