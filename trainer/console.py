"""What a run prints for people (rank 0 only): progress bars on a terminal, plain lines in logs and batch jobs.

A progress bar redraws one line, which a log file or a batch system's output keeps only as its last state, so bars
are drawn only when stdout is a terminal and `--progress` is on; otherwise every `--log-every` steps and after
every validation a plain line is printed. Either way each run ends with exactly one closing line.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def format_step(record: dict[str, Any], epochs: int, total_steps: int) -> str:
    """`epoch 1/3 step 20/180 loss 0.4321 lr 1.00e-03 samples/s 24.1` from a metrics.jsonl step record."""
    return (f"epoch {record['epoch']}/{epochs} step {record['step']}/{total_steps} loss {record['loss']:.4f} "
            f"lr {record['lr']:.2e} samples/s {record['samples_per_s']:.1f}")


def format_validation(epoch: int, epochs: int, val: dict[str, float], metric: str, best: float | None,
                      best_epoch: int | None) -> str:
    """`epoch 2/3 validation: val_iou 0.4123 val_objects 81 (best val_iou 0.4123 at epoch 2)`."""
    values = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in val.items())
    best_text = f"best {metric} {best:.4f} at epoch {best_epoch}" if best is not None else "no best yet"
    return f"epoch {epoch}/{epochs} validation: {values} ({best_text})"


class Console:
    """Rank 0's console. `enabled` is False on the other ranks (everything is then a no-op)."""

    def __init__(self, enabled: bool, progress: bool):
        self.enabled = enabled
        self.bars = enabled and progress and sys.stdout.isatty()
        self._open: list[tqdm] = []

    def line(self, text: str) -> None:
        """Print a line (above the progress bar when one is drawn)."""
        if not self.enabled:
            return
        if self._open:
            tqdm.write(text)
        else:
            print(text, flush=True)

    def bar(self, total: int | None, description: str, unit: str, initial: int = 0) -> tqdm:
        """A progress bar (a disabled one unless bars are drawn); close it with `close_bar`."""
        bar = tqdm(total=total, desc=description, unit=unit, initial=initial, disable=not self.bars,
                   dynamic_ncols=True, leave=False)
        if self.bars:
            self._open.append(bar)
        return bar

    def close_bar(self, bar: tqdm) -> None:
        bar.close()
        if bar in self._open:
            self._open.remove(bar)

    def log_step(self, record: dict[str, Any], epochs: int, total_steps: int, bar: tqdm) -> None:
        """A step record: in the bar's postfix when a bar is drawn, else as a plain line."""
        if self.bars:
            bar.set_postfix(loss=f"{record['loss']:.4f}", samples_s=f"{record['samples_per_s']:.1f}")
        else:
            self.line(format_step(record, epochs, total_steps))
