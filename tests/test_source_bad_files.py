"""The source readers on bad files (from issue 13), one test each: a JPEG damaged in the middle (item 5); a JPEG path
that is a folder, a split file with a UTF-8 byte-order mark, CRLF split files (item 11)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ifcn.errors import InputError
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.sources.voc import image_paths, read_split


def _run(root: Path, out: Path, on_error: str, scheduler: str):
    job = SampleJob(voc_root=root, split="train", out=out, clicks=ClickConfig(pairs=1), images_per_shard=64,
                    on_error=on_error, scheduler=scheduler, progress=False)
    return run_sample(job, log=lambda message: None)


def _fails_naming(path: Path, kind: str, root: Path, out: Path, scheduler: str) -> InputError:
    with pytest.raises(InputError) as info:
        _run(root, out, "fail", scheduler)
    assert (info.value.path, info.value.kind) == (str(path), kind) and "Fix:" in str(info.value)
    assert not (out / "manifest.json").exists()
    return info.value


def _skips(key: str, path: Path, kind: str, root: Path, out: Path, scheduler: str) -> None:
    manifest = _run(root, out, "skip", scheduler).manifest
    [skipped] = manifest.totals.skipped_images
    assert (skipped.key, skipped.file) == (key, str(path)) and skipped.reason.startswith(f"{kind}: ")
    assert manifest.totals.images == len(read_split(root, "train")) - 1


def test_a_jpeg_damaged_in_the_middle_is_corrupt(voc_copy: Path, tmp_path: Path, dask_address: str) -> None:
    key = read_split(voc_copy, "train")[0]
    jpg = image_paths(voc_copy, key)[0]
    data = bytearray(jpg.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    jpg.write_bytes(bytes(data))
    # libjpeg only warns ("Corrupt JPEG data: 141 extraneous bytes before marker 0xd9") and returns garbage pixels:
    # PIL (the size check used before) and OpenCV (the trainer's decoder) both decode it without an error.
    with Image.open(io.BytesIO(bytes(data))) as image:
        image.load()
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    error = _fails_naming(jpg, "corrupt_jpeg", voc_copy, tmp_path / "failed", dask_address)
    assert "Corrupt JPEG data" in error.reason
    _skips(key, jpg, "corrupt_jpeg", voc_copy, tmp_path / "skipped", dask_address)


def test_a_jpeg_path_that_is_a_folder(voc_copy: Path, tmp_path: Path, dask_address: str) -> None:
    key = read_split(voc_copy, "train")[2]
    jpg = image_paths(voc_copy, key)[0]
    jpg.unlink()
    jpg.mkdir()
    error = _fails_naming(jpg, "missing_file", voc_copy, tmp_path / "failed", dask_address)
    assert f"is a folder where a file of image {key}" in error.reason
    _skips(key, jpg, "missing_file", voc_copy, tmp_path / "skipped", dask_address)


def test_a_split_file_with_a_utf8_byte_order_mark(voc_copy: Path) -> None:
    split_file = voc_copy / "ImageSets/Segmentation/train.txt"
    ids = read_split(voc_copy, "train")
    split_file.write_bytes(b"\xef\xbb\xbf" + split_file.read_bytes())  # what Windows editors write
    assert read_split(voc_copy, "train") == ids  # the first id has no invisible character before it


def test_an_invisible_character_inside_an_id_is_named(voc_copy: Path) -> None:
    split_file = voc_copy / "ImageSets/Segmentation/train.txt"
    split_file.write_text("2008_000001\n2008_\u200b000002\n")
    with pytest.raises(InputError) as info:
        read_split(voc_copy, "train")
    assert info.value.path == str(split_file) and info.value.kind == "bad_id"
    assert "line 2" in info.value.reason and "\\u200b" in info.value.reason and "invisible" in info.value.reason


def test_crlf_and_cr_split_files(voc_copy: Path) -> None:
    split_file = voc_copy / "ImageSets/Segmentation/train.txt"
    ids = read_split(voc_copy, "train")
    for newline in (b"\r\n", b"\r"):
        split_file.write_bytes(newline.join(i.encode() for i in ids) + newline)
        assert read_split(voc_copy, "train") == ids
