"""Shard formats: what a reader gets back equals what was sampled, in both formats and through plain readers."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import webdataset

from ifcn.pipeline.click_sampling import ClickConfig, image_rng, sample_image_clicks
from ifcn.shards.formats import FORMATS, get_format
from ifcn.shards.formats.hdf5 import read_row
from ifcn.shards.reader import read_shard
from ifcn.shards.records import LABEL_FIELDS, ImageClicks, Sample, decode_dataset_image, decode_mask, encode_mask

KEYS = ("2008_000002", "2008_000010", "2009_000001")
#: The fields of a sample whose image is a JPEG.
JPEG_FIELDS = {"jpg", *LABEL_FIELDS, "sha256"}


def _maps(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Two rectangles with a void (255) band, as in VOC; object ids 1 and 2, classes 7 and 15."""
    obj = np.zeros((height, width), np.uint8)
    cls = np.zeros((height, width), np.uint8)
    for oid, c, (y, x) in ((1, 7, (8, 8)), (2, 15, (40, 60))):
        h, w = rng.integers(20, 30, size=2)
        obj[y - 3:y + h + 3, x - 3:x + w + 3] = 255
        cls[y - 3:y + h + 3, x - 3:x + w + 3] = 255
        obj[y:y + h, x:x + w] = oid
        cls[y:y + h, x:x + w] = c
    return cls, obj


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    config = ClickConfig(pairs=3, min_area=50)
    out = []
    for i, key in enumerate(KEYS):
        rng = np.random.default_rng(i)
        height, width = 80 + 8 * i, 104
        cls, obj = _maps(rng, height, width)
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        clicks = sample_image_clicks(key, obj, cls, config, image_rng(0, key))
        out.append(Sample(key, jpeg, encode_mask(cls), encode_mask(obj), clicks))
    assert all(len(s.clicks.objects) == 2 for s in out)
    return out


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_round_trip_equals_what_was_sampled(name: str, samples: list[Sample], tmp_path: Path) -> None:
    fmt = get_format(name)
    path = tmp_path / f"shard{fmt.suffix}"
    assert fmt.write(path, samples) == len(samples)
    back = list(read_shard(path))
    assert back == samples
    for original, read in zip(samples, back, strict=True):
        assert read.image_bytes == original.image_bytes  # the source bytes, untouched
        assert np.array_equal(read.object_map(), decode_mask(original.object_png))
        assert 255 in read.class_map() and 255 in read.object_map()
        assert set(np.unique(read.object_map())) == {0, 1, 2, 255}
        assert set(np.unique(read.class_map())) == {0, 7, 15, 255}
        assert read.clicks.num_pairs == 6


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_writes_are_byte_deterministic(name: str, samples: list[Sample], tmp_path: Path) -> None:
    fmt = get_format(name)
    digests = set()
    for i in range(2):
        path = tmp_path / f"s{i}{fmt.suffix}"
        fmt.write(path, samples)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_webdataset_shard_reads_with_webdataset_and_tarfile(samples: list[Sample], tmp_path: Path) -> None:
    path = tmp_path / "train-000000.tar"
    get_format("webdataset").write(path, samples)
    records = list(webdataset.WebDataset(str(path), shardshuffle=False))
    assert [r["__key__"] for r in records] == list(KEYS)
    for record, sample in zip(records, samples, strict=True):
        assert {k for k in record if not k.startswith("__")} == JPEG_FIELDS
        assert record["jpg"] == sample.image_bytes
        assert np.array_equal(decode_mask(record["cls.png"]), sample.class_map())
        assert ImageClicks.from_json_bytes(record["clicks.json"]) == sample.clicks
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [f"{k}.{f}" for k in KEYS for f in sorted(JPEG_FIELDS)]
        assert {m.mtime for m in members} == {0}
        # One 512-byte header per member (no PAX extension headers): the shard stays close to the source's size.
        assert all(m.offset_data - m.offset == 512 for m in members)
        payload = json.loads(tar.extractfile(f"{KEYS[1]}.clicks.json").read())
    pair = payload["objects"][0]["pairs"][0]
    assert set(pair) == {"strategy", "pos", "neg"} and all(len(p) == 2 for p in pair["pos"])


def test_hdf5_shard_has_random_access_with_plain_h5py(samples: list[Sample], tmp_path: Path) -> None:
    path = tmp_path / "train-000000.h5"
    get_format("hdf5").write(path, samples)
    with h5py.File(path, "r") as f:
        assert f["jpg"].shape == (len(samples),)
        assert f["key"][2].decode() == KEYS[2]
        assert f["jpg"][1].tobytes() == samples[1].image_bytes
        assert np.array_equal(decode_mask(f["obj_png"][0].tobytes()), samples[0].object_map())
        key, fields = read_row(f, 2)
        assert Sample.from_fields(key, fields) == samples[2]


def test_webdataset_refuses_a_key_with_a_dot(samples: list[Sample], tmp_path: Path) -> None:
    bad = Sample("2008.1", samples[0].image_bytes, samples[0].class_png, samples[0].object_png, samples[0].clicks)
    with pytest.raises(ValueError, match="breaks webdataset grouping"):
        get_format("webdataset").write(tmp_path / "x.tar", [bad])


def test_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"hdf5.*webdataset"):
        get_format("parquet")


def _as_png(sample: Sample) -> Sample:
    """The sample with its image stored as PNG (as a PNG or BMP source is), the rest unchanged."""
    png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(sample.image_bytes, np.uint8), cv2.IMREAD_COLOR))[1]
    return Sample(sample.key, png.tobytes(), sample.class_png, sample.object_png, sample.clicks)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_png_and_jpeg_samples_share_a_shard(name: str, samples: list[Sample], tmp_path: Path) -> None:
    mixed = [samples[0], _as_png(samples[1]), samples[2]]
    path = tmp_path / f"shard{get_format(name).suffix}"
    get_format(name).write(path, mixed)
    back = list(read_shard(path))
    assert back == mixed
    assert [s.image_field for s in back] == ["jpg", "png", "jpg"]
    # A PNG of the decoded JPEG: lossless.
    assert np.array_equal(back[1].image(), decode_dataset_image(samples[1].image_bytes))
    if name == "webdataset":
        with tarfile.open(path) as tar:
            assert f"{KEYS[1]}.png" in tar.getnames() and f"{KEYS[1]}.jpg" not in tar.getnames()


def test_the_digest_covers_the_image_field_name(samples: list[Sample]) -> None:
    fields = _as_png(samples[0]).to_fields()
    renamed = {("jpg" if k == "png" else k): v for k, v in fields.items()}  # PNG bytes filed as a JPEG
    with pytest.raises(ValueError, match="do not match the sha256"):
        Sample.from_fields(KEYS[0], renamed)
    with pytest.raises(ValueError, match="jpg field holds png bytes"):
        Sample.from_fields(KEYS[0], renamed, check_digest=False)
    with pytest.raises(ValueError, match="two image fields"):
        Sample.from_fields(KEYS[0], {**fields, "jpg": samples[0].image_bytes})
    with pytest.raises(ValueError, match=r"lacks field\(s\) \['jpg or png'\]"):
        Sample.from_fields(KEYS[0], {k: v for k, v in fields.items() if k != "png"})
    with pytest.raises(ValueError, match="neither JPEG nor PNG"):
        Sample(KEYS[0], b"BM" + bytes(60), *fields_of(samples[0])).to_fields()


def fields_of(sample: Sample) -> tuple[bytes, bytes, ImageClicks]:
    return sample.class_png, sample.object_png, sample.clicks
