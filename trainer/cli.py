"""`ifcn-train`: validate the flags, build a `TrainConfig`, call `train`. All logic lives in `ifcn.trainer.train`."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from ifcn.errors import InputError
from ifcn.trainer.precision import PRECISIONS
from ifcn.trainer.schedule import SCHEDULES
from ifcn.trainer.train import SetupError, TrainConfig, train


def _list_archs(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from ifcn.trainer.models import describe_backbones

        click.echo(describe_backbones())
        ctx.exit()


def _explicit(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)


def _check_flags(ctx: click.Context, p: dict) -> None:
    """Flag combinations that cannot mean what the user wants: refused before any data is read."""
    if p["task"] == "semantic" and _explicit(ctx, "first_layer_init"):
        raise click.UsageError("--first-layer-init sets the two click channels of the interactive task's first "
                               "layer; --task semantic has none. Drop the flag.")
    if p["task"] == "interactive" and _explicit(ctx, "num_classes"):
        raise click.UsageError("--num-classes applies to --task semantic; the interactive task has one output.")
    if _explicit(ctx, "val_every") and p["val_every"] and not p["val_shards"]:
        raise click.UsageError("--val-every needs --val-shards (the shards to validate on).")
    if p["weights"] not in ("imagenet", "none") and not Path(p["weights"]).is_file():
        raise click.BadParameter(f"{p['weights']!r} is neither `imagenet`, `none` nor an existing weights file",
                                 param_hint="--weights")
    from ifcn.trainer.models import get_backbone

    try:
        get_backbone(p["arch"])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--arch") from None
    if p["scale_range"][0] <= 0 or p["scale_range"][0] > p["scale_range"][1]:
        raise click.BadParameter("needs 0 < MIN ≤ MAX", param_hint="--scale-range")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--list-archs", is_flag=True, is_eager=True, expose_value=False, callback=_list_archs,
              help="Print the known backbones (with whether their ImageNet weights are cached) and exit.")
@click.option("--shards", required=True, help="Training shards: a folder with manifest.json, a manifest file, "
              "or a brace/glob pattern of shard files; or the same at an http(s):// URL or behind a pipe: command "
              "(webdataset shards; the manifest is read from the same place).")
@click.option("--val-shards", default=None, help="Validation shards (same forms). Without them: no validation.")
@click.option("--task", type=click.Choice(["interactive", "semantic"]), default="interactive", show_default=True)
@click.option("--arch", default="resnet18", show_default=True, help="Backbone name (see --list-archs).")
@click.option("--stride", type=click.Choice(["8", "16", "32"]), default="8", show_default=True,
              help="FCN-8s, 16s or 32s.")
@click.option("--upsample", type=click.Choice(["deconv", "bilinear"]), default="deconv", show_default=True)
@click.option("--weights", default="imagenet", show_default=True, help="imagenet, none, or a backbone weights file.")
@click.option("--first-layer-init", type=click.Choice(["zero", "mean"]), default="zero", show_default=True,
              help="Initial filters of the two click channels (interactive).")
@click.option("--head", type=click.Choice(["full", "light"]), default="full", show_default=True,
              help="VGG/AlexNet fc6: full 7×7 convolution or light 1×1.")
@click.option("--num-classes", type=click.IntRange(min=2), default=21, show_default=True, help="Semantic classes.")
@click.option("--epochs", type=click.IntRange(min=0), default=20, show_default=True,
              help="0 = no training: validate and save the initialised model (an untrained baseline).")
@click.option("--batch-size", type=click.IntRange(min=1), default=24, show_default=True, help="Per rank.")
@click.option("--crop", type=click.IntRange(min=32), default=384, show_default=True, help="Square crop side.")
@click.option("--scale-range", type=(float, float), default=(0.75, 1.25), show_default=True,
              help="Random scale MIN MAX before cropping.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=1e-5, show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="none", show_default=True)
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--clip-grad", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Clip the gradient norm to this value.")
@click.option("--precision", type=click.Choice(list(PRECISIONS)), default="fp32", show_default=True)
@click.option("--channels-last", is_flag=True, help="NHWC memory format (faster convolutions on recent GPUs).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=4, show_default=True, help="DataLoader workers/rank.")
@click.option("--shuffle-items", type=click.IntRange(min=1), default=128, show_default=True,
              help="Items one loader worker shuffles together (its batch group, rounded down to whole batches); "
              "more mixes more and holds more crops in memory.")
@click.option("--chunk-items", type=click.IntRange(min=1), default=16, show_default=True,
              help="Shards are cut into chunks of this many items and the chunks shuffled every epoch. Remote shards "
              "stream from their start for every chunk: set it to at least a shard's items there.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--val-every", type=click.IntRange(min=0), default=1, show_default=True,
              help="Validate every N epochs (and after the last); 0 = never.")
@click.option("--val-batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--val-limit", type=click.IntRange(min=1), default=None, help="Validate on the first N images only.")
@click.option("--log-every", type=click.IntRange(min=1), default=20, show_default=True, help="Steps per log record.")
@click.option("--verify-checksums", is_flag=True, help="Check every shard's sha256 against the manifest first.")
@click.option("--sample-checksums/--no-sample-checksums", default=True, show_default=True,
              help="Check every sample's sha256 as it is read (turn off only for shards verified already).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def main(ctx: click.Context, **p: object) -> None:
    """Train an FCN (semantic) or iFCN (interactive) model on shards written by `ifcn-prep sample`."""
    _check_flags(ctx, p)
    p["compile"] = p.pop("compile_")
    p["stride"] = int(p["stride"])
    try:
        config = TrainConfig(**p)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    try:
        result = train(config)
    except (SetupError, InputError) as e:  # InputError: a shard or sample found bad while training
        raise click.ClickException(str(e)) from None
    summary = f"done: {result.epochs} epochs, {result.steps} steps, final loss {result.final_loss:.4f}"
    if result.best_metric is not None:
        summary += f", best {result.metric} {result.best_metric:.4f} ({result.best_checkpoint})"
    click.echo(summary)


if __name__ == "__main__":  # `python -m ifcn.trainer.cli`, as `torchrun -m` runs it
    main()
