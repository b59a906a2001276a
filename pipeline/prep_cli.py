"""`ifcn-prep`: synthetic data, click sampling into shards, verification and inspection.

Thin commands: each checks its options and calls one typed function (`make_synth_dataset`, `run_sample`,
`verify_output`, `inspect_output`) that the tests call too. Errors become Click errors naming the file or flag.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ifcn.cli_options import (
    deprecated_argument,
    no_progress_option,
    on_error_option,
    positional_or_option,
    renamed_option,
    user_errors,
)
from ifcn.cores import usable_cores
from ifcn.labels import MAX_OBJECT_ID
from ifcn.pipeline.click_sampling import COUNT_MODES, ClickConfig
from ifcn.pipeline.orchestrate import MAX_WORKERS_PER_CORE, SampleJob, SampleResult, run_sample
from ifcn.pipeline.shard_plan import DEFAULT_IMAGES_PER_SHARD
from ifcn.pipeline.sources import SOURCES
from ifcn.shards.formats import FORMATS
from ifcn.shards.manifest import MANIFEST_NAME
from ifcn.shards.remote import read_timeout_option

CLICK_HELP = {
    "d_margin": "Clicks keep at least this many pixels from the object boundary (positives, strategy 1 and 2).",
    "d_step": "Clicks of one kind are at least this many pixels apart.",
    "n_pos": "Most positive clicks per pair.",
    "n_neg1": "Most negative clicks of strategy 1 (background band).",
    "n_neg2": "Most negative clicks per other object (strategy 2).",
    "n_neg3": "Negative clicks of strategy 3 (boundary cover).",
    "d": "Outer width in pixels of the background band of strategies 1 and 3.",
    "pairs": "Click pairs per object (15 for training, 1 for validation).",
    "min_area": "Objects smaller than this many pixels are skipped.",
    "count_mode": "random: click counts drawn from 1..N; fixed: always N.",
    "min_box_fill": "Skip objects filling less than this fraction of their bounding box (RITM uses 0.08 on SBD).",
}


def click_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per ClickConfig field (`d_margin` -> `--d-margin`), with the config's defaults."""
    for f in reversed(dataclasses.fields(ClickConfig)):
        kind: Any = click.Choice(COUNT_MODES) if f.name == "count_mode" else type(f.default)
        command = click.option(f"--{f.name.replace('_', '-')}", f.name, type=kind, default=f.default,
                               show_default=True, help=CLICK_HELP[f.name])(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="ifcn")
def main() -> None:
    """Turn PASCAL VOC 2012, SBD, GrabCut, Berkeley, DAVIS or COCO-format data (or their synthetic stand-ins) into
    click-interaction shards."""


#: The positional forms of `synth OUT`, `verify SHARDS` and `inspect SHARDS`, kept for one release (now `--out`,
#: `--shards`).
OLD_OUT = deprecated_argument("old_out", type=click.Path(file_okay=False, path_type=Path))
OLD_SHARDS = deprecated_argument("old_shards")
SHARDS = click.option("--shards", default=None, help="The dataset: a folder holding manifest.json, the manifest file, "
                      "or its http(s):// or pipe: URL.")


@main.command()
@OLD_OUT
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write the dataset into (required).")
@click.option("--train-images", type=click.IntRange(min=0), required=True, help="Images in the train split.")
@click.option("--val-images", type=click.IntRange(min=0), required=True, help="Images in the val split.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Dataset seed.")
@click.option("--long-side", type=click.IntRange(min=32), default=500, show_default=True,
              help="Long image side in pixels (VOC: 500).")
@click.option("--layout", type=click.Choice(list(SOURCES)), default="voc", show_default=True,
              help="Released layout to write (single-split layouts get train + val images).")
@click.option("--overwrite", is_flag=True, help="Replace an existing dataset folder of that layout in OUT.")
def synth(old_out: Path | None, out: Path | None, train_images: int, val_images: int, seed: int, long_side: int,
          layout: str, overwrite: bool) -> None:
    """Write a synthetic dataset in a released layout under OUT (voc: OUT/VOCdevkit/VOC2012, sbd:
    OUT/benchmark_RELEASE/dataset, grabcut: OUT/GrabCut, berkeley: OUT/Berkeley, davis: OUT/DAVIS, coco: OUT/COCO)."""
    from ifcn.pipeline.synth import SynthConfig, make_synth_dataset

    out = Path(positional_or_option("out", old_out, out))
    try:
        config = SynthConfig(train_images=train_images, val_images=val_images, seed=seed, long_side=long_side)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    with user_errors():
        root = make_synth_dataset(out, config, layout=layout, overwrite=overwrite)
    click.echo(f"wrote {train_images} train and {val_images} val images to {root}")


def _summary(result: SampleResult) -> str:
    m, t = result.manifest, result.manifest.totals
    skipped = ", ".join(f"{reason} {n}" for reason, n in t.skipped_objects.items()) or "none"
    size = sum(s.bytes for s in m.shards)
    lines = [
        f"{m.source.split}: {t.images} images, {t.objects} objects, {t.pairs} pairs in {len(m.shards)} {m.format} "
        f"shards ({size / 1e6:.1f} MB)",
        f"skipped objects: {skipped}; skipped images: {len(t.skipped_images)}",
        f"{result.seconds:.1f} s ({result.startup_seconds:.1f} s start-up), {t.objects / result.seconds:.1f} objects/s "
        f"({t.objects / max(result.work_seconds, 1e-9):.1f} on a running cluster); {result.shards_written} shards "
        f"written, {result.shards_kept} kept from an earlier run",
        f"manifest: {result.out / MANIFEST_NAME} (id {m.id})",
    ]
    return "\n".join(lines)


@main.command()
@click.option("--source", type=click.Choice(list(SOURCES)), default="voc", show_default=True,
              help="Dataset layout to read.")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="Dataset folder: VOC2012 (or above), benchmark_RELEASE/dataset (sbd), the folder holding "
              "data_GT/ (grabcut), images/ (berkeley) or img/ (davis).")
@click.option("--voc-root", type=click.Path(path_type=Path), default=None, help="The --root of --source voc.")
@click.option("--coco-images", type=click.Path(path_type=Path), default=None,
              help="Images folder of --source coco (its --root).")
@click.option("--coco-json", type=click.Path(path_type=Path), default=None,
              help="COCO instances JSON of --source coco.")
@click.option("--split", default=None, help="voc: train|val|trainval; sbd: train|val; grabcut, berkeley, davis: all "
              "[default]; coco: a name [default: from the JSON file name, instances_val2017.json -> val2017].")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder for shards and manifest.")
@click_config_options
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed; each image's generator is "
              "seeded from (seed, image id).")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="webdataset", show_default=True,
              help="Shard format.")
@click.option("--images-per-shard", type=int, default=DEFAULT_IMAGES_PER_SHARD, show_default=True,
              help="Images per shard (one shard = one task).")
@click.option("--workers", type=int, default=None,
              help=f"Worker processes of the local Dask cluster, one core each, at most {MAX_WORKERS_PER_CORE} per "
              f"core; not with --scheduler [default: the cores this process may use ({usable_cores()} here), at most "
              "one per shard].")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run on the existing Dask cluster of this scheduler (paths must be visible to its workers).")
@on_error_option("Bad images (skipped ones are recorded in the manifest)")
@click.option("--overwrite", is_flag=True, help="Replace the shards of an earlier run with other parameters in OUT "
              "(only what that run recorded; the old dataset stays until the new one is complete).")
@no_progress_option()
def sample(source: str, root: Path | None, voc_root: Path | None, coco_images: Path | None, coco_json: Path | None,
           split: str | None, out: Path, seed: int, fmt: str, images_per_shard: int, workers: int | None,
           scheduler: str | None, on_error: str, overwrite: bool, no_progress: bool, **click_options: Any) -> None:
    """Sample click pairs for every object of a split and write shards plus manifest.json to OUT.

    Rerunning the same command after an interruption keeps the finished shards and writes the rest. One job at a time
    writes to OUT: a second one is refused, naming the first.
    """
    try:
        if coco_images is not None:
            if source != "coco" or root is not None:
                raise ValueError("--coco-images is the --root of --source coco; pass one of them, with --source coco")
            root = coco_images
        config = ClickConfig(**click_options)
        job = SampleJob(source=source, root=root, voc_root=voc_root, coco_json=coco_json, split=split, out=out,
                        clicks=config, seed=seed, format=fmt, images_per_shard=images_per_shard, workers=workers,
                        scheduler=scheduler, on_error=on_error, overwrite=overwrite, progress=not no_progress)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    with user_errors():  # bad input, another job or writer, no cluster, full or unwritable disk
        result = run_sample(job, log=lambda message: click.echo(message, err=True))
    click.echo(_summary(result))


@main.command()
@OLD_SHARDS
@SHARDS
@read_timeout_option
def verify(old_shards: str | None, shards: str | None) -> None:
    """Check the dataset --shards (a folder holding manifest.json, the manifest file, or its http(s):// or pipe: URL)
    against its manifest: every shard's size, sha256, samples and counts; in a folder, also files left over by
    interrupted runs. Exit status 1 when anything is wrong."""
    from ifcn.pipeline.verify import verify_output

    shards = positional_or_option("shards", old_shards, shards)
    with user_errors():
        report = verify_output(shards)
    for problem in report.problems:
        click.echo(f"BAD {problem}")
    for name in report.other_files or ():
        click.echo(f"NOTE {name}: not part of the dataset (left alone)")
    if not report.ok:
        raise click.ClickException(f"{len(report.problems)} problem(s) in {shards}; rerun `ifcn-prep sample` with the "
                                   "same options to rewrite bad or missing shards and remove its leftovers")
    where = "" if report.other_files is None else ", and nothing is left over from a writer"
    click.echo(f"OK: every shard in {shards} matches its manifest{where}")


@main.command()
@OLD_SHARDS
@SHARDS
@click.option("--key", default=None, help="Sample to draw, by its shard key or its name in the dataset "
              "[default: the first sample of the first shard].")
@click.option("--object", "object_id", type=click.IntRange(1, MAX_OBJECT_ID), default=None,
              help="Object id [default: the first with clicks].")
@click.option("--pair", type=click.IntRange(min=0), default=0, show_default=True, help="Click pair to draw.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output PNG file (required).")
@renamed_option("--png", "--out", "out", type=click.Path(dir_okay=False, path_type=Path))
@read_timeout_option
def inspect(old_shards: str | None, shards: str | None, key: str | None, object_id: int | None, pair: int,
            out: Path | None) -> None:
    """Draw one sample of --shards (a folder holding manifest.json, a manifest, a shard pattern, or their URLs) with its
    clicks to the PNG --out."""
    from ifcn.pipeline.preview import inspect_output

    shards = positional_or_option("shards", old_shards, shards)
    if out is None:
        raise click.UsageError("missing option --out (the PNG to write)")
    with user_errors():
        view = inspect_output(shards, out, key=key, object_id=object_id, pair=pair)
    click.echo(f"{out}: {view.title}")


if __name__ == "__main__":
    main()
