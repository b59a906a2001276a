"""The manifest: its schema matches the dataclasses, writing/loading round-trips, shard sets resolve."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.sources.voc import reference_images
from ifcn.shards.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    Manifest,
    ShardEntry,
    SkippedImage,
    Source,
    Totals,
    load_manifest,
    resolve_shards,
    schema,
    write_manifest,
)


def _manifest(n_shards: int = 3) -> Manifest:
    shards = tuple(ShardEntry(path=f"train-{i:06d}.tar", format="webdataset", samples=4, objects=9, pairs=27,
                              bytes=1000 + i, sha256=f"{i:064x}", first_key=f"2008_{4 * i:06d}",
                              last_key=f"2008_{4 * i + 3:06d}") for i in range(n_shards))
    return Manifest(
        schema_version=SCHEMA_VERSION, tool_version="0.1.0", format="webdataset",
        params={"clicks": ClickConfig(pairs=3).to_dict(), "seed": 0, "format": "webdataset", "images_per_shard": 4},
        source=Source(root="/data/VOC2012", split="train", ids_sha256="a" * 64, num_ids=4 * n_shards),
        shards=shards,
        totals=Totals(images=4 * n_shards, objects=9 * n_shards, pairs=27 * n_shards, skipped_objects={"small": 2},
                      skipped_images=(SkippedImage("2008_000099", "/data/x.jpg", "corrupt_jpeg: truncated"),)))


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def test_schema_names_exactly_the_dataclass_fields() -> None:
    s = schema()
    names = lambda cls: {f.name for f in dataclasses.fields(cls)}  # noqa: E731
    assert set(s["required"]) == set(s["properties"]) == names(Manifest)
    # Fields with a default (added after manifests were first written: the source's name, the annotation file) may be
    # absent from older manifests; every other field is required.
    required = lambda cls: {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING  # noqa: E731
                            and f.default_factory is dataclasses.MISSING}
    for key, cls in (("source", Source), ("totals", Totals)):
        assert set(s["properties"][key]["properties"]) == names(cls)
        assert set(s["properties"][key]["required"]) == (required(cls) if key == "source" else names(cls))
    assert set(s["$defs"]["shard"]["properties"]) == names(ShardEntry)
    assert set(s["properties"]["totals"]["properties"]["skipped_images"]["items"]["properties"]) == names(SkippedImage)
    assert set(s["$defs"]["clicks"]["properties"]) == names(ClickConfig)
    assert set(s["$defs"]["clicks"]["required"]) == names(ClickConfig) - {"min_box_fill"}  # added later: optional


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    m = _manifest()
    path = write_manifest(tmp_path, m)
    assert path == tmp_path / MANIFEST_NAME
    assert load_manifest(tmp_path) == m
    assert load_manifest(path).id == m.id
    write_manifest(tmp_path, m)
    assert path.read_bytes() == m.to_json_bytes()  # no timestamps: the same manifest gives the same bytes


def test_a_manifest_written_before_other_sources_loads_as_voc(tmp_path: Path) -> None:
    data = json.loads(_manifest().to_json_bytes())
    for key in ("name", "annotation_file", "annotation_sha256"):
        del data["source"][key]
    del data["params"]["clicks"]["min_box_fill"]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    loaded = load_manifest(tmp_path)
    assert (loaded.source.name, loaded.source.annotation_file) == ("voc", "")
    assert loaded.source == _manifest().source  # the defaults are what a VOC manifest of today records


@pytest.mark.parametrize("change", [
    lambda d: d.pop("totals"),
    lambda d: d.update(extra=1),
    lambda d: d["shards"][0].update(sha256="xyz"),
    lambda d: d["shards"][0].pop("last_key"),
    lambda d: d["params"]["clicks"].update(pairs=0),
    lambda d: d.update(format="parquet"),
])
def test_load_rejects_what_the_schema_forbids(change, tmp_path: Path) -> None:
    d = json.loads(_manifest().to_json_bytes())
    change(d)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(d))
    with pytest.raises(ValueError, match="manifest schema"):
        load_manifest(tmp_path)


def test_write_refuses_an_invalid_manifest(tmp_path: Path) -> None:
    bad = dataclasses.replace(_manifest(), format="zip")
    with pytest.raises(jsonschema.ValidationError):
        write_manifest(tmp_path, bad)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_resolve_shards_from_folder_manifest_and_patterns(tmp_path: Path) -> None:
    m = _manifest()
    write_manifest(tmp_path, m)
    for s in m.shards:
        (tmp_path / s.path).write_bytes(b"x")
    expected = tuple(str(tmp_path / s.path) for s in m.shards)
    for spec in (tmp_path, tmp_path / MANIFEST_NAME):
        shard_set = resolve_shards(spec)
        assert shard_set.locations == expected and shard_set.manifest == m
    brace = resolve_shards(f"{tmp_path}/train-{{000000..000002}}.tar")
    assert brace.locations == expected and brace.manifest is None
    assert resolve_shards(f"{tmp_path}/train-*.tar").locations == expected
    (tmp_path / m.shards[1].path).unlink()
    with pytest.raises(FileNotFoundError, match=r"train-000001\.tar"):
        resolve_shards(tmp_path)


def test_reference_facts_of_voc2012() -> None:
    assert (reference_images("train"), reference_images("val"), reference_images("trainval")) == (1464, 1449, 2913)
    assert reference_images("custom") is None
