"""One rule for every image reader: the EXIF orientation tag is ignored (masks are drawn on the stored pixels), so a
tagged JPEG has the same height and width in `ifcn-prep`'s size check, in its stored sample and in the decoder that
the trainer, the evaluator and `inspect` use (`Sample.image`)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.sample import make_sample
from ifcn.pipeline.sources.files import read_image
from ifcn.pipeline.sources.voc import image_paths, load_voc_image, read_split
from ifcn.shards.records import Sample, decode_dataset_image

ORIENTATION = 0x0112  # EXIF tag; 6 = "rotate 90° clockwise to display"


def tagged_jpeg(rgb: np.ndarray, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=95, exif=exif)
    return out.getvalue()


def test_every_reader_ignores_the_orientation_tag(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    data = tagged_jpeg(rgb)
    assert Image.open(io.BytesIO(data)).getexif()[ORIENTATION] == 6
    # OpenCV's default decode honours the tag: the image a trainer would see is rotated away from its masks.
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (60, 40, 3)
    path = tmp_path / "tagged.jpg"
    path.write_bytes(data)
    stored = read_image(path, "tagged", "fix")
    assert (stored.height, stored.width) == (40, 60) and stored.data == data
    assert decode_dataset_image(data).shape == (40, 60, 3)


def test_a_tagged_jpeg_goes_through_prep_with_its_masks(voc_copy: Path) -> None:
    key = read_split(voc_copy, "train")[0]
    jpg = image_paths(voc_copy, key)[0]
    rgb = np.asarray(Image.open(jpg).convert("RGB"))
    assert rgb.shape[0] != rgb.shape[1]  # a rotation would change the size
    jpg.write_bytes(tagged_jpeg(rgb))
    image = load_voc_image(voc_copy, key)  # today's size check: image and masks agree
    sample = make_sample(image, ClickConfig(pairs=1), seed=0)
    back = Sample.from_fields(key, sample.to_fields())
    assert back.image().shape[:2] == back.object_map().shape == rgb.shape[:2]
