"""`ifcn-train` as people run it: the paper's FCN → iFCN recipe (`--init-from`), plain logs for batch jobs, one-flag
resume, `--config`, `--max-minutes`, TensorBoard, `--version`, the settings checked in one place."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ifcn.cores import usable_cores
from ifcn.trainer.core.checkpoint import load_checkpoint
from ifcn.trainer.run_files import read_metrics
from ifcn.trainer.tb_log import PREVIEW_ITEMS
from ifcn.trainer.train_cli import main
from ifcn.trainer.train_config import TrainConfig

TINY = ["--arch", "resnet18", "--weights", "none", "--crop", "64", "--batch-size", "8", "--workers", "0",
        "--device", "cpu", "--no-progress"]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_init_from_a_semantic_run_starts_an_interactive_one(semantic_run: Path, train_shards: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "ifcn"
    code, text = _run("--shards", train_shards, "--out", out, *TINY, "--epochs", "0", "--init-from",
                      semantic_run / "best.pt")
    assert code == 0, text
    assert "kept" in text and "adapted 1 (backbone.body.conv1.weight)" in text and "re-initialised" in text
    semantic = load_checkpoint(semantic_run / "best.pt")["model"]
    start = load_checkpoint(out / "last.pt")["model"]  # --epochs 0: the initialised model
    conv = "backbone.body.conv1.weight"
    assert start[conv].shape[1] == 5 and semantic[conv].shape[1] == 3
    torch.testing.assert_close(start[conv][:, :3], semantic[conv], rtol=0, atol=0)  # (a) RGB filters kept
    assert not start[conv][:, 3:].any()  # (b) the click channels start at zero
    trunk = [n for n in semantic if n.startswith(("backbone.", "fc.")) and n != conv]
    assert len(trunk) > 100
    for name in trunk:  # (a) every other backbone tensor as the semantic run left it
        torch.testing.assert_close(start[name], semantic[name], rtol=0, atol=0, msg=name)
    assert start["head.score32.weight"].shape[0] == 1 and semantic["head.score32.weight"].shape[0] == 21
    code, text = _run("--out", out, "--resume", "--epochs", "1")  # (c) the run trains
    assert code == 0 and text.strip().splitlines()[-1].startswith("done: 1 epochs"), text
    trained = load_checkpoint(out / "last.pt")
    assert trained["step"] > 0 and not torch.equal(trained["model"][conv], start[conv])


def test_init_from_another_architecture_names_the_tensors_and_the_fix(semantic_run: Path, train_shards: Path,
                                                                      tmp_path: Path) -> None:
    code, text = _run("--shards", train_shards, "--out", tmp_path / "run", *TINY, "--epochs", "0", "--stride", "32",
                      "--init-from", semantic_run / "best.pt")
    assert code == 1 and "head.score16.bias (file 21, model absent)" in text and "--stride 8" in text, text
    assert not (tmp_path / "run" / "last.pt").exists()


def test_weights_holding_another_fcn_point_to_init_from(semantic_run: Path, train_shards: Path,
                                                        tmp_path: Path) -> None:
    best = semantic_run / "best.pt"
    args = ["--shards", train_shards, "--out", tmp_path / "run", *TINY, "--epochs", "0"]
    code, text = _run(*[a if a != "none" else best for a in args])
    assert code == 1 and "backbone.body.conv1.weight (file 64×3×7×7, model 64×5×7×7)" in text, text
    assert f"pass --init-from {best} instead of --weights" in text and "weights=" not in text


def test_best_checkpoint_has_no_optimizer_state(semantic_run: Path) -> None:
    best, last = load_checkpoint(semantic_run / "best.pt"), load_checkpoint(semantic_run / "last.pt")
    assert "optimizer" in last and not {"optimizer", "scheduler", "scaler", "rng"} & set(best)
    assert (semantic_run / "best.pt").stat().st_size < 0.5 * (semantic_run / "last.pt").stat().st_size
    for name, tensor in best["model"].items():
        torch.testing.assert_close(tensor, last["model"][name], rtol=0, atol=0)


def test_plain_log_and_validation_lines_with_no_progress(train_shards: Path, val_shards: Path,
                                                         tmp_path: Path) -> None:
    code, text = _run("--shards", train_shards, "--val-shards", val_shards, "--out", tmp_path / "run", *TINY,
                      "--epochs", "2", "--log-every", "2", "--val-limit", "2")
    assert code == 0, text
    lines = text.strip().splitlines()
    steps = [line for line in lines if line.startswith("epoch ") and " step " in line]
    assert steps and all(" loss " in line and " lr " in line and " samples/s " in line for line in steps)
    assert {line.split()[1] for line in steps} == {"1/2", "2/2"}
    validations = [line for line in lines if "validation: val_iou" in line]
    assert len(validations) == 2 and all("(best val_iou " in line for line in validations)
    assert len([line for line in lines if line.startswith("done: 2 epochs")]) == 1 and lines[-1].startswith("done")
    records = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "step"]
    assert len(records) == len(steps)  # one console line per log record


def test_max_minutes_stops_cleanly_and_resume_with_only_out_continues_exactly(train_shards: Path,
                                                                              tmp_path: Path) -> None:
    flags = ["--shards", train_shards, *TINY, "--epochs", "2", "--log-every", "100"]
    reference = tmp_path / "reference"
    assert _run(*flags, "--out", reference)[0] == 0
    run = tmp_path / "run"
    code, text = _run(*flags, "--out", run, "--max-minutes", "0.0001")  # stops after its first step
    assert code == 0 and text.strip().splitlines()[-1].startswith("stopped: --max-minutes 0.0001"), text
    assert f"ifcn-train --out {run} --resume" in text
    (stop,) = [r for r in read_metrics(run) if r["kind"] == "stop"]
    assert stop["step"] == stop["epoch_step"] == 1 and stop["reason"] == "max_minutes"
    assert load_checkpoint(run / "last.pt")["epoch_step"] == 1
    code, text = _run("--out", run, "--resume")  # the stored settings, --max-minutes included: one more step
    assert code == 0 and "stopped" in text and load_checkpoint(run / "last.pt")["step"] == 2, text
    code, text = _run("--out", run, "--resume", "--max-minutes", "60")  # a change a resume may make
    assert code == 0 and text.strip().splitlines()[-1].startswith("done: 2 epochs"), text
    resumed, uninterrupted = load_checkpoint(run / "last.pt"), load_checkpoint(reference / "last.pt")
    assert resumed["step"] == uninterrupted["step"] and resumed["epoch_step"] == 0
    for name, tensor in uninterrupted["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    epochs = [r for r in read_metrics(run) if r["kind"] == "epoch"]
    expected = [r for r in read_metrics(reference) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and [r["rank_steps"] for r in epochs] == [r["rank_steps"]
                                                                                         for r in expected]
    assert epochs[0]["train_loss"] == pytest.approx(expected[0]["train_loss"], rel=1e-4)
    code, text = _run("--out", run, "--resume", "--lr", "0.5")
    assert code == 1 and "--lr 0.5 (the run used 0.001)" in text


def test_config_file_starts_a_new_run_with_stored_settings(semantic_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    code, text = _run("--config", semantic_run / "config.json", "--out", out, "--epochs", "0")
    assert code == 0, text
    old, new = (json.loads((d / "config.json").read_text()) for d in (semantic_run, out))
    assert new["task"] == "semantic" and new["epochs"] == 0 and new["out"] == str(out)
    assert {k: v for k, v in new.items() if k not in ("out", "epochs")} == {
        k: v for k, v in old.items() if k not in ("out", "epochs")}
    code, text = _run("--config", semantic_run / "config.json", "--out", tmp_path / "x", "--resume")
    assert code == 2 and "pass only one" in text


@pytest.mark.parametrize("flags, settings, message", [
    (["--stride", "7"], {"stride": 7}, "--stride must be one of 8, 16, 32, got 7"),
    (["--workers", "-1"], {"workers": -1}, "--workers must be ≥ 0"),
    (["--max-minutes", "0"], {"max_minutes": 0.0}, "--max-minutes must be > 0"),
    (["--resume", "--overwrite"], {"resume": True, "overwrite": True}, "pass only one"),
])
def test_settings_are_checked_in_one_place(tmp_path: Path, flags: list[str], settings: dict, message: str) -> None:
    code, text = _run("--shards", tmp_path, "--out", tmp_path / "run", *flags)
    assert code == 2 and message in text, text
    with pytest.raises(ValueError, match=message):  # the same check, the same words, without the command line
        TrainConfig(shards=str(tmp_path), out=str(tmp_path / "run"), **settings)
    assert not (tmp_path / "run").exists()


def test_default_workers_never_exceed_the_cores() -> None:
    assert 1 <= TrainConfig("shards", "out").workers <= min(4, usable_cores())


def test_version() -> None:
    code, text = _run("--version")
    assert code == 0 and text.startswith("ifcn-train, version ")


def test_tensorboard_writes_scalars_and_validation_images(train_shards: Path, val_shards: Path,
                                                          tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, text = _run("--shards", train_shards, "--val-shards", val_shards, "--out", tmp_path / "run", *TINY,
                      "--epochs", "1", "--val-limit", "2", "--tensorboard")
    assert code == 0, text
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0}).Reload()
    assert {"step/loss", "epoch/train_loss", "epoch/val_iou"} <= set(events.Tags()["scalars"])
    images = [events.Images(tag)[0] for tag in events.Tags()["images"]]
    assert len(images) == PREVIEW_ITEMS
    assert all(i.width % 3 == 0 and i.width > 2 * i.height for i in images)  # [image | target | prediction]


def test_tensorboard_asked_for_but_missing_is_refused_with_the_install_command(
        train_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    code, text = _run("--shards", train_shards, "--out", tmp_path / "run", *TINY, "--epochs", "1", "--tensorboard")
    assert code == 1 and 'pip install -e ".[tensorboard]"' in text
    assert not (tmp_path / "run" / "last.pt").exists()
