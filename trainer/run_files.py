"""What a run leaves in its folder: `last.pt` and `best.pt` (see `run_state.py`), `config.json` (the resolved
configuration), `metrics.jsonl` (one JSON record per log interval, per epoch and per stop), `curves.png` (training loss
and validation metric per epoch) and, with `--tensorboard`, TensorBoard events under `tb/`. Only rank 0 writes them.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path
from typing import Any

from ifcn.disk import disk_full_guard
from ifcn.io import atomic_write_bytes, write_json
from ifcn.plotting import new_grid, save_png
from ifcn.trainer.core.names import BEST, LAST
from ifcn.trainer.tb_log import TensorBoardLog

METRICS = "metrics.jsonl"
CONFIG = "config.json"
CURVES = "curves.png"
TENSORBOARD = "tb"
#: Every file (or folder) a run writes in its folder.
RUN_FILES = (LAST, BEST, CONFIG, METRICS, CURVES, TENSORBOARD)
#: What to do after a full disk stopped a run.
DISK_FIX = "free some space, then continue the run with `ifcn-train --out RUN --resume`"


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of `run_dir/metrics.jsonl` (an unfinished last line, from a killed run, is skipped)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_line(path: Path, line: bytes) -> None:
    """Append one line in one write; if the write fails (a full disk) the file is cut back to its previous end, so
    it never holds a partial line that the next record would be glued to."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        end = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "short write")  # what a full disk causes
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


class RunFiles:
    """Writer of the run folder's non-checkpoint files; every method is a no-op when `enabled` is False (rank > 0).
    A full disk raises `DiskFullError` naming the file; what was written before stays valid."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: TensorBoardLog | None = None):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.tensorboard = tensorboard

    def write_config(self, config: dict[str, Any]) -> None:
        if self.enabled:
            with disk_full_guard(self.run_dir / CONFIG, None, DISK_FIX):
                write_json(self.run_dir / CONFIG, config)

    def keep_records_up_to(self, step: int) -> None:
        """On resume: drop the records of steps after the checkpoint's, which the resumed run will redo."""
        if self.enabled:
            kept = [r for r in read_metrics(self.run_dir) if r.get("step", 0) <= step]
            path = self.run_dir / METRICS
            data = "".join(json.dumps(r) + "\n" for r in kept).encode()
            with disk_full_guard(path, len(data), DISK_FIX):
                atomic_write_bytes(path, data)

    def log(self, record: dict[str, Any]) -> None:
        """Append a record (flushed at once: a killed run keeps what it logged); mirror numbers to TensorBoard."""
        if not self.enabled:
            return
        line = (json.dumps(record) + "\n").encode()
        with disk_full_guard(self.run_dir / METRICS, len(line), DISK_FIX):
            append_line(self.run_dir / METRICS, line)
        if self.tensorboard is not None:
            self.tensorboard.scalars(record)

    def plot_curves(self, metric: str | None) -> Path | None:
        """Draw `curves.png`: mean training loss per epoch and, when validated, `metric` per epoch."""
        if not self.enabled:
            return None
        epochs = [r for r in read_metrics(self.run_dir) if r.get("kind") == "epoch"]
        fig, axes = new_grid(10 if metric else 5, 3.5, 1, 2 if metric else 1)
        axes[0, 0].plot([r["epoch"] for r in epochs], [r["train_loss"] for r in epochs], marker="o")
        axes[0, 0].set(xlabel="epoch", ylabel="training loss", title="loss")
        if metric:
            points = [(r["epoch"], r[metric]) for r in epochs if not math.isnan(r.get(metric, math.nan))]
            axes[0, 1].plot([p[0] for p in points], [p[1] for p in points], marker="o", color="tab:green")
            axes[0, 1].set(xlabel="epoch", ylabel=metric, title="validation")
        fig.tight_layout()
        path = self.run_dir / CURVES
        with disk_full_guard(path, None, DISK_FIX):
            save_png(fig, path)
        return path

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
