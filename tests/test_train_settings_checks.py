"""`ifcn-train`'s checks of its settings before a run starts: `--config` values, limits, no run folder left by a
failed start (from issue 21, numbered by its items; each test failed on the code before the fix).

7. `--config` JSON: every value of the wrong type and every unknown key is refused, one clear line each;
15. absurd limits (`--crop 100000`) are refused before anything is written, and a failed start leaves no run folder;
16. a failed start (wrong `--shards`) leaves no empty output folder;
17. clear messages: a full disk before the first checkpoint does not advise `--resume`; `config.json` stores resolved
    shard paths so a resume works from another directory; a shard given as `--weights` is called what it is.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ifcn.trainer.train_cli import main

SEMANTIC = ["--task", "semantic", "--arch", "resnet18", "--weights", "none", "--crop", "64", "--batch-size", "8",
            "--workers", "0", "--device", "cpu", "--no-progress"]


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def test_config_values_of_the_wrong_type_and_unknown_keys_are_refused_one_line_each(
        train_shards: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"shards": str(train_shards), "task": "semantic", "channels_last": "false",
                                  "epochs": "2", "batch_size": 2.5, "lr": "fast", "crop": None, "epoch": 3}))
    result = _invoke("--config", config, "--out", tmp_path / "run")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if str(config) in line]
    assert len(lines) == 6, result.output
    for expected in ("'epoch' is not a setting (did you mean 'epochs'?)", '--channels-last takes true or false',
                     '--epochs takes a whole number, got "2"', "--batch-size takes a whole number, got 2.5",
                     '--lr takes a number, got "fast"', "--crop takes a whole number, got null"):
        assert sum(expected in line for line in lines) == 1, expected
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_absurd_limits_are_refused_before_anything_is_written(train_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    for flags in (["--crop", "100000"], ["--scale-range", "0.5", "1000"]):
        result = _invoke("--shards", train_shards, "--out", run, *SEMANTIC, *flags)
        assert result.exit_code == 2 and ("--crop must lie in 32..4096" in result.output
                                          or "--scale-range needs 0 < MIN ≤ MAX ≤ 8" in result.output)
        assert not run.exists()


def test_a_start_that_fails_before_its_first_checkpoint_leaves_no_run_folder(
        train_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ifcn.trainer.train as train_module

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the first step failed (out of memory, say)")

    run = tmp_path / "runs" / "new"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "train_one_epoch", broken)
        result = _invoke("--shards", train_shards, "--out", run, *SEMANTIC, "--epochs", "1")
    assert isinstance(result.exception, RuntimeError) and not (tmp_path / "runs").exists()


def test_a_wrong_shards_leaves_no_empty_run_folder(tmp_path: Path) -> None:
    result = _invoke("--shards", tmp_path / "no-such-shards", "--out", tmp_path / "a" / "run", *SEMANTIC)
    assert result.exit_code == 1 and "no-such-shards" in result.output and not (tmp_path / "a").exists()


def test_a_full_disk_before_the_first_checkpoint_advises_a_rerun_and_paths_are_stored_resolved(
        train_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ifcn.trainer.run_files as run_files

    def disk_full(path: Path, data: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.chdir(train_shards.parent)
    args = ["--shards", train_shards.name, "--out", tmp_path / "run", *SEMANTIC, "--epochs", "0"]
    with monkeypatch.context() as patch:
        patch.setattr(run_files, "write_json", disk_full)
        result = _invoke(*args)
    assert result.exit_code == 1 and "no space left on device" in result.output
    assert "--resume" not in result.output and "run the same command again" in result.output
    assert not (tmp_path / "run").exists()
    assert _invoke(*args).exit_code == 0  # the same command, no --overwrite needed
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["shards"] == str(train_shards.resolve())  # so that --resume works from any directory
    monkeypatch.chdir(tmp_path)
    result = _invoke("--out", tmp_path / "run", "--resume")
    assert result.exit_code == 0 and "finished:" in result.output, result.output


def test_a_shard_given_as_weights_is_called_a_tar_archive(train_shards: Path, tmp_path: Path) -> None:
    shard = next(train_shards.glob("*.tar"))
    args = [a for a in SEMANTIC if a not in ("--weights", "none")]
    result = _invoke("--shards", train_shards, "--out", tmp_path / "run", *args, "--weights", shard)
    assert result.exit_code == 1 and "it is a tar archive (an `ifcn-prep` shard?)" in result.output
    assert "Python objects" not in result.output and not (tmp_path / "run").exists()
