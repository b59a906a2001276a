"""DDP on the CPU: `torchrun --nproc_per_node 2` with gloo. Both ranks do the same number of steps and read disjoint
shares of every epoch, with 1 shard or with 3 shards for 2 ranks × 2 workers (each rank reports its own count and
the items it got); a timeout turns a hang into a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ifcn.shards.manifest import load_manifest
from ifcn.trainer.core.checkpoint import load_checkpoint
from ifcn.trainer.data.epoch_plan import steps_per_epoch
from ifcn.trainer.run_files import read_metrics
from tests.ports import free_port
from tests.shard_sets import shard_samples, write_set


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(free_port()), *args]


@pytest.mark.slow
def test_every_item_is_read_once_an_epoch_by_two_ranks(train_shards: Path, tmp_path: Path) -> None:
    """1 shard (no longer refused for 2 ranks) and 3 shards read by 2 ranks × 2 loader workers."""
    one = write_set(tmp_path / "one", [[s for part in shard_samples(train_shards) for s in part]],
                    load_manifest(train_shards))
    out = tmp_path / "items"
    proc = subprocess.run(_torchrun(str(Path(__file__).with_name("ddp_items.py")), "--shards", str(one), "--workers",
                                    "0", "--shards", str(train_shards), "--workers", "2", "--out", str(out)),
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads(Path(f"{out}-{r}.json").read_text()) for r in (0, 1)]
    for case, shards in enumerate((1, 3)):
        items, steps = ranks[0][case]["items"], ranks[0][case]["steps"]
        every = {(s, i) for s, n in enumerate(items) for i in range(n)}
        assert len(items) == shards and steps > 0
        for epoch in range(2):
            got = [[tuple(x) for x in r[case]["epochs"][epoch]] for r in ranks]
            assert [len(g) for g in got] == [steps * 3, steps * 3]  # equal steps of batch 3 on both ranks
            seen = got[0] + got[1]
            assert len(set(seen)) == len(seen) and set(seen) <= every  # each item at most once, nothing invented
            assert len(every) - len(seen) < 2 * 3  # only the last partial global batch is left out
        assert ranks[0][case]["epochs"][0] != ranks[0][case]["epochs"][1]  # reshuffled every epoch


@pytest.mark.slow
def test_torchrun_two_ranks_on_gloo_do_equal_steps(train_shards: Path, val_shards: Path, tmp_path: Path) -> None:
    manifest = load_manifest(train_shards)
    assert len(manifest.shards) % (2 * 2) != 0  # shards not a multiple of ranks × workers
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # With extra click rounds (--iterative), drawn per rank: they must run no collective, or the ranks would hang.
    cmd = _torchrun("-m", "ifcn.trainer.train_cli", "--shards", str(train_shards), "--val-shards", str(val_shards),
                    "--out", str(out), "--epochs", "2", "--arch", "resnet18", "--weights", "none", "--crop", "64",
                    "--batch-size", "2", "--workers", "2", "--device", "cpu", "--no-progress", "--iterative", "2",
                    "--prev-mask")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = steps_per_epoch(manifest.totals.pairs, 2, 2)
    epochs = [r for r in read_metrics(out) if r["kind"] == "epoch"]
    assert [r["rank_steps"] for r in epochs] == [[steps, steps]] * 2
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert all(r["val_objects"] == load_manifest(val_shards).totals.objects for r in epochs)  # val split over ranks
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 2 * steps and not any(k.startswith("module.") for k in state["model"])
