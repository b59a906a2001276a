"""The training run: `train(TrainConfig) -> TrainResult`, the one function `ifcn-train` and the tests call.

Everything that can be checked before training (flags, shards, model, resume state) is checked in `_prepare`, and
its failures surface as `SetupError` with a message naming the flag or file. The loop streams batches of uint8 crops
and click coordinates, builds the network input on the device, and writes `last.pt` (every epoch) and `best.pt`
(best validation metric) atomically, so a killed run resumes from its last completed epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ifcn.io import cleanup_temporaries
from ifcn.shards.check import TASKS, check_shards
from ifcn.shards.manifest import ShardSet, resolve_shards
from ifcn.trainer.checkpoint import load_checkpoint, save_checkpoint
from ifcn.trainer.data.augment import AugmentConfig
from ifcn.trainer.data.epoch_plan import steps_per_epoch
from ifcn.trainer.data.stream import TrainStream, make_loader
from ifcn.trainer.distributed import (
    DistContext,
    all_gather_ints,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    init_distributed,
    shutdown,
)
from ifcn.trainer.inputs import batch_input
from ifcn.trainer.losses import LOSSES
from ifcn.trainer.models.config import ModelConfig
from ifcn.trainer.precision import autocast, check_precision
from ifcn.trainer.run_files import RunFiles
from ifcn.trainer.schedule import SCHEDULES, Schedule, make_scheduler
from ifcn.trainer.validation import validate_interactive, validate_semantic

LAST, BEST = "last.pt", "best.pt"
#: Validation metric that selects `best.pt`, per task (higher is better).
METRIC = {"interactive": "val_iou", "semantic": "val_miou"}
#: Settings a resumed run may change; every other one must match the checkpoint's, or the run would not be the same.
RESUMABLE_CHANGES = frozenset({"out", "shards", "val_shards", "workers", "device", "progress", "log_every",
                               "val_every", "val_batch_size", "val_limit", "verify_checksums", "sample_checksums",
                               "resume", "compile", "channels_last", "weights", "epochs"})


class SetupError(ValueError):
    """A bad flag, file or resume state found before training started."""


@dataclass(frozen=True)
class TrainConfig:
    """All settings of a run (CLI flags one to one). Defaults follow spec §5."""

    shards: str
    out: str
    task: str = "interactive"
    val_shards: str | None = None
    arch: str = "resnet18"
    stride: int = 8
    upsample: str = "deconv"
    weights: str = "imagenet"
    first_layer_init: str = "zero"
    head: str = "full"
    num_classes: int = 21
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
    workers: int = 4
    shuffle_items: int = 128
    chunk_items: int = 16
    seed: int = 0
    val_every: int = 1
    val_batch_size: int = 8
    val_limit: int | None = None
    log_every: int = 20
    verify_checksums: bool = False
    sample_checksums: bool = True
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.task in TASKS, f"--task must be one of {TASKS}"),
            (self.epochs >= 0, "--epochs must be ≥ 0 (0 = validate and save the initial model)"),
            (self.batch_size >= 1, "--batch-size must be ≥ 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.weight_decay >= 0, "--weight-decay must be ≥ 0"),
            (self.clip_grad is None or self.clip_grad > 0, "--clip-grad must be > 0"),
            (self.workers >= 0, "--workers must be ≥ 0"),
            (self.shuffle_items >= 1, "--shuffle-items must be ≥ 1"),
            (self.chunk_items >= 1, "--chunk-items must be ≥ 1"),
            (self.val_every >= 0, "--val-every must be ≥ 0 (0 = never)"),
            (self.val_batch_size >= 1, "--val-batch-size must be ≥ 1"),
            (self.val_limit is None or self.val_limit >= 1, "--val-limit must be ≥ 1"),
            (self.log_every >= 1, "--log-every must be ≥ 1"),
            (self.seed >= 0, "--seed must be ≥ 0"),
            (self.num_classes >= 2, "--num-classes must be ≥ 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.schedule not in SCHEDULES or self.warmup_steps < 0:
            raise ValueError(f"--schedule must be one of {SCHEDULES} and --warmup-steps ≥ 0")
        AugmentConfig(self.crop, tuple(self.scale_range))  # validates crop and scale range

    def model_config(self) -> ModelConfig:
        interactive = self.task == "interactive"
        return ModelConfig(backbone=self.arch, stride=self.stride, upsample=self.upsample,
                           in_channels=5 if interactive else 3, num_classes=1 if interactive else self.num_classes,
                           weights=self.weights, first_layer_init=self.first_layer_init, head=self.head)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["scale_range"] = list(self.scale_range)
        return d


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced. `best_metric` is None without validation."""

    run_dir: Path
    epochs: int
    steps: int
    steps_per_epoch: int
    final_loss: float
    metric: str | None
    best_metric: float | None
    last_val: dict[str, float] = field(default_factory=dict)

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / LAST

    @property
    def best_checkpoint(self) -> Path | None:
        return self.run_dir / BEST if self.best_metric is not None else None


@dataclass
class _Run:
    """The prepared state of a run (mutable: epoch, step and best metric advance)."""

    config: TrainConfig
    ctx: DistContext
    run_dir: Path
    model_config: ModelConfig
    raw: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    stream: TrainStream
    val: ShardSet | None
    manifest_id: str | None
    files: RunFiles
    epoch: int = 0
    step: int = 0
    best: float | None = None
    last_val: dict[str, float] = field(default_factory=dict)

    @property
    def metric(self) -> str | None:
        return METRIC[self.config.task] if self.val is not None else None


def _resume_mismatches(stored: dict[str, Any], config: TrainConfig) -> list[str]:
    new = config.to_dict()
    out = []
    for f in fields(TrainConfig):
        if f.name in RESUMABLE_CHANGES or f.name not in stored:
            continue
        if stored[f.name] != new[f.name]:
            out.append(f"--{f.name.replace('_', '-')} {new[f.name]!r} (the run used {stored[f.name]!r})")
    if config.epochs != stored.get("epochs") and config.schedule != "none":
        out.append(f"--epochs {config.epochs} (the run used {stored.get('epochs')}; the {config.schedule} schedule "
                   "depends on the run length)")
    return out


def _check_run_dir(config: TrainConfig) -> Path:
    run_dir = Path(config.out)
    last = run_dir / LAST
    if config.resume and not last.is_file():
        raise SetupError(f"--resume: {last} does not exist; start the run without --resume (or check --out)")
    if not config.resume and last.exists():
        raise SetupError(f"--out {run_dir} already holds a run ({LAST}); pass --resume to continue it "
                         "or choose another --out")
    return run_dir


def _load_resume_state(run_dir: Path, config: TrainConfig, manifest_id: str | None) -> dict[str, Any]:
    try:
        state = load_checkpoint(run_dir / LAST)
    except (ValueError, FileNotFoundError) as e:
        raise SetupError(f"--resume: {e}. A checkpoint is only renamed to {LAST} once complete, so this file was "
                         "damaged afterwards; delete it to restart, or copy best.pt over it") from None
    mismatches = _resume_mismatches(state.get("train_config", {}), config)
    if mismatches:
        raise SetupError("--resume: these settings differ from the run being resumed: " + "; ".join(mismatches))
    if state.get("manifest_id") != manifest_id:
        raise SetupError(f"--resume: the shards' manifest id is {manifest_id}, the run was trained on "
                         f"{state.get('manifest_id')}; resume with the same --shards")
    return state


def _build_model(config: TrainConfig, ctx: DistContext, resume: dict[str, Any] | None) -> tuple[ModelConfig,
                                                                                               torch.nn.Module]:
    from ifcn.trainer.models import build_model

    model_config = config.model_config()
    torch.manual_seed(config.seed)  # dropout (VGG/AlexNet fc6/fc7) draws from torch's global generator
    # A resumed run loads its weights from the checkpoint: no need for the pretrained file again.
    build_config = ModelConfig.from_dict({**model_config.to_dict(), "weights": "none"}) if resume else model_config
    raw = build_model(build_config, seed=config.seed)
    if resume:
        raw.load_state_dict(resume["model"])
    raw = raw.to(ctx.device)
    if config.channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    return model_config, raw


def _prepare(config: TrainConfig, ctx: DistContext) -> _Run:
    check_precision(config.precision, ctx.device)
    run_dir = _check_run_dir(config)
    shard_set = resolve_shards(config.shards)
    infos = check_shards(shard_set, config.task, verify_checksums=config.verify_checksums,
                         check_digest=config.sample_checksums)
    val = resolve_shards(config.val_shards) if config.val_shards and config.val_every else None
    if val is not None:
        check_shards(val, config.task, verify_checksums=config.verify_checksums, check_digest=config.sample_checksums,
                     what="--val-shards")
    total = sum(i.items for i in infos)
    steps = steps_per_epoch(total, ctx.world_size, config.batch_size)
    if steps == 0:
        raise SetupError(f"--shards hold {total} training items, fewer than one batch on each of the "
                         f"{ctx.world_size} rank(s) (--batch-size {config.batch_size}); lower --batch-size")
    manifest_id = shard_set.manifest.id if shard_set.manifest else None
    resume = _load_resume_state(run_dir, config, manifest_id) if config.resume else None
    model_config, raw = _build_model(config, ctx, resume)
    optimizer = torch.optim.Adam(raw.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = make_scheduler(optimizer, Schedule(config.schedule, max(1, config.epochs * steps), config.warmup_steps))
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=config.precision == "fp16")
    net: torch.nn.Module = raw
    if ctx.distributed:
        net = DistributedDataParallel(raw, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    stream = TrainStream(infos, config.task, AugmentConfig(config.crop, tuple(config.scale_range)), config.batch_size,
                         steps, config.seed, ctx.world_size, ctx.rank, config.workers, config.shuffle_items,
                         config.chunk_items, config.sample_checksums)
    run_dir.mkdir(parents=True, exist_ok=True)
    if ctx.is_main:
        cleanup_temporaries(run_dir)  # a save killed half-way leaves only a `.tmp-` file, never a bad last.pt
    run = _Run(config, ctx, run_dir, model_config, raw, net, optimizer, scheduler, scaler, stream, val, manifest_id,
               RunFiles(run_dir, ctx.is_main))
    if resume:
        _restore(run, resume)
    else:  # what a run killed before its first checkpoint left would otherwise mix with this run's records
        run.files.keep_epochs_up_to(0)
        if ctx.is_main:
            (run_dir / BEST).unlink(missing_ok=True)
    run.files.write_config({**config.to_dict(), "model_config": model_config.to_dict(), "model_name": model_config.name,
                            "world_size": ctx.world_size, "device": str(ctx.device), "steps_per_epoch": steps,
                            "train_items": total, "manifest_id": manifest_id})
    return run


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _restore(run: _Run, state: dict[str, Any]) -> None:
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.epoch, run.step, run.best = int(state["epoch"]), int(state["step"]), state.get("best_metric")
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    run.files.keep_epochs_up_to(run.epoch)


def _checkpoint_state(run: _Run) -> dict[str, Any]:
    """Tensors and plain values only, so `load_checkpoint` can use `weights_only=True`. The data order needs no
    generator state: it is a pure function of (seed, epoch, rank), whatever the number of loader workers."""
    return {"model_config": run.model_config.to_dict(), "task": run.config.task, "model": run.raw.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(), "epoch": run.epoch, "step": run.step, "rng": _rng_state(),
            "seed": run.config.seed, "manifest_id": run.manifest_id, "train_config": run.config.to_dict(),
            "metric": run.metric, "best_metric": run.best, "val": run.last_val}


def training_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  batch: dict[str, torch.Tensor], *, task: str, device: torch.device, precision: str = "fp32",
                  channels_last: bool = False, clip_grad: float | None = None) -> torch.Tensor:
    """One optimisation step on a collated batch (also what `bench/bench_train.py` times): move the uint8 crops and
    click coordinates to the device, build the network input there, forward under autocast, loss, backward, step.
    Returns the loss as a device tensor (no host sync)."""
    x = batch_input(batch, device, channels_last)
    with autocast(device, precision):
        logits = net(x)
    loss = LOSSES[task](logits, batch["target"].to(device, non_blocking=True))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip_grad:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_grad)
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def _train_step(run: _Run, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    cfg = run.config
    loss = training_step(run.net, run.optimizer, run.scaler, batch, task=cfg.task, device=run.ctx.device,
                         precision=cfg.precision, channels_last=cfg.channels_last, clip_grad=cfg.clip_grad)
    run.scheduler.step()
    return loss


def _train_epoch(run: _Run, bar: tqdm) -> tuple[float, int, float]:
    """One epoch on this rank: (mean loss over all ranks, steps this rank did, seconds)."""
    cfg, ctx = run.config, run.ctx
    run.stream.set_epoch(run.epoch)
    run.net.train()
    loss_sum = torch.zeros((), device=ctx.device, dtype=torch.float64)
    window_loss, window_steps, done = 0.0, 0, 0
    start = tick = time.perf_counter()
    for batch in make_loader(run.stream, pin_memory=ctx.device.type == "cuda"):
        loss = _train_step(run, batch)
        loss_sum += loss
        done += 1
        run.step += 1
        bar.update(1)
        if done % cfg.log_every == 0 or done == run.stream.steps:
            now_loss = float(loss_sum)  # one host sync per log interval, not per step
            now = time.perf_counter()
            rate = (done - window_steps) * cfg.batch_size * ctx.world_size / max(now - tick, 1e-9)
            mean = (now_loss - window_loss) / (done - window_steps)
            bar.set_postfix(loss=f"{mean:.4f}", samples_s=f"{rate:.1f}")
            run.files.log({"kind": "step", "epoch": run.epoch + 1, "step": run.step, "loss": mean,
                           "lr": run.optimizer.param_groups[0]["lr"], "samples_per_s": rate})
            window_loss, window_steps, tick = now_loss, done, now
    if done != run.stream.steps:
        raise RuntimeError(f"rank {ctx.rank} got {done} batches in epoch {run.epoch + 1}, expected "
                           f"{run.stream.steps}: have the shards changed since their manifest was written?")
    total = torch.stack([loss_sum, torch.tensor(float(done), device=ctx.device, dtype=torch.float64)])
    all_reduce_sum(total)
    return float(total[0] / total[1]), done, time.perf_counter() - start


def _validate(run: _Run) -> dict[str, float]:
    cfg = run.config
    broadcast_buffers(run.raw)
    if cfg.task == "interactive":
        r = validate_interactive(run.raw, run.val, run.ctx.device, cfg.val_batch_size, cfg.val_limit, cfg.precision,
                                 check_digest=cfg.sample_checksums)
        return {"val_iou": r["iou"], "val_objects": r["objects"], "val_pairs": r["pairs"]}
    scores = validate_semantic(run.raw, run.val, run.ctx.device, cfg.num_classes, cfg.val_batch_size, cfg.val_limit,
                               cfg.precision, check_digest=cfg.sample_checksums).scores()
    return {"val_miou": scores.miou, "val_pixel_accuracy": scores.pixel_accuracy}


def _end_epoch(run: _Run, loss: float, steps: int, seconds: float) -> None:
    cfg = run.config
    rank_steps = all_gather_ints(steps, run.ctx.device)
    due = run.val is not None and (run.epoch % cfg.val_every == 0 or run.epoch == cfg.epochs)
    run.last_val = _validate(run) if due else {}
    improved = False
    if run.last_val and not math.isnan(run.last_val[run.metric]):
        improved = run.best is None or run.last_val[run.metric] > run.best
        if improved:
            run.best = run.last_val[run.metric]
    run.files.log({"kind": "epoch", "epoch": run.epoch, "step": run.step, "train_loss": loss, "steps": steps,
                   "rank_steps": rank_steps, "seconds": seconds,
                   "samples_per_s": steps * cfg.batch_size * run.ctx.world_size / max(seconds, 1e-9),
                   "lr": run.optimizer.param_groups[0]["lr"], **run.last_val})
    if run.ctx.is_main:
        state = _checkpoint_state(run)
        if improved:
            save_checkpoint(run.run_dir / BEST, state)
        save_checkpoint(run.run_dir / LAST, state)  # last: a kill before this line redoes the epoch
        run.files.plot_curves(run.metric)
    barrier()


def train(config: TrainConfig) -> TrainResult:
    """Train (or, with `config.resume`, continue) a run; returns when `config.epochs` epochs are done.

    Under `torchrun`, call it in every process: the process group is taken from the environment.
    """
    ctx = init_distributed(config.device)
    try:
        try:
            run = _prepare(config, ctx)
        except (ValueError, OSError) as e:
            raise SetupError(str(e)) from e
        remaining = (config.epochs - run.epoch) * run.stream.steps
        loss = math.nan
        with tqdm(total=remaining, disable=not (ctx.is_main and config.progress), unit="step",
                  dynamic_ncols=True) as bar:
            while run.epoch < config.epochs:
                bar.set_description(f"epoch {run.epoch + 1}/{config.epochs}")
                loss, steps, seconds = _train_epoch(run, bar)
                run.epoch += 1
                _end_epoch(run, loss, steps, seconds)
        if config.epochs == 0:  # a baseline: the initialised model, validated and saved like a trained one
            _end_epoch(run, loss, 0, 0.0)
        run.files.close()
        return TrainResult(run.run_dir, run.epoch, run.step, run.stream.steps, loss, run.metric, run.best,
                           run.last_val)
    finally:
        shutdown()
