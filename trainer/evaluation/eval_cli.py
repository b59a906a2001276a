"""`ifcn-eval`: NoC/NoF/mIoU@k (`noc`), first-pass IoU (`iou`), semantic mIoU (`miou`) and curve overlays (`plot`);
using a trained model (`demo`, `export`, `predict`) is in `model_use_cli`.

Thin commands: each checks its options and calls one function of `ifcn.trainer.evaluation.checkpoint_eval` (or
`report`); bad input becomes a Click error naming the file or flag.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ifcn.cli_options import (
    deprecated_argument,
    device_option,
    no_progress_option,
    positional_or_option,
    renamed_option,
    threshold_option,
    user_errors,
    zoom_in_option,
)
from ifcn.cores import usable_cores
from ifcn.shards.remote import read_timeout_option
from ifcn.trainer.annotate.annotate_cli import ANNOTATE_COMMANDS
from ifcn.trainer.core.precision import PRECISIONS
from ifcn.trainer.evaluation.baselines import BASELINES
from ifcn.trainer.evaluation.clicker import CLICKERS
from ifcn.trainer.evaluation.crf_options import crf_options
from ifcn.trainer.evaluation.model_use_cli import USE_COMMANDS
from ifcn.trainer.evaluation.noc import MAX_CLICKS_LIMIT, REFINERS, NocSettings

if TYPE_CHECKING:
    from ifcn.trainer.inference.crf import CrfParams

#: Clicker threads: the cores available, at most 8 (beyond that the forward pass dominates).
DEFAULT_THREADS = min(8, usable_cores())
#: Upper bounds that catch typing mistakes (`--batch-size 100000`) before they exhaust memory.
MAX_BATCH_SIZE = 1024
MAX_THREADS = 256


class IouTarget(click.ParamType):
    """An IoU target as a fraction in (0, 1] or a percentage in (1, 100]: `0.85` and `85` are the same target."""

    name = "IOU"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; give a fraction such as 0.85 or a percentage such as 85", param,
                      ctx)
        if 0.0 < number <= 1.0:
            return number
        if 1.0 < number <= 100.0:
            return number / 100.0
        self.fail(f"{value!r} is neither a fraction in (0, 1] nor a percentage in (1, 100]", param, ctx)


OVERWRITE = click.option("--overwrite", is_flag=True, help="An --out holding an earlier report: move its files into "
                         "OUT/previous-<time>/ (never deleted) instead of refusing.")
SHARDS_HELP = ("Val shards: a folder with manifest.json, a manifest file, a brace/glob pattern of shard files, or "
               "an http(s):// or pipe: URL of them.")


def common_options(command: Callable[..., Any], checkpoint_help: str = "",
                   required: bool = True) -> Callable[..., Any]:
    """--checkpoint, --device, --batch-size, --precision, --sample-checksums and --read-timeout, shared by every
    model command."""
    options = [
        click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=required,
                     help="Checkpoint written by `ifcn-train` (RUN_DIR/best.pt)." + checkpoint_help),
        device_option(),
        click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=8, show_default=True,
                     help="Most images (objects for noc) per forward pass."),
        click.option("--precision", type=click.Choice(sorted(PRECISIONS)), default="fp32", show_default=True,
                     help="Autocast dtype of the forward pass (fp16 needs CUDA)."),
        click.option("--sample-checksums/--no-sample-checksums", default=True, show_default=True,
                     help="Check every sample's sha256 as it is read (turn off only for shards verified already)."),
        read_timeout_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ifcn")
def main() -> None:
    """Evaluate interactive (iFCN) and semantic (FCN) checkpoints on shards written by `ifcn-prep sample`, and use
    them: the click-to-select demo, annotation, export, segmenting images."""


def _noc_model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`noc` takes a checkpoint or a no-learning baseline."""
    command = click.option("--baseline", type=click.Choice(sorted(BASELINES)), default=None,
                           help="Evaluate a no-learning baseline instead of a model (no --checkpoint): grabcut = "
                                "OpenCV GrabCut from the clicks alone, on the CPU.")(command)
    return common_options(command, " Not with --baseline.", required=False)


@main.command()
@_noc_model_options
@click.option("--shards", "shards", multiple=True, required=True, metavar="[NAME=]SHARDS",
              help=SHARDS_HELP + " Repeat for several datasets: one table row each, named NAME (e.g. "
                   "grabcut=shards/grabcut), else by the manifest's source, else by the shards' folder.")
@click.option("--max-clicks", type=click.IntRange(1, MAX_CLICKS_LIMIT), default=20, show_default=True,
              help="Clicks per object; every run makes all of them.")
@click.option("--iou", "ious", type=IouTarget(), multiple=True, default=(0.85, 0.90), show_default=True,
              help="IoU target t of NoC@t/NoF@t, as 0.85 or 85; repeat for several.")
@click.option("--clicker", type=click.Choice(sorted(CLICKERS)), default="standard", show_default=True,
              help="standard: deepest error point (RITM protocol, IoU >= t); seed: deepest point of the largest "
                   "error component (IoU > t).")
@threshold_option(0.49, why=" (0.49 as RITM, so numbers compare with published tables)")
@click.option("--refine", type=click.Choice(sorted(REFINERS)), default="none", show_default=True,
              help="Post-process each prediction (grabcut: OpenCV GrabCut seeded by the prediction and the clicks; "
                   "crf: a two-label dense CRF, needs the extra [crf]).")
@click.option("--min-area", type=click.IntRange(min=0), default=0, show_default=True,
              help="Evaluate only objects of at least this many pixels (0 = every object of the object maps).")
@zoom_in_option(default=0)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate at most this many objects per dataset.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder: summary.json, objects.jsonl, miou_curve.png, noc_table.md (several datasets: "
                   "one sub-folder each, plus the combined summary, table and plot).")
@OVERWRITE
@click.option("--label", default=None, help="Curve label in plots (default: checkpoint name and model).")
@click.option("--batch-invariant", is_flag=True,
              help="Convolution kernels whose results do not depend on the batch size (slower): logs then equal "
                   "those of --batch-size 1 bit for bit. Default kernels may flip a pixel within ~1e-6 of the "
                   "threshold.")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=DEFAULT_THREADS, show_default=True,
              help="Threads for the per-object CPU work (clicker, GrabCut); results do not depend on it. Default: "
                   "the cores available, at most 8.")
@renamed_option("--workers", "--threads", "threads", type=click.IntRange(1, MAX_THREADS))
@no_progress_option()
def noc(checkpoint: Path | None, baseline: str | None, shards: tuple[str, ...], device: str, batch_size: int,
        precision: str, max_clicks: int, ious: tuple[float, ...], clicker: str, threshold: float, refine: str,
        min_area: int, zoom_in: int, limit: int | None, out: Path | None, overwrite: bool, label: str | None,
        batch_invariant: bool, threads: int, no_progress: bool, sample_checksums: bool) -> None:
    """Number of clicks to reach each IoU target (spec §6), mIoU after each click, NoF, seconds per click.

    Every object (ids 1..254) of every image's object map is evaluated (--min-area restricts; skipped objects are
    counted); void (255) pixels are never clicked and left out of IoU. Each object gets all --max-clicks clicks;
    a step with no unclicked error pixel left records no click and keeps the prediction. Objects of the same image
    size advance together, one forward pass per click step (--batch-size objects). Prints one table in the
    published layout, a row per --shards dataset.
    """
    from ifcn.trainer.evaluation.checkpoint_eval import run_noc

    if (checkpoint is None) == (baseline is None):
        raise click.UsageError("give --checkpoint (a trained model) or --baseline (no model), not both or neither")
    with user_errors():
        settings = NocSettings(max_clicks, tuple(sorted(set(ious))), clicker, threshold, refine, min_area, zoom_in)
        result = run_noc(checkpoint, shards, settings, device=device, batch_size=batch_size, limit=limit,
                         precision=precision, out=out, label=label, batch_invariant=batch_invariant,
                         workers=threads, progress=not no_progress, check_digest=sample_checksums,
                         overwrite=overwrite, baseline=baseline)
    click.echo(f"{result['label']} ({settings.clicker} clicker, threshold {settings.threshold:g}, refine "
               f"{settings.refine})\n")
    click.echo(result["table"])
    for name, summary in result["datasets"].items():
        if summary["skipped_objects"]:
            click.echo(f"{name}: skipped objects: " + ", ".join(f"{k} {v}" for k, v in
                                                              summary["skipped_objects"].items()))
    if out is not None:
        click.echo(f"report written to {out}")


@main.command()
@common_options
@click.option("--shards", required=True, help=SHARDS_HELP)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most this many images.")
def iou(checkpoint: Path, shards: str, device: str, batch_size: int, precision: str, limit: int | None,
        sample_checksums: bool) -> None:
    """First-pass IoU with the shards' sampled click pairs (the trainer's validation IoU)."""
    from ifcn.trainer.evaluation.checkpoint_eval import run_iou

    with user_errors():
        result = run_iou(checkpoint, shards, device=device, batch_size=batch_size, limit=limit, precision=precision,
                         check_digest=sample_checksums)
    click.echo(f"IoU {result['iou'] * 100:.2f}% over {result['objects']} objects ({result['pairs']} click pairs)")


@main.command()
@common_options
@click.option("--shards", required=True, help=SHARDS_HELP)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate at most this many images.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder: semantic.json and confusion.png (row-normalised).")
@OVERWRITE
@crf_options
def miou(checkpoint: Path, shards: str, device: str, batch_size: int, precision: str, limit: int | None,
         out: Path | None, overwrite: bool, sample_checksums: bool, crf: CrfParams | None) -> None:
    """Semantic mIoU, pixel accuracy and per-class IoU over the split (255 ignored)."""
    from ifcn.trainer.evaluation.checkpoint_eval import run_miou

    with user_errors():
        _, table = run_miou(checkpoint, shards, device=device, batch_size=batch_size, limit=limit,
                            precision=precision, out=out, check_digest=sample_checksums, crf=crf,
                            overwrite=overwrite)
    click.echo(table)
    if out is not None:
        click.echo(f"report written to {out}")


@main.command()
@deprecated_argument("old_reports", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--reports", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A `noc --out` report folder; repeat for several (required).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output PNG file (required).")
@renamed_option("--png", "--out", "out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label", "labels", multiple=True, help="Curve label, one per report folder, in order.")
def plot(old_reports: tuple[Path, ...], reports: tuple[Path, ...], out: Path | None, labels: tuple[str, ...]) -> None:
    """Overlay the mIoU-vs-clicks curves of several `noc --out` report folders in one PNG."""
    from ifcn.trainer.evaluation.report import plot_reports

    reports = positional_or_option("reports", old_reports, reports)
    if out is None:
        raise click.UsageError("missing option --out (the PNG to write)")
    with user_errors():
        plot_reports(reports, out, labels)
    click.echo(f"wrote {out}")


for _command in (*USE_COMMANDS, *ANNOTATE_COMMANDS):
    main.add_command(_command)
