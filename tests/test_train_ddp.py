"""DDP on the CPU: `torchrun --nproc_per_node 2` with gloo, 3 shards for 2 ranks × 2 workers; both ranks must do
the same number of steps (each rank reports its own count, gathered into the epoch record)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ifcn.shards.manifest import load_manifest
from ifcn.trainer.checkpoint import load_checkpoint
from ifcn.trainer.data.epoch_plan import steps_per_epoch
from ifcn.trainer.run_files import read_metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_on_gloo_do_equal_steps(train_shards: Path, val_shards: Path, tmp_path: Path) -> None:
    manifest = load_manifest(train_shards)
    assert len(manifest.shards) % (2 * 2) != 0  # shards not a multiple of ranks × workers
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "ifcn.trainer.cli", "--shards", str(train_shards),
           "--val-shards", str(val_shards), "--out", str(out), "--epochs", "2", "--arch", "resnet18", "--weights",
           "none", "--crop", "64", "--batch-size", "2", "--workers", "2", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = steps_per_epoch(manifest.totals.pairs, 2, 2)
    epochs = [r for r in read_metrics(out) if r["kind"] == "epoch"]
    assert [r["rank_steps"] for r in epochs] == [[steps, steps]] * 2
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert all(r["val_objects"] == load_manifest(val_shards).totals.objects for r in epochs)  # val split over ranks
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 2 * steps and not any(k.startswith("module.") for k in state["model"])
