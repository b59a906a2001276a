"""Resume: a run killed with SIGKILL continues from its last complete epoch and ends with the same weights as an
uninterrupted run; a half-written or damaged checkpoint is never loaded silently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ifcn.trainer.core.checkpoint import load_checkpoint
from ifcn.trainer.run_files import read_metrics
from ifcn.trainer.train import TrainConfig, train
from ifcn.trainer.train_cli import main

EPOCHS = 3
FLAGS = ["--arch", "resnet18", "--weights", "none", "--crop", "64", "--batch-size", "4", "--workers", "1",
         "--device", "cpu", "--seed", "3", "--no-progress", "--log-every", "2"]


def _cli(train_shards: Path, val_shards: Path, out: Path, *extra: str) -> list[str]:
    return ["--shards", str(train_shards), "--val-shards", str(val_shards), "--out", str(out), "--epochs",
            str(EPOCHS), *FLAGS, *extra]


#: Every run of the comparison in its own process with the same thread settings: float results depend on them
#: (and a test process may have had them changed by the libraries it loaded).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "ifcn.trainer.train_cli"]


def _kill_after_first_epoch(args: list[str], run_dir: Path) -> int:
    """Start the CLI in a subprocess and SIGKILL it as soon as a complete last.pt exists; returns its epoch."""
    proc = subprocess.Popen([*CLI, *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = run_dir / "last.pt"
    deadline = time.monotonic() + 240
    try:
        while not last.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return load_checkpoint(last)["epoch"]


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("--iterative", "2", "--prev-mask")], ids=["plain", "iterative"])
def test_killed_run_resumes_to_the_same_weights(train_shards: Path, val_shards: Path, tmp_path: Path,
                                                extra: tuple[str, ...]) -> None:
    """Also with extra click rounds (issue 12), drawn per step from the seed: the resumed steps draw the same."""
    killed = tmp_path / "killed"
    done_epochs = _kill_after_first_epoch(_cli(train_shards, val_shards, killed, *extra), killed)
    assert 1 <= done_epochs < EPOCHS
    (killed / ".tmp-last.pt.deadbeef").write_bytes(b"half a checkpoint")  # what a kill during a save leaves
    subprocess.run([*CLI, *_cli(train_shards, val_shards, killed, "--resume")], env=ENV, check=True,
                   capture_output=True)
    assert not list(killed.glob(".tmp-*"))
    reference = tmp_path / "reference"
    subprocess.run([*CLI, *_cli(train_shards, val_shards, reference, *extra)], env=ENV, check=True,
                   capture_output=True)
    resumed, uninterrupted = load_checkpoint(killed / "last.pt"), load_checkpoint(reference / "last.pt")
    assert resumed["epoch"] == uninterrupted["epoch"] == EPOCHS and resumed["step"] == uninterrupted["step"]
    assert resumed["train_config"]["iterative"] == uninterrupted["train_config"]["iterative"] == (2 if extra else 0)
    for name, tensor in uninterrupted["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    epochs = [r["epoch"] for r in read_metrics(killed) if r["kind"] == "epoch"]
    assert epochs == list(range(1, EPOCHS + 1))  # the epoch cut short by the kill is logged once, after the redo


def _finished_run(train_shards: Path, tmp_path: Path) -> tuple[TrainConfig, Path]:
    config = TrainConfig(shards=str(train_shards), out=str(tmp_path / "run"), epochs=1, arch="resnet18",
                         weights="none", crop=64, batch_size=8, workers=0, device="cpu", progress=False)
    return config, train(config).last_checkpoint


def test_damaged_checkpoint_is_refused_and_settings_must_match(train_shards: Path, tmp_path: Path) -> None:
    _, last = _finished_run(train_shards, tmp_path)
    args = ["--shards", str(train_shards), "--out", str(last.parent), "--arch", "resnet18", "--weights", "none",
            "--crop", "64", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--no-progress"]
    runner = CliRunner()
    result = runner.invoke(main, [*args, "--epochs", "2", "--resume", "--lr", "0.01"])
    assert result.exit_code == 1 and "--lr 0.01" in result.output and "differ" in result.output
    result = runner.invoke(main, [*args, "--epochs", "2"])
    assert result.exit_code == 1 and "already holds a run" in result.output
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # damaged after it was written
    result = runner.invoke(main, [*args, "--epochs", "2", "--resume"])
    assert result.exit_code == 1 and "last.pt" in result.output and "not a readable" in result.output
