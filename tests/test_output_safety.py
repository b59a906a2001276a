"""Where the commands write (`ifcn.outputs`): never over their inputs or a file the tool did not write (from issue
21; each test reproduces the fault as it was, which the old code fails, and shows the fix):

1. `ifcn-eval predict --out` over the photos it segments is refused; the photos stay as they were;
2. `ifcn-eval export --out` over the checkpoint it exports is refused;
3. `ifcn-prep inspect --png` over a shard is refused;
4. `ifcn-eval noc --out` (and `miou --out`) over an earlier report is refused, or `--overwrite` moves it aside;
6. `predict` over inputs sharing a file name in different folders gives every input its own output;
16. failed commands leave no empty output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result

from ifcn.pipeline.prep_cli import main as prep
from ifcn.trainer.evaluation.eval_cli import main as evaluate
from tests.demo_data import sample_image
from tests.eval_data import make_checkpoint, make_val_shards


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outputs")
    return {"shards": make_val_shards(root / "val"),
            "interactive": make_checkpoint(root / "interactive.pt", "interactive"),
            "semantic": make_checkpoint(root / "semantic.pt", "semantic")}


def _invoke(group, *args: object) -> Result:
    return CliRunner().invoke(group, [str(a) for a in args])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _photos(folder: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), cv2.cvtColor(sample_image(i, (40, 56)), cv2.COLOR_RGB2BGR))
    return folder


def _predict(inputs: dict[str, Path], images: object, out: Path, *extra: object) -> Result:
    return _invoke(evaluate, "predict", "--checkpoint", inputs["semantic"], "--images", images, "--out", out,
                   "--device", "cpu", "--no-progress", *extra)


@pytest.mark.parametrize("fmt", ["palette", "overlay"])
def test_predict_never_writes_over_the_photos_it_segments(inputs: dict[str, Path], tmp_path: Path,
                                                                   fmt: str) -> None:
    photos = _photos(tmp_path / "photos", ["beach.png", "dog.jpg"])
    before = _files(photos)
    result = _predict(inputs, photos, photos, "--format", fmt)
    assert result.exit_code == 1 and "that is the input" in result.output and "choose another --out" in result.output
    assert _files(photos) == before
    result = _predict(inputs, photos / "beach.png", photos)  # one image, its palette PNG of the same name
    assert result.exit_code == 1 and "that is the input" in result.output and _files(photos) == before
    out = tmp_path / "out"
    assert _predict(inputs, photos, out).exit_code == 0
    assert _predict(inputs, photos, out).exit_code == 0  # its own earlier outputs may be written again


def test_predict_refuses_a_user_file_where_an_output_goes(inputs: dict[str, Path], tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", ["beach.jpg"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "beach.png").write_bytes(b"the user's drawing")
    result = _predict(inputs, photos, out)
    assert result.exit_code == 1 and "a file this tool did not write" in result.output
    assert (out / "beach.png").read_bytes() == b"the user's drawing" and not (out / "classes.json").exists()


def test_export_never_replaces_the_checkpoint(inputs: dict[str, Path], tmp_path: Path) -> None:
    checkpoint = tmp_path / "ck.pt"
    checkpoint.write_bytes(inputs["semantic"].read_bytes())
    result = _invoke(evaluate, "export", "--checkpoint", checkpoint, "--format", "torchscript", "--out", checkpoint)
    assert result.exit_code == 1 and "that is the input" in result.output
    assert checkpoint.read_bytes() == inputs["semantic"].read_bytes()
    other = tmp_path / "report.txt"
    other.write_text("mine")
    result = _invoke(evaluate, "export", "--checkpoint", checkpoint, "--format", "torchscript", "--out", other)
    assert result.exit_code == 1 and "did not write" in result.output and other.read_text() == "mine"
    out = tmp_path / "model.ts"
    for _ in range(2):  # an earlier export may be replaced
        result = _invoke(evaluate, "export", "--checkpoint", checkpoint, "--format", "torchscript", "--out", out)
        assert result.exit_code == 0, result.output


def test_inspect_never_writes_over_a_shard(inputs: dict[str, Path], tmp_path: Path) -> None:
    shards = tmp_path / "val"
    shards.mkdir()
    for f in inputs["shards"].iterdir():
        (shards / f.name).write_bytes(f.read_bytes())
    before = _files(shards)
    for target in (shards / "val-000000.tar", shards / "manifest.json"):
        result = _invoke(prep, "inspect", shards, "--png", target)
        assert result.exit_code == 1 and "that is the input" in result.output, result.output
    assert _files(shards) == before
    (tmp_path / "holiday.png").write_bytes(b"not a figure of this tool")
    result = _invoke(prep, "inspect", shards, "--png", tmp_path / "holiday.png")
    assert result.exit_code == 1 and "did not write" in result.output
    for _ in range(2):  # its own figure may be drawn again
        assert _invoke(prep, "inspect", shards, "--png", tmp_path / "sample.png").exit_code == 0


def test_noc_refuses_an_earlier_report_or_moves_it_aside(inputs: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "rep"
    args = ["noc", "--checkpoint", inputs["interactive"], "--shards", inputs["shards"], "--device", "cpu",
            "--max-clicks", "2", "--limit", "2", "--no-progress", "--out", report]
    assert _invoke(evaluate, *args).exit_code == 0
    before = _files(report)
    result = _invoke(evaluate, *args)
    assert result.exit_code == 1 and "already holds a report" in result.output and "--overwrite" in result.output
    assert _files(report) == before
    result = _invoke(evaluate, *args, "--overwrite")
    assert result.exit_code == 0, result.output
    (previous,) = report.glob("previous-*")
    assert _files(previous) == before and (report / "summary.json").is_file()


def test_miou_refuses_an_earlier_report_or_moves_it_aside(inputs: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "rep"
    args = ["miou", "--checkpoint", inputs["semantic"], "--shards", inputs["shards"], "--device", "cpu",
            "--out", report]
    assert _invoke(evaluate, *args).exit_code == 0
    before = _files(report)
    result = _invoke(evaluate, *args)
    assert result.exit_code == 1 and "already holds a report" in result.output and _files(report) == before
    assert _invoke(evaluate, *args, "--overwrite").exit_code == 0
    (previous,) = report.glob("previous-*")
    assert _files(previous) == before


def test_predict_gives_every_input_its_own_output(inputs: dict[str, Path], tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p3", ["a/x.jpg", "b/x.jpg", "c/x.jpg", "b_x.jpg", "X.jpg", "d/x.png"])
    out = tmp_path / "out"
    result = _predict(inputs, f"{photos}/**/*.*g", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "classes.json").read_text())
    names = [entry["output"] for entry in summary["images"].values()]
    assert len(summary["images"]) == 6 and len({n.casefold() for n in names}) == 6
    assert sorted(p.name for p in out.glob("*.png")) == sorted(names)
    for source, entry in summary["images"].items():  # each output is the prediction of its own image
        assert np.asarray(cv2.imread(str(out / entry["output"]), cv2.IMREAD_UNCHANGED)).shape[:2] == \
            cv2.imread(source).shape[:2]


def test_failed_commands_leave_no_output_folder(inputs: dict[str, Path], tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", ["a.jpg"])
    result = _invoke(evaluate, "predict", "--checkpoint", inputs["interactive"], "--images", photos, "--out",
                     tmp_path / "masks", "--device", "cpu")
    assert result.exit_code == 1 and "needs task 'semantic'" in result.output
    assert not (tmp_path / "masks").exists()
    result = _invoke(evaluate, "miou", "--checkpoint", inputs["semantic"], "--shards", tmp_path / "nothing",
                     "--device", "cpu", "--out", tmp_path / "rep")
    assert result.exit_code == 1 and not (tmp_path / "rep").exists()
