"""`ifcn-train`: parse the flags, build a `TrainConfig`, call `train`. All logic lives in `ifcn.trainer.train`.

Options carry types only (no defaults, ranges or choices): the flags a user typed are laid over the defaults, a stored
`--config FILE` or, with `--resume`, the run's own `config.json`, and `TrainConfig` checks the result, so each
setting is validated in one place. Help texts show the defaults and choices `TrainConfig` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from ifcn.cli_options import DEVICE_HELP, user_errors
from ifcn.flags import setting_name
from ifcn.shards.remote import read_timeout_option
from ifcn.trainer.train import train
from ifcn.trainer.train_config import CHOICES, TrainConfig, config_from_flags, default_workers

DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}


def _list_archs(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from ifcn.trainer.models import describe_backbones

        click.echo(describe_backbones())
        ctx.exit()


def setting(*decls: str, help: str, type: Any = str, is_flag: bool = False,
            secondary: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option for the TrainConfig setting named by its flag, with no default of its own (see the module doc); the
    help text ends with the setting's choices and default."""
    name = setting_name(decls[0])
    extra = []
    if name in CHOICES:
        extra.append(" | ".join(map(str, CHOICES[name])))
    default = DEFAULTS.get(name)
    if name == "workers":
        extra.append(f"default: 4, at most the cores here, so {default_workers()}")
    elif isinstance(default, tuple):
        extra.append(f"default: {' '.join(map(str, default))}")
    elif default is not None and not is_flag:
        extra.append(f"default: {default}")
    text = help + (f" [{'; '.join(extra)}]" if extra else "")
    flag_decl = f"{decls[0]}/{secondary}" if secondary else decls[0]
    if is_flag:
        return click.option(flag_decl, name, is_flag=True, default=None if secondary else False, help=text)
    return click.option(*decls, name, type=type, default=None, help=text)


#: The measured real-photo recipe (README "The real-photo recipe", bench/RESULTS.md "The real-photo recipe study").
REAL_PHOTO_RECIPE = """Real photos: the measured recipe is

\b
  ifcn-train --shards SHARDS --crop 192 --batch-size 16 --iterative 3 --click-encoding disk \\
      --schedule poly --epochs E [--weights imagenet]

with E the epochs your time allows (the learning rate decays to zero over them). From scratch on one CPU core
(E = 2, 58 minutes) it reached NoC@85 14.47 on 171 held-out COCO_MVal photos against 16.93 for --crop 192
--batch-size 16 alone in 60 minutes. Iterative click rounds and disk click maps each took about a click off;
the decaying rate kept the gain at 60 minutes (a constant rate: 15.63)."""


@click.command("ifcn-train", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
               epilog=REAL_PHOTO_RECIPE)
@click.version_option(package_name="ifcn")
@click.option("--list-archs", is_flag=True, is_eager=True, expose_value=False, callback=_list_archs,
              help="Print the known backbones (with whether their ImageNet weights are cached) and exit.")
@setting("--shards", help="Training shards: a folder with manifest.json, a manifest file, or a brace/glob pattern of "
         "shard files (local, http(s):// or pipe:). Not needed with --resume or --config.")
@setting("--val-shards", help="Validation shards (same forms). Without them: no validation.")
@setting("--task", help="What to train.")
@setting("--arch", help="Backbone name (see --list-archs).")
@setting("--stride", type=int, help="FCN-8s, 16s or 32s.")
@setting("--upsample", help="Learnable bilinear-initialised deconvolution or fixed bilinear upsampling.")
@setting("--weights", help="Starting backbone weights: imagenet, none, or a weights file.")
@setting("--init-from", help="Start from the weights of another ifcn checkpoint of the same --arch/--stride, e.g. a "
         "semantic FCN for the interactive task (the paper's recipe): RGB filters and trunk kept, click channels "
         "per --first-layer-init, score layers of another class count re-initialised.")
@setting("--first-layer-init", help="Initial filters of the two click channels (interactive only).")
@setting("--head", help="VGG/AlexNet fc6: full 7×7 convolution or light 1×1.")
@setting("--num-classes", type=int, help="Semantic classes (semantic only; default 21).")
@setting("--iterative", type=int, help="Iterative click training (interactive only): for a batch, with probability "
         "--iterative-prob, 1..N extra rounds (uniform) run first without gradients, each adding one click per sample "
         "on the model's own errors (the standard clicker, as in NoC), and the step trains on the final clicks. "
         "0 = off; RITM uses 3.")
@setting("--iterative-prob", type=float, help="Probability that a batch gets extra rounds (with --iterative N). "
         "[default: N/(N+1), 0.75 at N = 3: the number of extra rounds is then uniform in 0..N, as RITM draws it]")
@setting("--prev-mask", is_flag=True, help="A sixth input channel with the previous prediction's probabilities "
         "(zero at the first click; needs --iterative), stored in the model; ifcn-eval feeds it.")
@setting("--click-encoding", type=str, help="How clicks enter the network (interactive only), stored in the "
         "checkpoint's input contract so evaluation, the Predictor, the export and the demo feed the same: distance = "
         "truncated distance maps (iFCN), disk = binary disks of --disk-radius pixels (RITM).")
@setting("--disk-radius", type=float, help="Disk radius in input pixels (with --click-encoding disk).")
@setting("--loss", type=str, help="Interactive training loss: bce = binary cross-entropy, nfl = normalised focal "
         "loss (RITM: focal weights with gamma 2, rescaled per image to sum to its pixel count).")
@setting("--epochs", type=int, help="0 = no training: validate and save the initialised model (a baseline).")
@setting("--batch-size", type=int, help="Per rank.")
@setting("--crop", type=int, help="Square crop side (≥ 32).")
@setting("--scale-range", type=(float, float), help="Random scale MIN MAX before cropping.")
@setting("--lr", type=float, help="Adam learning rate.")
@setting("--weight-decay", type=float, help="Adam weight decay.")
@setting("--schedule", help="Learning-rate decay after the warm-up.")
@setting("--warmup-steps", type=int, help="Linear warm-up steps.")
@setting("--clip-grad", type=float, help="Clip the gradient norm to this value.")
@setting("--precision", help="Autocast dtype (fp16 needs CUDA).")
@setting("--channels-last", is_flag=True, help="NHWC memory format (faster convolutions on recent GPUs).")
@setting("--compile", is_flag=True, help="torch.compile the model.")
@setting("--device", help=DEVICE_HELP + ".")
@setting("--workers", type=int, help="DataLoader worker processes per rank that decode and augment (0 = in the "
         "training process).")
@setting("--shuffle-items", type=int, help="Items one loader worker shuffles together (its batch group, rounded down "
         "to whole batches); more mixes more and holds more crops in memory.")
@setting("--chunk-items", type=int, help="Shards are cut into chunks of this many items and the chunks shuffled every "
         "epoch. Remote shards stream from their start for every chunk: set it to at least a shard's items there.")
@setting("--seed", type=int, help="Seed of the data order, augmentation and initialisation.")
@setting("--val-every", type=int, help="Validate every N epochs (and after the last); 0 = never.")
@setting("--val-batch-size", type=int, help="Validation images per forward pass.")
@setting("--val-limit", type=int, help="Validate on the first N images only.")
@setting("--log-every", type=int, help="Steps per log record (and plain log line).")
@setting("--verify-checksums", is_flag=True, help="Check every shard's sha256 against the manifest first.")
@setting("--sample-checksums", secondary="--no-sample-checksums", is_flag=True, help="Check every sample's sha256 as "
         "it is read (turn off only for shards verified already). [default: on]")
@setting("--max-minutes", type=float, help="Stop cleanly at the first step after this many minutes (a checkpoint is "
         "written; continue with --resume), for jobs with a wall-time limit.")
@setting("--tensorboard", is_flag=True, help='Also write TensorBoard events (scalars, validation images) to OUT/tb; '
         'needs `pip install -e ".[tensorboard]"`.')
@setting("--progress", secondary="--no-progress", is_flag=True, help="Progress bars on a terminal; --no-progress (and "
         "any non-terminal stdout) prints plain log lines instead. [default: progress]")
@setting("--out", help="Run folder (locked while the run writes it).")
@setting("--resume", is_flag=True, help="Continue the run in --out from its last.pt, with the settings of its "
         "config.json; flags given too must be changes a resume allows.")
@setting("--overwrite", is_flag=True, help="Start afresh in an --out that holds another run: its files are moved "
         "into OUT/previous-<time>/, never deleted.")
@read_timeout_option
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start a new run with the settings of a stored config.json (flags given too override them).")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, **params: Any) -> None:
    """Train an FCN (semantic) or iFCN (interactive) model on shards written by `ifcn-prep sample`."""
    given = {name: value for name, value in params.items()
             if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)}
    try:
        config = config_from_flags(given, config_file=config_file)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    with user_errors():  # bad settings or shards, a sample found bad in training, a full disk
        train(config)


if __name__ == "__main__":  # `python -m ifcn.trainer.train_cli`, as `torchrun -m` runs it
    main()
