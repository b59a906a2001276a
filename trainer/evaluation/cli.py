"""`ifcn-eval`: NoC/NoF/mIoU@k (`noc`), first-pass IoU (`iou`), semantic mIoU (`miou`) and curve overlays (`plot`);
using a trained model (`demo`, `export`, `predict`) is in `use_cli`.

Thin commands: each checks its options and calls one function of `ifcn.trainer.evaluation.api` (or `report`);
bad input becomes a Click error naming the file or flag.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ifcn.trainer.evaluation.cli_errors import user_errors as _user_errors
from ifcn.trainer.evaluation.clicker import CLICKERS
from ifcn.trainer.evaluation.noc import REFINERS, NocSettings
from ifcn.trainer.evaluation.use_cli import USE_COMMANDS
from ifcn.trainer.precision import PRECISIONS

DEFAULT_WORKERS = min(8, os.cpu_count() or 1)


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--checkpoint, --shards, --device, --batch-size, --precision and --limit, shared by every model command."""
    options = [
        click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
                     help="Checkpoint written by `ifcn-train` (RUN_DIR/best.pt)."),
        click.option("--shards", required=True,
                     help="Val shards: a folder with manifest.json, a manifest file, or a brace/glob pattern."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                     help="auto = CUDA when available."),
        click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
                     help="Most images (objects for noc) per forward pass."),
        click.option("--precision", type=click.Choice(sorted(PRECISIONS)), default="fp32", show_default=True,
                     help="Autocast dtype of the forward pass (fp16 needs CUDA)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ifcn")
def main() -> None:
    """Evaluate interactive (iFCN) and semantic (FCN) checkpoints on shards written by `ifcn-prep sample`."""


@main.command()
@common_options
@click.option("--max-clicks", type=click.IntRange(min=1), default=20, show_default=True,
              help="Clicks per object; every run makes all of them.")
@click.option("--iou", "ious", type=click.FloatRange(0.0, 1.0, min_open=True), multiple=True, default=(0.85, 0.90),
              show_default=True, help="IoU target t of NoC@t/NoF@t, in (0, 1]; repeat for several.")
@click.option("--clicker", type=click.Choice(sorted(CLICKERS)), default="standard", show_default=True,
              help="standard: deepest error point (RITM protocol, IoU >= t); seed: deepest point of the largest "
                   "error component (IoU > t).")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.5, show_default=True,
              help="Foreground = probability > threshold (RITM uses 0.49).")
@click.option("--refine", type=click.Choice(sorted(REFINERS)), default="none", show_default=True,
              help="Post-process each prediction (grabcut: OpenCV GrabCut seeded by the prediction and the clicks).")
@click.option("--min-area", type=click.IntRange(min=0), default=0, show_default=True,
              help="Evaluate only objects of at least this many pixels (0 = every object of the object maps).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most this many objects.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder: summary.json, objects.jsonl, miou_curve.png.")
@click.option("--label", default=None, help="Curve label in plots (default: checkpoint name and model).")
@click.option("--batch-invariant", is_flag=True,
              help="Convolution kernels whose results do not depend on the batch size (slower): logs then equal "
                   "those of --batch-size 1 bit for bit. Default kernels may flip a pixel within ~1e-6 of the "
                   "threshold.")
@click.option("--workers", type=click.IntRange(min=1), default=DEFAULT_WORKERS, show_default=True,
              help="Threads for the per-object CPU work (clicker, GrabCut); results do not depend on it.")
def noc(checkpoint: Path, shards: str, device: str, batch_size: int, precision: str, max_clicks: int,
        ious: tuple[float, ...], clicker: str, threshold: float, refine: str, min_area: int, limit: int | None,
        out: Path | None, label: str | None, batch_invariant: bool, workers: int) -> None:
    """Number of clicks to reach each IoU target (spec §6), mIoU after each click, NoF, seconds per click.

    Every object (ids 1..254) of every image's object map is evaluated (--min-area restricts; skipped objects are
    counted); void (255) pixels are never clicked and left out of IoU. Each object gets all --max-clicks clicks;
    a step with no unclicked error pixel left records no click and keeps the prediction. Objects of the same image
    size advance together, one forward pass per click step (--batch-size objects).
    """
    from ifcn.trainer.evaluation.api import run_noc
    from ifcn.trainer.evaluation.report import format_table

    with _user_errors():
        settings = NocSettings(max_clicks, tuple(sorted(set(ious))), clicker, threshold, refine, min_area)
        summary = run_noc(checkpoint, shards, settings, device=device, batch_size=batch_size, limit=limit,
                          precision=precision, out=out, label=label, batch_invariant=batch_invariant,
                          workers=workers, progress=True)
    click.echo(f"{summary['label']} on {shards} ({settings.clicker} clicker, refine {settings.refine})")
    click.echo(format_table(summary))
    if summary["skipped_objects"]:
        click.echo("skipped objects: " + ", ".join(f"{k} {v}" for k, v in summary["skipped_objects"].items()))
    if out is not None:
        click.echo(f"report written to {out}")


@main.command()
@common_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most this many images.")
def iou(checkpoint: Path, shards: str, device: str, batch_size: int, precision: str, limit: int | None) -> None:
    """First-pass IoU with the shards' sampled click pairs (the trainer's validation IoU)."""
    from ifcn.trainer.evaluation.api import run_iou

    with _user_errors():
        result = run_iou(checkpoint, shards, device=device, batch_size=batch_size, limit=limit, precision=precision)
    click.echo(f"IoU {result['iou'] * 100:.2f}% over {result['objects']} objects ({result['pairs']} click pairs)")


@main.command()
@common_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most this many images.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder: semantic.json and confusion.png (row-normalised).")
def miou(checkpoint: Path, shards: str, device: str, batch_size: int, precision: str, limit: int | None,
         out: Path | None) -> None:
    """Semantic mIoU, pixel accuracy and per-class IoU over the split (255 ignored)."""
    from ifcn.trainer.evaluation.api import run_miou

    with _user_errors():
        _, table = run_miou(checkpoint, shards, device=device, batch_size=batch_size, limit=limit,
                            precision=precision, out=out)
    click.echo(table)
    if out is not None:
        click.echo(f"report written to {out}")


@main.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output PNG file.")
@click.option("--label", "labels", multiple=True, help="Curve label, one per report folder, in order.")
def plot(reports: tuple[Path, ...], png: Path, labels: tuple[str, ...]) -> None:
    """Overlay the mIoU-vs-clicks curves of several `noc --out` report folders in one PNG."""
    from ifcn.trainer.evaluation.report import plot_reports

    with _user_errors():
        plot_reports(reports, png, labels)
    click.echo(f"wrote {png}")


for _command in USE_COMMANDS:
    main.add_command(_command)
