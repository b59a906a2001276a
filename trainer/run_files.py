"""What a run leaves in its folder besides checkpoints: `config.json` (the resolved configuration), `metrics.jsonl`
(one JSON record per log interval and per epoch), TensorBoard events under `tb/` when TensorBoard is installed, and
`curves.png` (training loss and validation metric per epoch). Only rank 0 writes them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ifcn.io import atomic_write_bytes
from ifcn.plotting import new_grid, save_png

METRICS = "metrics.jsonl"
CONFIG = "config.json"
CURVES = "curves.png"


def _summary_writer(folder: Path) -> Any:
    """A TensorBoard writer, or None when the `tensorboard` package is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


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


class RunFiles:
    """Writer of the run folder's non-checkpoint files; every method is a no-op when `enabled` is False (rank > 0)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = _summary_writer(self.run_dir / "tb") if enabled else None

    def write_config(self, config: dict[str, Any]) -> None:
        if self.enabled:
            atomic_write_bytes(self.run_dir / CONFIG, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())

    def keep_epochs_up_to(self, epoch: int) -> None:
        """On resume: drop records of epochs after the checkpoint's, which the resumed run will redo."""
        if self.enabled:
            kept = [r for r in read_metrics(self.run_dir) if r.get("epoch", 0) <= epoch]
            atomic_write_bytes(self.run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in kept).encode())

    def log(self, record: dict[str, Any]) -> None:
        """Append a record (flushed at once: a killed run keeps what it logged); mirror numbers to TensorBoard."""
        if not self.enabled:
            return
        with open(self.run_dir / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for name, value in record.items():
                if isinstance(value, float | int) and not isinstance(value, bool) and name not in ("epoch", "step"):
                    self._tb.add_scalar(f"{record['kind']}/{name}", value, record["step"])
            self._tb.flush()

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
        save_png(fig, path)
        return path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
