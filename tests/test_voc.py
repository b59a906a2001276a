"""The VOC reader: accepted root forms, exact data, and a clear error (file + fix) for every kind of bad input."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifcn.errors import InputError
from ifcn.palette import save_index_png
from ifcn.pipeline.sources.voc import VOC_TAR, check_files, find_voc_root, image_paths, load_voc_image, read_split
from ifcn.shards.records import encode_mask


def first_key(root: Path) -> str:
    return read_split(root, "train")[0]


def assert_names_file_and_fix(error: InputError, path: Path, kind: str) -> None:
    assert error.path == str(path)
    assert error.kind == kind
    message = str(error)
    assert message.startswith(f"{path}: ")
    assert f"{error.reason}. Fix: {error.fix}" in message
    assert len(error.fix) > 20


def load_error(root: Path, key: str) -> InputError:
    with pytest.raises(InputError) as info:
        load_voc_image(root, key)
    return info.value


# ---------------------------------------------------------------- roots and splits


def test_accepts_voc2012_its_devkit_and_the_folder_above(synth_root: Path) -> None:
    for path in (synth_root, synth_root.parent, synth_root.parent.parent, str(synth_root)):
        assert find_voc_root(path) == synth_root


def test_a_folder_without_voc_data_names_what_was_expected(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "nowhere"):
        with pytest.raises(InputError) as info:
            find_voc_root(path)
        assert_names_file_and_fix(info.value, path, "missing_folder")
        assert VOC_TAR in info.value.fix


@pytest.mark.parametrize("folder", ["JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"])
def test_a_missing_layout_folder_is_named(voc_copy: Path, folder: str) -> None:
    shutil.rmtree(voc_copy / folder)
    with pytest.raises(InputError) as info:
        find_voc_root(voc_copy.parent.parent)
    assert_names_file_and_fix(info.value, voc_copy / folder, "missing_folder")
    assert f"{folder}/" in info.value.reason and VOC_TAR in info.value.fix


def test_read_split_gives_the_ids_in_file_order(synth_root: Path) -> None:
    train, val = read_split(synth_root, "train"), read_split(synth_root, "val")
    assert len(train) == 12 and len(val) == 6
    assert read_split(synth_root, "trainval") == sorted(train + val)


def test_blank_lines_spaces_and_crlf_are_tolerated(voc_copy: Path) -> None:
    (voc_copy / "ImageSets/Segmentation/val.txt").write_bytes(b"  2008_000002 \r\n\r\n2008_000001\n\n")
    assert read_split(voc_copy, "val") == ["2008_000002", "2008_000001"]


def test_missing_split_file_and_folder(voc_copy: Path) -> None:
    split_file = voc_copy / "ImageSets/Segmentation/val.txt"
    split_file.unlink()
    with pytest.raises(InputError) as info:
        read_split(voc_copy, "val")
    assert_names_file_and_fix(info.value, split_file, "missing_file")
    assert VOC_TAR in info.value.fix
    shutil.rmtree(voc_copy / "ImageSets")
    with pytest.raises(InputError) as info:
        read_split(voc_copy, "train")
    assert_names_file_and_fix(info.value, voc_copy / "ImageSets/Segmentation", "missing_folder")


def test_unknown_split_says_which_exist(synth_root: Path) -> None:
    with pytest.raises(InputError) as info:
        read_split(synth_root, "test")
    assert_names_file_and_fix(info.value, synth_root / "ImageSets/Segmentation/test.txt", "bad_split")
    assert "train, val or trainval" in info.value.fix


@pytest.mark.parametrize(("content", "kind", "words"), [
    ("2008_000001\nJPEGImages/2008_000002\n", "bad_id", "line 2: id 'JPEGImages/2008_000002' contains '/'"),
    ("JPEGImages\\2008_000001\n", "bad_id", "contains '\\\\'"),
    ("2008_000001\n2008_000002\n2008_000001\n", "duplicate_id", "lines 1 and 3"),
    ("\n\n", "empty_split", "lists no image ids"),
])
def test_bad_split_contents(voc_copy: Path, content: str, kind: str, words: str) -> None:
    split_file = voc_copy / "ImageSets/Segmentation/train.txt"
    split_file.write_text(content)
    with pytest.raises(InputError) as info:
        read_split(voc_copy, "train")
    assert_names_file_and_fix(info.value, split_file, kind)
    assert words in info.value.reason


def test_ids_with_spaces_dots_percent_and_unicode_are_ids(voc_copy: Path) -> None:
    """Names are not keys: `ifcn.keys` escapes them, so a split file lists a real folder's names as they are."""
    split_file = voc_copy / "ImageSets/Segmentation/train.txt"
    ids = ["baseball bat00_1", "a.b", "100%", "caf\u00e9"]
    split_file.write_text("".join(f"{i}\n" for i in ids))
    assert read_split(voc_copy, "train") == ids


def test_split_file_that_is_not_text(voc_copy: Path) -> None:
    split_file = voc_copy / "ImageSets/Segmentation/train.txt"
    split_file.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(InputError) as info:
        read_split(voc_copy, "train")
    assert_names_file_and_fix(info.value, split_file, "bad_split_file")


# ---------------------------------------------------------------- missing files


def test_check_files_lists_ids_without_image_or_mask(voc_copy: Path) -> None:
    ids = read_split(voc_copy, "trainval")
    assert check_files(voc_copy, ids) == []
    jpg, _, _ = image_paths(voc_copy, ids[1])
    _, cls, obj = image_paths(voc_copy, ids[4])
    for path in (jpg, cls, obj):
        path.unlink()
    errors = check_files(voc_copy, ids)
    assert [e.key for e in errors] == [ids[1], ids[4]]
    assert_names_file_and_fix(errors[0], jpg, "missing_file")
    assert_names_file_and_fix(errors[1], cls, "missing_file")
    assert str(obj) in errors[1].reason  # every missing file of an id is named
    shutil.rmtree(voc_copy / "SegmentationObject")
    with pytest.raises(InputError) as info:
        check_files(voc_copy, ids)
    assert_names_file_and_fix(info.value, voc_copy / "SegmentationObject", "missing_folder")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_loading_an_id_without_image_or_mask(voc_copy: Path, which: int) -> None:
    key = first_key(voc_copy)
    path = image_paths(voc_copy, key)[which]
    path.unlink()
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, path, "missing_file")
    assert error.key == key


# ---------------------------------------------------------------- what is read


def test_returns_the_jpeg_bytes_untouched_and_the_raw_indices(synth_root: Path) -> None:
    for key in read_split(synth_root, "trainval"):
        jpg, cls, obj = image_paths(synth_root, key)
        image = load_voc_image(synth_root, key)
        assert image.key == key
        assert image.image == jpg.read_bytes()
        assert np.array_equal(image.class_map, np.asarray(Image.open(cls)))
        assert np.array_equal(image.object_map, np.asarray(Image.open(obj)))
        assert image.class_map.dtype == np.uint8 and (image.height, image.width) == image.class_map.shape
        assert (image.width, image.height) == Image.open(jpg).size


def test_every_palette_index_including_255_is_read_exactly(voc_copy: Path) -> None:
    key = first_key(voc_copy)
    _, cls, obj = image_paths(voc_copy, key)
    h, w = np.asarray(Image.open(cls)).shape
    pattern = np.array([*range(21), 255], np.uint8)[np.arange(h * w).reshape(h, w) % 22]
    objects = np.arange(h * w, dtype=np.int64).reshape(h, w).astype(np.uint8)  # every value 0..255
    save_index_png(pattern, cls)
    save_index_png(objects, obj)
    image = load_voc_image(voc_copy, key)
    assert np.array_equal(image.class_map, pattern)
    assert np.array_equal(image.object_map, objects)


def test_grayscale_index_masks_are_accepted(voc_copy: Path) -> None:
    key = first_key(voc_copy)
    _, cls, _ = image_paths(voc_copy, key)
    indices = np.asarray(Image.open(cls))
    cls.write_bytes(encode_mask(indices))  # the shards' single-channel mask format
    assert Image.open(cls).mode == "L"
    assert np.array_equal(load_voc_image(voc_copy, key).class_map, indices)


# ---------------------------------------------------------------- bad masks


def test_mask_size_mismatch_names_both_files(voc_copy: Path) -> None:
    key = first_key(voc_copy)
    jpg, _, obj = image_paths(voc_copy, key)
    indices = np.asarray(Image.open(obj))
    save_index_png(np.ascontiguousarray(indices[:-3]), obj)
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, obj, "size_mismatch")
    h, w = indices.shape
    assert str(jpg) in error.reason and f"{w}×{h - 3}" in error.reason and f"{w}×{h}" in error.reason


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_rgb_masks_are_refused(voc_copy: Path, mode: str) -> None:
    key = first_key(voc_copy)
    _, cls, _ = image_paths(voc_copy, key)
    Image.open(cls).convert(mode).save(cls)
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, cls, "not_index_mask")
    assert "is an RGB image, not a palette/index mask" in error.reason
    assert "original palette PNGs" in error.fix


def test_other_mask_modes_and_formats_are_refused(voc_copy: Path) -> None:
    key = first_key(voc_copy)
    _, cls, _ = image_paths(voc_copy, key)
    Image.fromarray(np.asarray(Image.open(cls)).astype(np.uint16)).save(cls)  # a 16-bit grayscale PNG
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, cls, "not_index_mask")
    assert "I;16" in error.reason
    shutil.copy(image_paths(voc_copy, key)[0], cls)  # a JPEG named .png
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, cls, "not_index_mask")
    assert "JPEG file, not a PNG" in error.reason


def test_class_indices_outside_voc_are_refused(voc_copy: Path) -> None:
    key = first_key(voc_copy)
    _, cls, _ = image_paths(voc_copy, key)
    indices = np.array(Image.open(cls))
    indices[0, :3] = [38, 75, 113]  # what a colour-to-grayscale conversion leaves
    save_index_png(indices, cls)
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, cls, "bad_class_index")
    assert "[38, 75, 113]" in error.reason


def damage(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "truncated_tail":
        return data[:-2]
    if how == "garbage":
        return np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
    if how == "empty":
        return b""
    if how == "garbage_body":  # header and end marker intact, scrambled data in between
        body = np.random.default_rng(1).integers(0, 256, len(data) - 1000, dtype=np.uint8).tobytes()
        return data[:600] + body + data[-400:]
    raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated", "truncated_tail", "garbage", "empty", "garbage_body"])
def test_corrupt_jpegs_are_caught(voc_copy: Path, how: str) -> None:
    key = first_key(voc_copy)
    jpg = image_paths(voc_copy, key)[0]
    jpg.write_bytes(damage(jpg.read_bytes(), how))
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, jpg, "corrupt_jpeg")
    assert VOC_TAR in error.fix


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "scrambled_pixels"])
@pytest.mark.parametrize("which", [1, 2])
def test_corrupt_pngs_are_caught(voc_copy: Path, how: str, which: int) -> None:
    key = first_key(voc_copy)
    path = image_paths(voc_copy, key)[which]
    data = path.read_bytes()
    path.write_bytes(scramble_idat(data) if how == "scrambled_pixels" else damage(data, how))
    error = load_error(voc_copy, key)
    assert_names_file_and_fix(error, path, "corrupt_png")


def scramble_idat(png: bytes) -> bytes:
    """Overwrite the middle of the (compressed) pixel data: the file keeps its structure but cannot be decoded."""
    start = png.index(b"IDAT") + 8
    end = png.index(b"IEND") - 8
    middle = (start + end) // 2
    return png[:middle] + bytes(b ^ 0x5A for b in png[middle:middle + 16]) + png[middle + 16:]


def test_input_error_survives_pickling(tmp_path: Path) -> None:
    """Dask sends errors from workers to the client by pickling them."""
    error = InputError(tmp_path / "a.png", "is broken", "replace it", kind="corrupt_png", key="2008_000001")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, copy.fix, copy.kind, copy.key, str(copy)) == (
        error.path, error.reason, error.fix, error.kind, error.key, str(error))
    assert isinstance(copy, ValueError)
