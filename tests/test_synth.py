"""The synthetic VOC generator: exact VOC layout, VOC-like statistics, void band, determinism."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifcn.palette import VOC_PALETTE, voc_colormap
from ifcn.pipeline.synth import (
    SHAPE_CLASSES,
    SYNTH_MARKER,
    SynthConfig,
    boundary_band,
    make_synth_dataset,
    render_image,
)

SMALL = SynthConfig(train_images=3, val_images=2, seed=5, long_side=96)


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def load_maps(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """key → (rgb, class map, object map) for every image of a synthetic set."""
    keys = (root / "ImageSets/Segmentation/trainval.txt").read_text().split()
    return {k: (np.asarray(Image.open(root / f"JPEGImages/{k}.jpg")),
                np.asarray(Image.open(root / f"SegmentationClass/{k}.png")),
                np.asarray(Image.open(root / f"SegmentationObject/{k}.png"))) for k in keys}


@pytest.fixture(scope="module")
def maps(synth_root: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return load_maps(synth_root)


def object_areas(maps) -> list[tuple[int, float]]:
    """(pixels, fraction of the image) of every visible object."""
    out = []
    for _, _, obj in maps.values():
        counts = np.bincount(obj.ravel(), minlength=256)
        out += [(int(c), c / obj.size) for c in counts[1:255] if c]
    return out


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    first = file_hashes(make_synth_dataset(tmp_path / "a", SMALL))
    second = file_hashes(make_synth_dataset(tmp_path / "b", SMALL))
    other = file_hashes(make_synth_dataset(tmp_path / "c", SynthConfig(3, 2, seed=6, long_side=96)))
    assert first == second
    assert first.keys() == other.keys()
    images = [k for k in first if k.startswith("JPEGImages")]
    assert all(first[k] != other[k] for k in images)


def test_layout_and_split_files_are_exactly_vocs(synth_root: Path) -> None:
    assert synth_root.parts[-2:] == ("VOCdevkit", "VOC2012")
    sets = synth_root / "ImageSets" / "Segmentation"
    assert sorted(p.name for p in synth_root.iterdir()) == ["ImageSets", "JPEGImages", "SegmentationClass",
                                                            "SegmentationObject", SYNTH_MARKER]
    assert sorted(p.name for p in sets.iterdir()) == ["train.txt", "trainval.txt", "val.txt"]
    train, val, trainval = ((sets / f"{s}.txt").read_text() for s in ("train", "val", "trainval"))
    assert train.endswith("\n")
    train, val, trainval = train.split(), val.split(), trainval.split()
    assert (len(train), len(val)) == (12, 6)
    assert not set(train) & set(val)
    assert trainval == sorted(train + val)
    assert trainval != train + val  # interleaved like VOC's, not train then val
    assert all(re.fullmatch(r"\d{4}_\d{6}", k) for k in trainval)
    for folder, ext in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"), ("SegmentationObject", ".png")):
        assert sorted(p.name for p in (synth_root / folder).iterdir()) == [k + ext for k in trainval]
    assert [p.name for p in synth_root.parent.iterdir()] == ["VOC2012"]  # no temporary folder left


def test_masks_are_palette_pngs_with_the_voc_palette(synth_root: Path) -> None:
    assert voc_colormap()[255].tolist() == [224, 224, 192]
    assert voc_colormap()[15].tolist() == [192, 128, 128]  # person
    for path in [*(synth_root / "SegmentationClass").iterdir(), *(synth_root / "SegmentationObject").iterdir()]:
        with Image.open(path) as image:
            assert (image.format, image.mode) == ("PNG", "P")
            assert image.getpalette() == VOC_PALETTE


def test_jpegs_and_masks_have_voc_like_sizes(maps) -> None:
    shapes = set()
    for rgb, cls, obj in maps.values():
        assert rgb.shape[:2] == cls.shape == obj.shape
        assert max(cls.shape) == 160
        shapes.add(cls.shape)
    assert (120, 160) in shapes  # 0.75 of the long side, like 500×375
    assert any(h > w for h, w in shapes)  # portrait images too


def test_indices_and_class_consistent_with_objects(maps) -> None:
    for _, cls, obj in maps.values():
        assert set(np.unique(cls).tolist()) <= set(range(21)) | {255}
        ids = sorted(set(np.unique(obj).tolist()) - {0, 255})
        assert ids == list(range(1, len(ids) + 1))  # ids 1..K without gaps
        assert np.array_equal(cls == 0, obj == 0)
        assert np.array_equal(cls == 255, obj == 255)
        for i in ids:
            classes = np.unique(cls[obj == i])
            assert len(classes) == 1 and 1 <= classes[0] <= 20


def test_void_band_separates_every_pair_of_labels_by_five_pixels(maps) -> None:
    for _, _, obj in maps.values():
        for d in range(1, 6):  # a 5-pixel band: no two different non-void labels within 5 pixels along a row/column
            for a, b in ((obj[:, d:], obj[:, :-d]), (obj[d:, :], obj[:-d, :])):
                assert not np.any((a != b) & (a != 255) & (b != 255))


def test_void_band_is_five_pixels_across_a_boundary_and_ignores_the_image_border() -> None:
    labels = np.zeros((40, 50), np.uint8)
    labels[10:30, 20:50] = 1  # a vertical edge at column 20, horizontal ones at rows 10 and 30; touches the border
    band = boundary_band(labels, 5)
    assert np.flatnonzero(band[20]).tolist() == [17, 18, 19, 20, 21]  # 3 pixels outside, 2 inside
    assert np.flatnonzero(band[:, 35]).tolist() == [7, 8, 9, 10, 11, 27, 28, 29, 30, 31]
    assert not band[15:25, 45:].any()  # the image border is no boundary
    assert not band[:5].any() and not band[35:].any()


def test_objects_counts_sizes_and_overlaps_are_voc_like(maps) -> None:
    counts = [len(set(np.unique(obj).tolist()) - {0, 255}) for _, _, obj in maps.values()]
    assert max(counts) <= 4 and 1.5 <= np.mean(counts) <= 3.5
    areas = object_areas(maps)
    assert any(pixels < 400 for pixels, _ in areas)
    assert any(fraction > 0.15 for _, fraction in areas)
    touching = 0  # two objects only 6 pixels apart: they met under the void band (one occludes the other)
    for _, _, obj in maps.values():
        a, b = obj[:, 6:], obj[:, :-6]
        touching += np.any((a != b) & (a != 0) & (b != 0) & (a != 255) & (b != 255))
    assert touching >= 2


def test_many_images_match_voc_train_statistics() -> None:
    config = SynthConfig(60, 0, seed=1)
    counts, small = [], 0
    classes: set[int] = set()
    for number in range(1, 61):
        image = render_image(config, number)
        ids = set(np.unique(image.object_map).tolist()) - {0, 255}
        counts.append(len(ids))
        small += sum(int(np.sum(image.object_map == i)) < 400 for i in ids)
        classes |= set(np.unique(image.class_map).tolist()) - {0, 255}
        assert max(image.class_map.shape) == 500
    assert 2.0 <= np.mean(counts) <= 2.9  # VOC train: 2.40
    assert 0.04 <= small / sum(counts) <= 0.3  # VOC: ≈13 % of objects below 400 pixels
    assert classes == {s.voc_class for s in SHAPE_CLASSES}


def test_class_is_predictable_from_colour(maps) -> None:
    """Each class's mean object colour is nearest to its own reference colour among all classes'."""
    references = {s.voc_class: (np.array(s.color) + np.array(s.second_color)) / 2 for s in SHAPE_CLASSES}
    sums: dict[int, np.ndarray] = {}
    for rgb, cls, _ in maps.values():
        for c in set(np.unique(cls).tolist()) - {0, 255}:
            sums[c] = sums.get(c, 0) + rgb[cls == c].astype(np.float64).mean(axis=0)
    for c, total in sums.items():
        mean = total / np.linalg.norm(total) * np.linalg.norm(references[c])
        nearest = min(references, key=lambda r: np.linalg.norm(references[r] - mean))
        assert nearest == c


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    root = make_synth_dataset(tmp_path, SMALL)
    before = file_hashes(root)
    with pytest.raises(FileExistsError, match="already exists"):
        make_synth_dataset(tmp_path, SynthConfig(2, 1, seed=9, long_side=96))
    assert file_hashes(root) == before
    make_synth_dataset(tmp_path, SynthConfig(2, 1, seed=9, long_side=96), overwrite=True)
    assert len((root / "ImageSets/Segmentation/trainval.txt").read_text().split()) == 3
    assert [p.name for p in root.parent.iterdir()] == ["VOC2012"]


@pytest.mark.parametrize("kwargs", [dict(train_images=0, val_images=0), dict(train_images=-1, val_images=2),
                                    dict(train_images=1, val_images=0, seed=-1),
                                    dict(train_images=1, val_images=0, long_side=8),
                                    dict(train_images=1, val_images=0, void_width=4),
                                    dict(train_images=1, val_images=0, jpeg_quality=0)])
def test_bad_config_is_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        SynthConfig(**kwargs)
