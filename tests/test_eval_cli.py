"""`ifcn-eval` end to end on tiny hand-made shards with untrained checkpoints: outputs, overlays and errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ifcn.trainer.evaluation.eval_cli import main
from tests.eval_data import make_checkpoint, make_val_shards

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    return {"shards": make_val_shards(root / "val"),
            "interactive": make_checkpoint(root / "interactive.pt", "interactive"),
            "semantic": make_checkpoint(root / "semantic.pt", "semantic")}


def _run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _noc(inputs: dict[str, Path], out: Path, *extra: str | Path) -> tuple[int, str]:
    return _run("noc", "--checkpoint", inputs["interactive"], "--shards", inputs["shards"], "--device", "cpu",
                "--max-clicks", "3", "--out", out, "--no-progress", *extra)


def _row_name(folder: Path) -> str:
    """The documented rule, read off the files: the source the manifest records, else the shards' folder."""
    return json.loads((folder / "manifest.json").read_text())["source"].get("name") or folder.name


def _table(output: str) -> dict[str, dict[str, str]]:
    """The printed Markdown table as {dataset: {column: cell}}."""
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_noc_writes_every_output_and_batched_logs_equal_one_at_a_time(inputs: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    code, output = _noc(inputs, tmp_path / "batched", "--batch-size", "8", "--batch-invariant")
    assert code == 0, output
    assert "\r" not in output  # --no-progress
    (row,) = _table(output).values()
    assert set(row) == {"dataset", "objects", "NoC@85", "NoC@90", "NoF@85", "NoF@90", "never@85", "never@90",
                        "mIoU@1", "s/click"}  # mIoU@5 only with 5 clicks or more
    assert row["dataset"] == _row_name(inputs["shards"]) and row["objects"] == "8"
    assert (tmp_path / "batched" / "noc_table.md").read_text() in output
    summary = json.loads((tmp_path / "batched" / "summary.json").read_text())
    assert summary["num_objects"] == 8 and len(summary["miou_curve"]) == 3 and summary["dataset"] == row["dataset"]
    assert set(summary["noc"]) == {"85", "90"} and all(1 <= v <= 3 for v in summary["noc"].values())
    assert set(summary["never_reached"]) == {"85", "90"}
    assert summary["settings"]["max_clicks"] == 3 and summary["settings"]["threshold"] == 0.49
    assert summary["model_config"]["backbone"] == "resnet18" and summary["task"] == "interactive"
    assert summary["manifest_id"] and summary["checkpoint_manifest_id"] == "untrained"
    lines = (tmp_path / "batched" / "objects.jsonl").read_text().splitlines()
    assert len(lines) == 8
    first = json.loads(lines[0])
    assert set(first) == {"key", "name", "object_id", "class", "area", "clicks", "ious"}
    assert len(first["clicks"]) == 3 and len(first["ious"]) == 3 and first["clicks"][0][0] == "+"
    assert (tmp_path / "batched" / "miou_curve.png").read_bytes().startswith(PNG)

    code, output = _noc(inputs, tmp_path / "single", "--batch-size", "1", "--batch-invariant")
    assert code == 0, output
    assert (tmp_path / "single" / "objects.jsonl").read_text() == "\n".join(lines) + "\n"


def test_noc_options_are_recorded(inputs: dict[str, Path], tmp_path: Path) -> None:
    code, output = _noc(inputs, tmp_path / "r", "--limit", "3", "--clicker", "seed", "--refine", "grabcut",
                        "--iou", "0.5", "--threshold", "0.49", "--min-area", "100", "--label", "mine")
    assert code == 0, output
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["num_objects"] == 3 and summary["label"] == "mine"
    assert summary["settings"] | {"clicker": "seed", "refine": "grabcut", "strict_iou": True, "threshold": 0.49,
                                  "min_area": 100, "limit": 3, "iou_thresholds": [0.5]} == summary["settings"]
    assert set(summary["noc"]) == {"50"}


def test_zoom_in_at_scale_one_equals_whole_image_prediction(inputs: dict[str, Path], tmp_path: Path) -> None:
    # The test images are at most 64 px: a 64-px zoom's view is the whole image (the crop never goes under 100 px)
    # at scale 1, so every click gives the same prediction as without zoom.
    plain = ("--batch-size", "1", "--batch-invariant")
    assert _noc(inputs, tmp_path / "plain", *plain)[0] == 0
    code, output = _noc(inputs, tmp_path / "zoom", *plain, "--zoom-in", "64")
    assert code == 0, output
    assert (tmp_path / "zoom" / "objects.jsonl").read_text() == (tmp_path / "plain" / "objects.jsonl").read_text()
    summary = json.loads((tmp_path / "zoom" / "summary.json").read_text())
    assert summary["settings"]["zoom_in"] == 64 and summary["label"].endswith("+zoom 64")
    code, output = _noc(inputs, tmp_path / "bad", "--zoom-in", "8")
    assert code != 0 and "--zoom-in" in output


def test_plot_overlays_reports(inputs: dict[str, Path], tmp_path: Path) -> None:
    for name, extra in (("a", ()), ("b", ("--threshold", "0.3"))):
        assert _noc(inputs, tmp_path / name, "--limit", "2", *extra)[0] == 0
    code, output = _run("plot", tmp_path / "a", tmp_path / "b", "--png", tmp_path / "both.png",
                        "--label", "A", "--label", "B")
    assert code == 0, output
    assert (tmp_path / "both.png").read_bytes().startswith(PNG)
    code, output = _run("plot", tmp_path / "a", tmp_path / "b", "--png", tmp_path / "x.png", "--label", "A")
    assert code != 0 and "--label" in output
    code, output = _run("plot", tmp_path, "--png", tmp_path / "x.png")
    assert code != 0 and "summary.json" in output


def test_iou_prints_the_first_pass_iou(inputs: dict[str, Path]) -> None:
    code, output = _run("iou", "--checkpoint", inputs["interactive"], "--shards", inputs["shards"], "--device", "cpu")
    assert code == 0, output
    assert "IoU" in output and "8 objects" in output


def test_miou_writes_the_class_table_and_confusion_png(inputs: dict[str, Path], tmp_path: Path) -> None:
    code, output = _run("miou", "--checkpoint", inputs["semantic"], "--shards", inputs["shards"], "--device", "cpu",
                        "--out", tmp_path / "sem")
    assert code == 0, output
    for word in ("background", "aeroplane", "tvmonitor", "mIoU", "pixel accuracy"):
        assert word in output
    assert (tmp_path / "sem" / "confusion.png").read_bytes().startswith(PNG)
    summary = json.loads((tmp_path / "sem" / "semantic.json").read_text())
    assert len(summary["per_class_iou"]) == 21 and 0.0 <= summary["pixel_accuracy"] <= 1.0
    matrix = summary["confusion"]
    assert len(matrix) == 21 and sum(map(sum, matrix)) > 0


@pytest.mark.parametrize(("args", "message"), [
    (("noc", "--checkpoint", "{semantic}", "--shards", "{shards}"), "ifcn-eval miou"),
    (("iou", "--checkpoint", "{semantic}", "--shards", "{shards}"), "task 'semantic'"),
    (("miou", "--checkpoint", "{interactive}", "--shards", "{shards}"), "ifcn-eval noc"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}/nothing-*.tar"), "nothing-"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--max-clicks", "0"), "--max-clicks"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--iou", "0"), "--iou"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--iou", "150"), "--iou"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--max-clicks", "100000"), "1<=x<=1000"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--batch-size", "100000"), "--batch-size"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--workers", "100000"), "--workers"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--shards", "{shards}"), "row name"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "bad name={shards}"), "bad name="),
    (("noc", "--checkpoint", "{shards}/missing.pt", "--shards", "{shards}"), "--checkpoint"),
    (("noc", "--checkpoint", "{interactive}", "--shards", "{shards}", "--precision", "fp16", "--device", "cpu"),
     "fp16"),
])
def test_bad_input_gets_a_clear_error(inputs: dict[str, Path], args: tuple[str, ...], message: str) -> None:
    code, output = _run(*(a.format(**inputs) for a in args))
    assert code != 0
    assert message in output


def test_noc_on_the_pipeline_val_shards_of_both_formats(inputs: dict[str, Path], val_shards: Path,
                                                       train_shards_h5: Path, tmp_path: Path) -> None:
    from ifcn.shards.manifest import resolve_shards
    from ifcn.shards.reader import read_shard

    code, output = _run("noc", "--checkpoint", inputs["interactive"], "--shards", val_shards, "--device", "cpu",
                        "--max-clicks", "2", "--out", tmp_path / "wds")
    assert code == 0, output
    summary = json.loads((tmp_path / "wds" / "summary.json").read_text())
    keys = [s.key for p in resolve_shards(val_shards).locations for s in read_shard(p)]
    logged = [json.loads(line)["key"] for line in (tmp_path / "wds" / "objects.jsonl").read_text().splitlines()]
    assert summary["num_objects"] == len(logged) >= len(keys)  # every image holds at least one object
    assert sorted(set(logged)) == sorted(keys) and logged == sorted(logged, key=keys.index)  # reading order
    code, output = _run("noc", "--checkpoint", inputs["interactive"], "--shards", train_shards_h5, "--device", "cpu",
                        "--max-clicks", "2", "--limit", "2")
    assert code == 0 and _table(output)[_row_name(train_shards_h5)]["objects"] == "2", output


def test_noc_over_several_datasets_prints_one_table_and_writes_a_report_per_dataset(inputs: dict[str, Path],
                                                                                   tmp_path: Path) -> None:
    other = make_val_shards(tmp_path / "grabcut", images_per_shard=4)
    out = tmp_path / "multi"
    code, output = _run("noc", "--checkpoint", inputs["interactive"], "--device", "cpu", "--max-clicks", "5",
                        "--shards", f"first={inputs['shards']}", "--shards", f"{other}/manifest.json", "--iou", "85",
                        "--iou", "0.9", "--limit", "3", "--out", out, "--no-progress")
    assert code == 0, output
    table = _table(output)
    names = ["first", _row_name(other)]  # NAME=, then the manifest's source or its folder
    assert list(table) == names
    assert all(row["objects"] == "3" and "mIoU@5" in row and "NoF@90" in row for row in table.values())
    combined = json.loads((out / "summary.json").read_text())
    assert combined["dataset_order"] == names and combined["table"] in output
    assert (out / "noc_table.md").read_text() == combined["table"]
    for name in names:
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary == combined["datasets"][name] and set(summary["noc"]) == {"85", "90"}
        assert len((out / name / "objects.jsonl").read_text().splitlines()) == 3
    assert (out / "miou_curve.png").read_bytes().startswith(PNG)
    code, output = _run("plot", out, out / "first", "--png", tmp_path / "all.png")
    assert code == 0 and (tmp_path / "all.png").read_bytes().startswith(PNG), output


def test_dataset_names() -> None:
    from ifcn.trainer.evaluation.datasets import folder_name, source_name, split_name

    assert split_name("grabcut=shards/gc") == ("grabcut", "shards/gc")
    assert split_name("shards/gc") == (None, "shards/gc")
    assert split_name("http://host/x?a=b") == (None, "http://host/x?a=b")
    assert split_name("a=http://host/x?a=b") == ("a", "http://host/x?a=b")
    assert folder_name("data/shards/grabcut/") == "grabcut"
    assert folder_name("data/berkeley/manifest.json") == "berkeley"
    assert folder_name("data/davis/val-{000000..000003}.tar") == "davis"
    assert folder_name("https://host/sets/sbd/val-*.tar") == "sbd"
    assert folder_name("pipe:curl -s https://host/sets/sbd/val-{0..3}.tar") == "sbd"
    assert folder_name("pipe:cat x") == "pipe" and folder_name("odd name!") == "odd_name_"
    assert source_name(SimpleNamespace(source=SimpleNamespace(name="coco"))) == "coco"
    assert source_name(SimpleNamespace(source=SimpleNamespace(root="/x"))) is None and source_name(None) is None
