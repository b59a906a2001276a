"""The `ifcn-train` run folder and run safety: other runs' files, one writer, a full disk, foreign checkpoints,
resume of a finished run, torchrun exits (from issue 13, numbered by its items; each test reproduces the fault as it
was, which the old code fails, and shows the fix):

1. a folder holding another run's files (e.g. `best.pt` without `last.pt`) is refused, `--overwrite` moves them aside,
   nothing the run did not write is deleted (unrelated `.tmp-*` files included);
3. a second `ifcn-train` on the same `--out` is refused, naming the first (pid, host, start time, command line);
10. a full disk while saving a checkpoint stops with one line naming the file and the space needed, no traceback,
    and what was written stays valid;
12. a foreign (malicious) checkpoint is refused as not written by this tool, without torch's advice to load it with
    `weights_only=False`, and is never executed;
13. `--resume` of a finished run says so; under torchrun only rank 0 prints the closing line, and the ranks stop when
    the launcher is killed.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from ifcn.lock import LOCK_NAME
from ifcn.trainer.core.checkpoint import load_checkpoint, load_model
from ifcn.trainer.run_files import read_metrics
from ifcn.trainer.train_cli import main
from tests.ports import free_port

SEMANTIC = ["--task", "semantic", "--arch", "resnet18", "--weights", "none", "--crop", "64", "--batch-size", "8",
            "--workers", "0", "--device", "cpu", "--no-progress"]
CLI = [sys.executable, "-m", "ifcn.trainer.train_cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_another_runs_files_are_refused_moved_aside_never_deleted(semantic_run: Path, train_shards: Path,
                                                                            tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(semantic_run / "best.pt", run / "best.pt")  # the user deleted the large last.pt to keep the best
    shutil.copy(semantic_run / "metrics.jsonl", run / "metrics.jsonl")
    (run / ".tmp-holiday.jpg").write_bytes(b"the user's own file")  # looks like a temporary, is not this tool's
    (run / "notes.txt").write_text("mine")
    before = _files(run)
    args = ["--shards", train_shards, "--out", run, *SEMANTIC, "--epochs", "1"]
    result = _invoke(*args)
    assert result.exit_code == 1 and "already holds a run (best.pt, metrics.jsonl)" in result.output
    assert "--overwrite" in result.output and _files(run) == before
    result = _invoke(*args, "--resume")
    assert result.exit_code == 1 and f"--init-from {run / 'best.pt'}" in result.output and _files(run) == before
    (run / ".tmp-last.pt.0123abcd").write_bytes(b"half a checkpoint")  # this tool's own leftover: may go
    result = _invoke(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    (previous,) = run.glob("previous-*")
    assert f"moved the previous run's files into {previous}" in result.output
    assert _files(previous) == {"best.pt": before["best.pt"], "metrics.jsonl": before["metrics.jsonl"]}
    assert (run / ".tmp-holiday.jpg").read_bytes() == before[".tmp-holiday.jpg"] and (run / "notes.txt").exists()
    assert not (run / ".tmp-last.pt.0123abcd").exists() and load_checkpoint(run / "last.pt")["epoch"] == 1


def test_second_train_on_the_same_out_is_refused_naming_the_first(train_shards: Path,
                                                                            tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = subprocess.Popen([*CLI, "--shards", str(train_shards), "--out", str(run), *SEMANTIC, "--epochs", "1000"],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (run / "config.json").exists():  # written once the first run holds the lock and has started
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.1)
        config = (run / "config.json").read_bytes()
        result = _invoke("--shards", train_shards, "--out", run, *SEMANTIC, "--epochs", "1")
        assert result.exit_code == 1, result.output
        message = " ".join(result.output.split())
        assert f"is being written by ifcn-train (pid {first.pid} on host {socket.gethostname()}, started" in message
        assert "--epochs 1000" in message  # the other command line
        assert (run / "config.json").read_bytes() == config and (run / LOCK_NAME).exists()
    finally:
        first.kill()
        first.wait()
    assert _invoke("--shards", train_shards, "--out", run, *SEMANTIC, "--epochs", "1", "--overwrite").exit_code == 0


def test_disk_full_while_saving_a_checkpoint_stops_with_one_line(train_shards: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    write_bytes, saves = Path.write_bytes, []

    def full_disk(self: Path, data: bytes) -> int:
        if self.name.startswith(".tmp-last.pt."):
            saves.append(self)
            if len(saves) == 2:  # the second epoch's checkpoint: half written, then the disk is full
                write_bytes(self, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    result = _invoke("--shards", train_shards, "--out", run, *SEMANTIC, "--epochs", "2")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # a clean exit, not a traceback
    (line,) = [line for line in result.output.splitlines() if "no space left" in line]
    assert line.startswith(f"Error: {run / 'last.pt'}: no space left on device (needs ") and " MB free)" in line
    assert "--resume" in line
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the first epoch's checkpoint is intact
    assert [r["epoch"] for r in read_metrics(run) if r["kind"] == "epoch"] == [1, 2]
    assert not list(run.glob(".tmp-*"))
    monkeypatch.setattr(Path, "write_bytes", write_bytes)  # space freed: the run continues
    result = _invoke("--out", run, "--resume")
    assert result.exit_code == 0 and load_checkpoint(run / "last.pt")["epoch"] == 2, result.output


class _Payload:
    """What a malicious checkpoint holds: unpickling it runs a command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_foreign_checkpoint_is_refused_without_torchs_advice(semantic_run: Path, train_shards: Path,
                                                                        tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"model_config": {}, "model": _Payload(marker)}, evil)  # a zip checkpoint whose pickle runs a command
    run = Path(shutil.copytree(semantic_run, tmp_path / "run"))
    shutil.copy(evil, run / "last.pt")
    base = ["--shards", train_shards, *SEMANTIC, "--epochs", "2"]
    for result, named in ((_invoke(*base, "--out", tmp_path / "a", "--init-from", evil), evil),
                          (_invoke(*base, "--out", tmp_path / "b", "--weights", evil), evil),
                          (_invoke(*base, "--out", run, "--resume"), run / "last.pt")):
        assert result.exit_code == 1 and str(named) in result.output, result.output
        assert "did not write it" in result.output and "weights_only" not in result.output, result.output
    with pytest.raises(ValueError, match="did not write it") as info:
        load_model(evil)  # what `ifcn-eval --checkpoint` loads with
    assert "weights_only" not in str(info.value)
    assert not marker.exists()


def test_resume_of_a_finished_run_says_it_is_finished(semantic_run: Path, train_shards: Path,
                                                               tmp_path: Path) -> None:
    run = Path(shutil.copytree(semantic_run, tmp_path / "run"))
    before = _files(run)
    result = _invoke("--shards", train_shards, "--val-shards", train_shards, "--val-limit", "2", "--out", run,
                     *SEMANTIC, "--epochs", "1", "--resume")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"finished: {run} already holds all 1 epochs of this run, best val_miou "
                                     f"{load_checkpoint(run / 'best.pt')['best_metric']:.4f} at epoch 1 "
                                     f"({run / 'best.pt'}); nothing to train. To train longer, resume with a larger "
                                     "--epochs")
    assert "nan" not in result.output and _files(run) == before


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _torchrun(args: list[object]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(free_port()), "-m", "ifcn.trainer.train_cli", *map(str, args)]


@pytest.mark.slow
def test_torchrun_one_closing_line_and_ranks_stop_with_the_launcher(train_shards: Path,
                                                                             tmp_path: Path) -> None:
    done = subprocess.run(_torchrun(["--shards", train_shards, "--out", tmp_path / "done", *SEMANTIC, "--batch-size",
                                     "2", "--epochs", "1"]),
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line for line in done.stdout.splitlines() if line.startswith("done: ")] == [
        done.stdout.strip().splitlines()[-1]]  # one closing line, from rank 0
    run = tmp_path / "killed"
    launcher = subprocess.Popen(_torchrun(["--shards", train_shards, "--out", run, *SEMANTIC, "--batch-size", "2",
                                           "--epochs", "1000"]),
                                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ranks: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while not any(r.get("kind") == "step" for r in read_metrics(run)):  # both ranks are training
            assert launcher.poll() is None and time.monotonic() < deadline, "the ranks did not start training"
            time.sleep(0.2)
        ranks = _children(launcher.pid)
        assert len(ranks) == 2
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 60
        while any(map(_alive, ranks)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, ranks)), "the ranks kept running after their launcher was killed"
    finally:
        launcher.kill()
        for pid in ranks:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
