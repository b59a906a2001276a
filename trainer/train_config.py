"""The settings of a training run: `TrainConfig` (CLI flags one to one), the one place where every setting is checked,
and where a run's settings come from (flags, a stored `config.json`, or both).

`ifcn-train` parses types only; every value and combination check lives in `TrainConfig.__post_init__`, so the
command line, `--config FILE`, one-flag `--resume` and Python callers all get the same checks and the same messages
(naming the flag). Settings that apply to one task only (`first_layer_init`, `num_classes`) are None when not set, so
setting them for the other task can be refused; so is `iterative_prob`, which applies with `iterative` only.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ifcn.cores import usable_cores
from ifcn.flags import flag
from ifcn.labels import VOC_CLASSES
from ifcn.trainer.core.device import parse_device
from ifcn.trainer.core.input_spec import CLICK_ENCODINGS, InputSpec
from ifcn.trainer.core.names import TASKS
from ifcn.trainer.core.precision import PRECISIONS
from ifcn.trainer.iterative import MAX_ROUNDS, IterativeSettings, default_prob
from ifcn.trainer.losses import INTERACTIVE_LOSSES
from ifcn.trainer.models.model_config import ModelConfig
from ifcn.trainer.schedule import SCHEDULES

#: Semantic classes when `--num-classes` is not given (PASCAL VOC: background + 20).
DEFAULT_NUM_CLASSES = len(VOC_CLASSES)
#: Click-channel initialisation when `--first-layer-init` is not given.
DEFAULT_FIRST_LAYER_INIT = "zero"
#: Largest `--crop` (a 4096² crop of a batch already takes gigabytes) and `--scale-range` maximum: beyond them a
#: typing mistake (`--crop 100000`) would try to allocate tens of gigabytes before failing.
MAX_CROP = 4096
MAX_SCALE = 8.0
#: Settings that describe one invocation, never taken over from a stored configuration.
PER_INVOCATION = frozenset({"out", "resume", "overwrite"})
CHOICES: dict[str, tuple[Any, ...]] = {
    "task": TASKS, "stride": (8, 16, 32), "upsample": ("deconv", "bilinear"), "first_layer_init": ("zero", "mean"),
    "head": ("full", "light"), "schedule": SCHEDULES, "precision": tuple(PRECISIONS),
    "click_encoding": CLICK_ENCODINGS, "loss": tuple(INTERACTIVE_LOSSES),
}


class SetupError(ValueError):
    """A bad flag, file or resume state found before training started."""


def default_workers() -> int:
    """DataLoader workers per rank by default: 4, never more than the machine's cores."""
    return min(4, usable_cores())


@dataclass(frozen=True)
class TrainConfig:
    """All settings of a run (CLI flags one to one). Defaults follow spec §5. Invalid values raise ValueError naming
    the flag and the fix."""

    shards: str
    out: str
    task: str = "interactive"
    val_shards: str | None = None
    arch: str = "resnet18"
    stride: int = 8
    upsample: str = "deconv"
    weights: str = "imagenet"
    init_from: str | None = None
    first_layer_init: str | None = None
    head: str = "full"
    num_classes: int | None = None
    iterative: int = 0
    iterative_prob: float | None = None
    prev_mask: bool = False
    click_encoding: str = "distance"
    disk_radius: float = 5.0
    loss: str = "bce"
    epochs: int = 20
    batch_size: int = 24
    crop: int = 384
    scale_range: tuple[float, float] = (0.75, 1.25)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    schedule: str = "none"
    warmup_steps: int = 0
    clip_grad: float | None = None
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    workers: int = field(default_factory=default_workers)
    shuffle_items: int = 128
    chunk_items: int = 16
    seed: int = 0
    val_every: int = 1
    val_batch_size: int = 8
    val_limit: int | None = None
    log_every: int = 20
    verify_checksums: bool = False
    sample_checksums: bool = True
    max_minutes: float | None = None
    tensorboard: bool = False
    progress: bool = True
    resume: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        problems = type_problems(asdict(self))
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "scale_range", tuple(self.scale_range))  # JSON gives a list
        problems = [m for ok, m in self._checks() if not ok]
        if problems:
            raise ValueError("; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        from ifcn.trainer.models import get_backbone

        checks = [(getattr(self, name) in allowed, f"{flag(name)} must be one of {', '.join(map(str, allowed))}, "
                   f"got {getattr(self, name)!r}")
                  for name, allowed in CHOICES.items() if getattr(self, name) is not None]
        try:
            get_backbone(self.arch)
        except ValueError as e:
            checks.append((False, f"--arch: {e}"))
        try:
            parse_device(self.device)
        except ValueError as e:
            checks.append((False, f"--device: {e}"))
        lo, hi = self.scale_range
        interactive = self.task == "interactive"
        checks.extend([
            (bool(self.shards), "--shards is required (or --resume to continue the run in --out)"),
            (bool(self.out), "--out is required"),
            (self.epochs >= 0, "--epochs must be ≥ 0 (0 = validate and save the initial model)"),
            (self.batch_size >= 1, "--batch-size must be ≥ 1"),
            (32 <= self.crop <= MAX_CROP, f"--crop must lie in 32..{MAX_CROP} pixels (32: the models' smallest "
             f"input), got {self.crop}"),
            (0 < lo <= hi <= MAX_SCALE, f"--scale-range needs 0 < MIN ≤ MAX ≤ {MAX_SCALE:g}, got {lo} {hi}"),
            (self.lr > 0, "--lr must be > 0"),
            (self.weight_decay >= 0, "--weight-decay must be ≥ 0"),
            (self.warmup_steps >= 0, "--warmup-steps must be ≥ 0"),
            (self.clip_grad is None or self.clip_grad > 0, "--clip-grad must be > 0"),
            (self.workers >= 0, "--workers must be ≥ 0"),
            (self.shuffle_items >= 1, "--shuffle-items must be ≥ 1"),
            (self.chunk_items >= 1, "--chunk-items must be ≥ 1"),
            (self.seed >= 0, "--seed must be ≥ 0"),
            (self.val_every >= 0, "--val-every must be ≥ 0 (0 = never)"),
            (self.val_every <= 1 or self.val_shards is not None, "--val-every needs --val-shards (the shards to "
             "validate on)"),
            (self.val_batch_size >= 1, "--val-batch-size must be ≥ 1"),
            (self.val_limit is None or self.val_limit >= 1, "--val-limit must be ≥ 1"),
            (self.log_every >= 1, "--log-every must be ≥ 1"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be > 0"),
            (self.num_classes is None or self.num_classes >= 2, "--num-classes must be ≥ 2"),
            (interactive or self.first_layer_init is None, "--first-layer-init sets the two click channels of the "
             "interactive task's first layer; --task semantic has none. Drop the flag"),
            (not interactive or self.num_classes is None, "--num-classes applies to --task semantic; the interactive "
             "task has one output. Drop the flag"),
            (0 <= self.iterative <= MAX_ROUNDS, f"--iterative must lie in 0..{MAX_ROUNDS} (0 = off; each round costs "
             f"a forward pass of the batch; RITM uses 3), got {self.iterative}"),
            (self.iterative_prob is None or 0.0 <= self.iterative_prob <= 1.0, "--iterative-prob must lie in [0, 1], "
             f"got {self.iterative_prob}"),
            (self.iterative_prob is None or self.iterative > 0, "--iterative-prob sets how often the --iterative "
             "rounds run; pass --iterative N too, or drop the flag"),
            (interactive or not (self.iterative or self.prev_mask), "--iterative and --prev-mask add clicks and the "
             "previous prediction to the interactive task's input; --task semantic has neither. Drop them"),
            (not self.prev_mask or self.iterative > 0, "--prev-mask needs --iterative N (N ≥ 1): without extra click "
             "rounds the previous-mask channel is zero in every training step, so the model would never learn to use "
             "the predictions `ifcn-eval noc` feeds it"),
            (self.disk_radius > 0, f"--disk-radius must be > 0 (pixels), got {self.disk_radius}"),
            (interactive or (self.click_encoding == "distance" and self.loss == "bce"), "--click-encoding and --loss "
             "apply to the interactive task; --task semantic has no clicks and trains with cross-entropy. Drop them"),
            (self.init_from is None or self.weights in ("imagenet", "none"), "--init-from and --weights FILE both "
             "set the starting weights; pass only one"),
            (not (self.resume and self.overwrite), "--resume continues the run in --out, --overwrite moves it aside "
             "to start a new one; pass only one"),
        ])
        return checks

    @property
    def effective_num_classes(self) -> int:
        return 1 if self.task == "interactive" else (self.num_classes or DEFAULT_NUM_CLASSES)

    @property
    def effective_iterative_prob(self) -> float:
        """`--iterative-prob`, or its default N/(N+1) (extra rounds uniform in 0..N, as RITM draws them)."""
        return default_prob(self.iterative) if self.iterative_prob is None else self.iterative_prob

    def iterative_settings(self, rank: int) -> IterativeSettings | None:
        """The extra click rounds of rank `rank`'s steps; None without `--iterative`."""
        if not self.iterative:
            return None
        return IterativeSettings(self.iterative, self.effective_iterative_prob, self.seed, rank)

    def input_spec(self) -> InputSpec:
        """The network-input contract this run trains (and writes into its checkpoints)."""
        interactive = self.task == "interactive"
        return InputSpec(clicks=interactive, click_encoding=self.click_encoding if interactive else "distance",
                         disk_radius=self.disk_radius, prev_mask=self.prev_mask)

    def model_config(self) -> ModelConfig:
        channels = self.input_spec().channels
        return ModelConfig(backbone=self.arch, stride=self.stride, upsample=self.upsample,
                           in_channels=channels, num_classes=self.effective_num_classes,
                           weights="none" if self.init_from else self.weights,
                           first_layer_init=self.first_layer_init or DEFAULT_FIRST_LAYER_INIT, head=self.head)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scale_range"] = list(self.scale_range)
        return d

    def with_resolved_paths(self) -> TrainConfig:
        """The same settings with local paths (shards, starting weights) made absolute, as `config.json` stores
        them, so that `--resume` and `--config` work from any directory."""
        def resolved(value: str | None) -> str | None:
            if not value or "://" in value or value.startswith("pipe:") or value in ("imagenet", "none"):
                return value
            return os.path.abspath(os.path.expanduser(value))

        return replace(self, shards=resolved(self.shards), val_shards=resolved(self.val_shards),
                       weights=resolved(self.weights), init_from=resolved(self.init_from))


#: What each annotated type of a setting accepts, and how a message names it.
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false (JSON, unquoted)"),
    "tuple[float, float]": (lambda v: isinstance(v, list | tuple) and len(v) == 2
                            and all(_KINDS["float"][0](x) for x in v), "two numbers, [MIN, MAX]"),
}
#: Keys `ifcn-train` writes into config.json besides the settings (what the run found; never read back as settings).
RECORDED = frozenset({"model_config", "model_name", "world_size", "steps_per_epoch", "train_items", "manifest_id"})


def type_problems(settings: dict[str, Any]) -> list[str]:
    """One message per setting whose value is not of its type (`"epochs": "2"`, `"channels_last": "false"`,
    `"crop": null`), naming the flag and the type it takes."""
    problems = []
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    for name, value in settings.items():
        kind = types.get(name)
        if kind is None:
            continue
        optional = kind.endswith(" | None")
        accepts, described = _KINDS[kind.removesuffix(" | None")]
        if not (accepts(value) or (optional and value is None)):
            problems.append(f"{flag(name)} takes {described}{' or null' if optional else ''}, got "
                            f"{json.dumps(value) if _jsonable(value) else repr(value)}")
    return problems


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def settings_of(stored: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig settings in a stored dict, the other task's task-specific settings dropped."""
    names = {f.name for f in fields(TrainConfig)}
    settings = {k: v for k, v in stored.items() if k in names}
    task = settings.get("task", "interactive")
    if task == "semantic":
        settings.pop("first_layer_init", None)
    if task == "interactive":
        settings.pop("num_classes", None)
    return settings


def read_config_file(path: Path, what: str) -> dict[str, Any]:
    """The settings stored in a `config.json` written by `ifcn-train` (`what` names the flag that led to it)."""
    path = Path(path)
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{what}: {path} does not exist") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{what}: {path} is not a readable config.json ({e})") from None
    if not isinstance(stored, dict):
        raise ValueError(f"{what}: {path} does not hold a JSON object of settings")
    names = [f.name for f in fields(TrainConfig)]
    unknown = [f"{key!r} is not a setting" + (f" (did you mean {close[0]!r}?)" if close else "; see ifcn-train --help")
               for key in stored if key not in names and key not in RECORDED
               for close in [difflib.get_close_matches(str(key), names, n=1)]]
    problems = unknown + type_problems({k: v for k, v in stored.items() if k not in PER_INVOCATION})
    if problems:
        raise ValueError("\n".join(f"{what} {path}: {problem}" for problem in problems))
    return settings_of(stored)


def config_from_flags(given: dict[str, Any], *, config_file: Path | None = None) -> TrainConfig:
    """The run's settings from the flags the user gave explicitly (`given`, by setting name) on top of a base:

    - `--resume`: the settings stored in `OUT/config.json` (when present), so `--out RUN --resume` alone continues;
    - `--config FILE`: the settings of a stored `config.json`, to start a new run with them;
    - otherwise the defaults.
    Per-invocation settings (`--out`, `--resume`, `--overwrite`) are never taken from a file. Whether the flags given
    with `--resume` are changes a resumed run may make is checked later, against the checkpoint.
    """
    base: dict[str, Any] = {}
    if given.get("resume"):
        if config_file is not None:
            raise ValueError("--config starts a new run; --resume continues the one in --out with its own "
                             "config.json; pass only one")
        if not given.get("out"):
            raise ValueError("--resume needs --out (the run folder to continue)")
        stored = Path(given["out"]) / "config.json"
        base = read_config_file(stored, "--resume") if stored.is_file() else {}
    elif config_file is not None:
        base = read_config_file(config_file, "--config")
    base = {k: v for k, v in base.items() if k not in PER_INVOCATION}
    settings = {"shards": "", "out": "", **base, **given}
    return TrainConfig(**settings)
