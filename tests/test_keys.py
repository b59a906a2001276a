"""The rule that turns any image name into a shard key (`ifcn.keys`), and real folder names through every source:
sample -> verify -> NoC report, with the original name kept in the clicks JSON and the per-object records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ifcn.errors import InputError
from ifcn.keys import KEY, check_unique_keys, key_to_name, name_to_key
from ifcn.pipeline.prep_cli import main
from ifcn.pipeline.sources import SOURCES, ImageRef, Listing, SourceSpec, get_source
from ifcn.shards.manifest import resolve_shards
from ifcn.shards.reader import read_shard
from ifcn.trainer.evaluation.eval_cli import main as eval_main
from tests.eval_data import make_checkpoint

#: A real-world name: a space, dots, a percent sign that already looks like an escape, a non-ASCII letter.
ODD_NAME = "baseball bat.v2 100%20 caf\u00e9"
NAMES = [ODD_NAME, "a b", "a.b", "%", "%41", "\u00e9t\u00e9", "\u732b", "x\udcff", "2008_000123", "-_"]


@pytest.mark.parametrize("name", NAMES)
def test_the_key_rule_is_safe_and_reversible(name: str) -> None:
    key = name_to_key(name)
    assert KEY.fullmatch(key) and "." not in key and " " not in key
    assert key_to_name(key) == name and name_to_key(key_to_name(key)) == key


def test_safe_names_are_their_own_keys_and_others_are_percent_escaped() -> None:
    assert name_to_key("2008_000123") == "2008_000123"  # VOC ids and COCO image ids keep their keys
    assert name_to_key("baseball bat00_000000057232") == "baseball%20bat00_000000057232"
    assert name_to_key("a.b%") == "a%2Eb%25" and name_to_key("\u00e9") == "%C3%A9"
    assert len({name_to_key(n) for n in NAMES}) == len(NAMES)


@pytest.mark.parametrize("key", ["a b", "a.b", "%2e", "%4", ""])
def test_strings_the_rule_cannot_make_are_not_keys(key: str) -> None:
    with pytest.raises(ValueError, match="not a sample key"):
        key_to_name(key)


def test_two_names_of_one_key_are_refused_naming_both(tmp_path: Path) -> None:
    assert check_unique_keys([("a", "a"), ("b", "b")]) is None
    refs = (ImageRef("k", name="first name"), ImageRef("j"), ImageRef("k", name="second name"))
    with pytest.raises(InputError) as info:
        Listing(tmp_path, "all", refs)
    assert info.value.kind == "duplicate_id" and info.value.path == str(tmp_path)
    assert "'first name' and 'second name' both give the sample key 'k'" in info.value.reason


def _odd_copy(spec: SourceSpec, folder: Path) -> SourceSpec:
    """A copy of a layout cut to its first two images (for speed), the first renamed to `ODD_NAME` (its files and its
    split-file line or annotation)."""
    root = Path(shutil.copytree(str(spec.root), folder / "data"))
    if spec.name == "coco":
        coco_json = folder / "instances.json"
        data = json.loads(Path(str(spec.coco_json)).read_text())
        data["images"] = data["images"][:2]
        data["annotations"] = [a for a in data["annotations"] if a["image_id"] in {i["id"] for i in data["images"]}]
        image = data["images"][0]
        old, image["file_name"] = image["file_name"], f"{ODD_NAME}{Path(image['file_name']).suffix}"
        (root / old).rename(root / image["file_name"])
        coco_json.write_text(json.dumps(data))
        return SourceSpec(spec.name, root, spec.split, coco_json)
    copy = SourceSpec(spec.name, root, spec.split)
    first, second, *rest = [r.name for r in get_source(spec.name).list_split(copy, str(spec.split)).refs]
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in [p for p in files if p.stem in rest]:
        path.unlink()
    for path in [p for p in files if p.stem == first]:
        path.rename(path.with_name(ODD_NAME + path.suffix))
    for split_file in root.glob("**/*.txt"):
        split_file.write_text(f"{ODD_NAME}\n{second}\n")
    return copy


def test_odd_names_through_every_source_shards_verify_and_the_noc_report(
        synth_layouts: dict[str, SourceSpec], tmp_path: Path, dask_address: str) -> None:
    datasets = []
    for name, spec in synth_layouts.items():
        copy = _odd_copy(spec, tmp_path / name)
        out = tmp_path / name / "shards"
        args = ["sample", *copy.cli_args(), "--pairs", "1", "--out", out, "--no-progress", "--scheduler", dask_address]
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, (name, result.output)
        assert CliRunner().invoke(main, ["verify", str(out)]).exit_code == 0
        samples = [s for loc in resolve_shards(str(out)).locations for s in read_shard(loc)]
        assert len(samples) == 2
        [odd] = [s for s in samples if s.clicks.name.startswith(ODD_NAME)]
        expected_name = f"{ODD_NAME}.jpg" if name == "coco" else ODD_NAME  # COCO: the key is the id, the name the file
        assert odd.clicks.name == expected_name and json.loads(odd.to_fields()["clicks.json"])["name"] == expected_name
        assert odd.key == (odd.key if name == "coco" else name_to_key(ODD_NAME)) and KEY.fullmatch(odd.key)
        datasets += ["--shards", f"{name}={out}"]
    assert len(datasets) == 2 * len(SOURCES)
    checkpoint = make_checkpoint(tmp_path / "untrained.pt", "interactive")
    report = tmp_path / "noc"
    evaluated = CliRunner().invoke(eval_main, ["noc", "--checkpoint", str(checkpoint), *datasets, "--device", "cpu",
                                               "--max-clicks", "1", "--no-progress", "--out", str(report)])
    assert evaluated.exit_code == 0, evaluated.output
    for name in synth_layouts:
        records = [json.loads(line) for line in (report / name / "objects.jsonl").read_text().splitlines()]
        assert any(r["name"].startswith(ODD_NAME) for r in records), name
