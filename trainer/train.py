"""The training run: `train(TrainConfig) -> TrainResult`, the one function `ifcn-train` and the tests call.

Everything that can be checked before training (the run folder, shards, model, resume state) is checked in `_setup`
on every rank, and all ranks agree on the outcome before the first collective, so a refusal on one rank (e.g. the
folder lock, taken by rank 0) stops them all with its message as a `SetupError`. Epochs then run through
`loop.train_one_epoch`; after each, rank 0 writes `last.pt` (and `best.pt` on a better validation metric)
atomically, so a killed run resumes from its last completed epoch, and `--max-minutes` stops a run mid-epoch with a
checkpoint that resumes exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ifcn.lock import output_lock
from ifcn.shards.check import ShardInfo, check_shards
from ifcn.shards.manifest import ShardSet, resolve_shards
from ifcn.trainer.console import Console, format_validation
from ifcn.trainer.core.checkpoint import init_from_checkpoint, save_checkpoint
from ifcn.trainer.core.device import all_reduce_sum
from ifcn.trainer.core.names import BEST, LAST
from ifcn.trainer.core.precision import check_precision
from ifcn.trainer.data.augment import AugmentConfig
from ifcn.trainer.data.epoch_plan import steps_per_epoch
from ifcn.trainer.data.stream import TrainStream, make_loader
from ifcn.trainer.distributed import (
    DistContext,
    all_gather_ints,
    any_rank,
    barrier,
    broadcast_buffers,
    init_distributed,
    shutdown,
    stop_with_launcher,
)
from ifcn.trainer.evaluation.validation import validate_interactive, validate_semantic
from ifcn.trainer.loop import EpochOutcome, StepSettings, train_one_epoch
from ifcn.trainer.models.model_config import ModelConfig
from ifcn.trainer.run_files import TENSORBOARD, RunFiles, disk_fix
from ifcn.trainer.run_folder import check_run_folder, claim_run_folder, forget_unfinished_start
from ifcn.trainer.run_state import Progress, model_only, restore_training, training_state
from ifcn.trainer.schedule import Schedule, make_scheduler
from ifcn.trainer.tb_log import TensorBoardLog, require_tensorboard, validation_previews
from ifcn.trainer.train_config import SetupError, TrainConfig
from ifcn.trainer.train_resume import load_resume_state

__all__ = ["SetupError", "TrainConfig", "TrainResult", "train"]

#: Validation metric that selects `best.pt`, per task (higher is better).
METRIC = {"interactive": "val_iou", "semantic": "val_miou"}
#: What the folder lock calls a training run.
LOCK_OWNER = "ifcn-train"


@dataclass(frozen=True)
class TrainResult:
    """What a run produced. `status`: `done` (all epochs), `stopped` (`--max-minutes`; resumable) or `finished`
    (a `--resume` of a run that had already done all its epochs: nothing was trained). `best_metric` is None
    without validation."""

    run_dir: Path
    epochs: int
    steps: int
    steps_per_epoch: int
    final_loss: float
    metric: str | None
    best_metric: float | None
    last_val: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    status: str = "done"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / LAST

    @property
    def best_checkpoint(self) -> Path | None:
        return self.run_dir / BEST if self.best_metric is not None else None


@dataclass(frozen=True)
class _Setup:
    """The built, immutable parts of a run (progress is kept apart and replaced as the run advances)."""

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
    console: Console

    @property
    def metric(self) -> str | None:
        return METRIC[self.config.task] if self.val is not None else None


def _build_model(config: TrainConfig, ctx: DistContext, resume: dict[str, Any] | None,
                 console: Console) -> tuple[ModelConfig, torch.nn.Module]:
    from ifcn.trainer.models import build_model

    model_config = config.model_config()
    torch.manual_seed(config.seed)  # dropout (VGG/AlexNet fc6/fc7) draws from torch's global generator
    # A resumed run loads its weights from the checkpoint: no need for the pretrained file again.
    build_config = replace(model_config, weights="none") if resume else model_config
    raw = build_model(build_config, seed=config.seed)
    if resume:
        raw.load_state_dict(resume["model"])
    elif config.init_from:
        report = init_from_checkpoint(raw, model_config, Path(config.init_from))
        console.line(f"--init-from {config.init_from}: {report.summary()}")
    raw = raw.to(ctx.device)
    if config.channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    return model_config, raw


@dataclass(frozen=True)
class _Inputs:
    """What the checks of a run's inputs found and built on this rank."""

    infos: tuple[ShardInfo, ...]
    val: ShardSet | None
    steps: int
    total: int
    manifest_id: str | None
    resume: dict[str, Any] | None
    model_config: ModelConfig
    raw: torch.nn.Module


def _check_inputs(config: TrainConfig, ctx: DistContext, stack: ExitStack, console: Console) -> _Inputs:
    """Every check and load that can fail on bad input, on this rank. Rank 0 holds the folder's lock from the start
    and changes the folder (moving an old run aside) only once everything else passed."""
    check_precision(config.precision, ctx.device)
    run_dir = Path(config.out)
    previous: list[str] = []
    if ctx.is_main:  # the writing rank: one writer per folder
        stack.enter_context(output_lock(run_dir, LOCK_OWNER))
        inputs = (config.shards, config.val_shards, config.init_from, config.weights)
        previous = check_run_folder(run_dir, resume=config.resume, overwrite=config.overwrite, inputs=inputs)
        if config.tensorboard:
            require_tensorboard()
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
    resume = load_resume_state(run_dir, config, manifest_id) if config.resume else None
    model_config, raw = _build_model(config, ctx, resume, console)
    if ctx.is_main:
        moved = claim_run_folder(run_dir, previous)
        if moved is not None:
            console.line(f"--overwrite: moved the previous run's files into {moved}")
        if not config.resume:  # runs before the lock is released
            stack.callback(forget_unfinished_start, run_dir)
    return _Inputs(infos, val, steps, total, manifest_id, resume, model_config, raw)


def _setup(config: TrainConfig, ctx: DistContext, stack: ExitStack, console: Console) -> tuple[_Setup, Progress]:
    failure: Exception | None = None
    try:
        found = _check_inputs(config, ctx, stack, console)
    except (ValueError, OSError) as e:
        failure = e
    if any_rank(failure is not None, ctx.device):  # before any other collective: no rank is left waiting
        raise SetupError(str(failure) if failure is not None else
                         "another rank refused to start (its message says why)") from failure
    raw, steps, run_dir = found.raw, found.steps, Path(config.out)
    optimizer = torch.optim.Adam(raw.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    try:
        schedule = Schedule(config.schedule, max(1, config.epochs * steps), config.warmup_steps)
    except ValueError as e:
        raise SetupError(str(e)) from None
    scheduler = make_scheduler(optimizer, schedule)
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=config.precision == "fp16")
    progress = restore_training(found.resume, optimizer, scheduler, scaler) if found.resume else Progress()
    net: torch.nn.Module = raw
    if ctx.distributed:
        net = DistributedDataParallel(raw, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    stream = TrainStream(found.infos, config.task, AugmentConfig(config.crop, config.scale_range), config.batch_size,
                         steps, config.seed, ctx.world_size, ctx.rank, config.workers, config.shuffle_items,
                         config.chunk_items, config.sample_checksums)
    tensorboard = TensorBoardLog(run_dir / TENSORBOARD) if config.tensorboard and ctx.is_main else None
    files = RunFiles(run_dir, ctx.is_main, tensorboard)
    stack.callback(files.close)
    setup = _Setup(config, ctx, run_dir, found.model_config, raw, net, optimizer, scheduler, scaler, stream, found.val,
                   found.manifest_id, files, console)
    if not _finished(config, progress):
        files.keep_records_up_to(progress.step)  # what a killed run logged after its checkpoint is redone
        files.write_config({**config.with_resolved_paths().to_dict(), "model_config": found.model_config.to_dict(),
                            "model_name": found.model_config.name, "world_size": ctx.world_size,
                            "device": str(ctx.device), "steps_per_epoch": steps, "train_items": found.total,
                            "manifest_id": found.manifest_id})
    return setup, progress


def _finished(config: TrainConfig, progress: Progress) -> bool:
    """A resumed run that has nothing left to do."""
    return config.resume and progress.epoch >= config.epochs and not progress.epoch_step


def _validate(s: _Setup) -> dict[str, float]:
    cfg, val = s.config, s.val
    broadcast_buffers(s.raw)
    known = val.manifest is not None and cfg.val_limit is None and s.ctx.world_size == 1
    total = None
    if known:
        total = val.manifest.totals.pairs if cfg.task == "interactive" else val.manifest.totals.images
    bar = s.console.bar(total, "validation", "item")
    try:
        if cfg.task == "interactive":
            r = validate_interactive(s.raw, val, s.ctx.device, cfg.val_batch_size, cfg.val_limit, cfg.precision,
                                     on_batch=bar.update, check_digest=cfg.sample_checksums,
                                     spec=cfg.input_spec())
            return {"val_iou": r["iou"], "val_objects": r["objects"], "val_pairs": r["pairs"]}
        scores = validate_semantic(s.raw, val, s.ctx.device, cfg.effective_num_classes, cfg.val_batch_size,
                                   cfg.val_limit, cfg.precision, on_batch=bar.update,
                                   check_digest=cfg.sample_checksums).scores()
        return {"val_miou": scores.miou, "val_pixel_accuracy": scores.pixel_accuracy}
    finally:
        s.console.close_bar(bar)


def _save(s: _Setup, progress: Progress, best: bool) -> None:
    """Rank 0 writes `last.pt` (full state) and, when `best`, `best.pt` (model only)."""
    if s.ctx.is_main:
        state = training_state(model=s.raw, optimizer=s.optimizer, scheduler=s.scheduler, scaler=s.scaler,
                               progress=progress, model_config=s.model_config, config=s.config,
                               manifest_id=s.manifest_id, metric=s.metric)
        if best:
            save_checkpoint(s.run_dir / BEST, model_only(state), disk_fix(s.run_dir))
        save_checkpoint(s.run_dir / LAST, state, disk_fix(s.run_dir))  # last: a kill before this line redoes the epoch


def _global_sum(loss_sum: float, steps: int, device: torch.device) -> tuple[float, int]:
    total = all_reduce_sum(torch.tensor([loss_sum, float(steps)], device=device, dtype=torch.float64))
    return float(total[0]), int(total[1])


def _end_epoch(s: _Setup, progress: Progress, outcome: EpochOutcome, epoch: int) -> Progress:
    """Validate (when due), log, checkpoint and plot after epoch `epoch` (0: the untrained baseline)."""
    cfg = s.config
    loss_sum, steps_all = _global_sum(outcome.loss_sum, outcome.steps, s.ctx.device)
    loss = loss_sum / steps_all if steps_all else math.nan
    rank_steps = all_gather_ints(outcome.steps, s.ctx.device)
    fresh = outcome.steps - progress.epoch_step
    due = s.val is not None and (epoch % cfg.val_every == 0 or epoch == cfg.epochs)
    val = _validate(s) if due else {}
    best, best_epoch = progress.best, progress.best_epoch
    improved = bool(val) and not math.isnan(val[s.metric]) and (best is None or val[s.metric] > best)
    if improved:
        best, best_epoch = val[s.metric], epoch
    new = Progress(epoch=epoch, step=progress.step + fresh, best=best, best_epoch=best_epoch, last_val=val,
                   last_loss=loss)
    s.files.log({"kind": "epoch", "epoch": epoch, "step": new.step, "train_loss": loss, "steps": outcome.steps,
                 "rank_steps": rank_steps, "seconds": outcome.seconds,
                 "samples_per_s": fresh * cfg.batch_size * s.ctx.world_size / max(outcome.seconds, 1e-9),
                 "lr": s.optimizer.param_groups[0]["lr"], **val})
    if val:
        s.console.line(format_validation(epoch, cfg.epochs, val, s.metric, best, best_epoch))
        if s.files.tensorboard is not None:
            previews = validation_previews(s.raw, s.val, cfg.task, s.ctx.device, cfg.precision,
                                           spec=cfg.input_spec())
            s.files.tensorboard.images(previews, new.step)
    _save(s, new, improved)
    s.files.plot_curves(s.metric)
    barrier()
    return new


def _stop(s: _Setup, progress: Progress, outcome: EpochOutcome, minutes: float) -> Progress:
    """Record a `--max-minutes` stop; inside an epoch, first checkpoint it so that `--resume` continues at the next
    step (at an epoch's end, `_end_epoch` has already written that checkpoint)."""
    if outcome.steps < s.stream.steps:
        loss_sum, _ = _global_sum(outcome.loss_sum, 0, s.ctx.device)
        progress = replace(progress, step=progress.step + outcome.steps - progress.epoch_step,
                           epoch_step=outcome.steps, epoch_loss=loss_sum)
        _save(s, progress, best=False)
    s.files.log({"kind": "stop", "reason": "max_minutes", "epoch": progress.epoch + (progress.epoch_step > 0),
                 "step": progress.step, "epoch_step": progress.epoch_step, "minutes": minutes})
    barrier()
    return progress


class _Observer:
    """Where the loop's progress goes: the progress bar, metrics.jsonl (and TensorBoard), plain console lines."""

    def __init__(self, s: _Setup, bar: tqdm, total_steps: int):
        self.s, self.bar, self.total_steps = s, bar, total_steps

    def advance(self) -> None:
        self.bar.update(1)

    def log(self, record: dict[str, Any]) -> None:
        self.s.files.log(record)
        self.s.console.log_step(record, self.s.config.epochs, self.total_steps, self.bar)


def _closing_line(s: _Setup, result: TrainResult) -> str:
    best = ""
    if result.best_metric is not None:
        best = (f", best {result.metric} {result.best_metric:.4f} at epoch {result.best_epoch} "
                f"({result.best_checkpoint})")
    if result.status == "finished":
        return (f"finished: {result.run_dir} already holds all {result.epochs} epochs of this run{best}; nothing "
                f"to train. To train longer, resume with a larger --epochs")
    if result.status == "stopped":
        return (f"stopped: --max-minutes {s.config.max_minutes:g} reached at step {result.steps} of "
                f"{s.config.epochs * s.stream.steps} ({result.epochs} epochs complete); {result.last_checkpoint} "
                f"saved{best}. Continue with: ifcn-train --out {result.run_dir} --resume")
    return (f"done: {result.epochs} epochs, {result.steps} steps, final loss {result.final_loss:.4f}{best}; "
            f"{result.last_checkpoint}")


def _run_epochs(s: _Setup, progress: Progress, started: float) -> TrainResult:
    cfg, ctx, steps = s.config, s.ctx, s.stream.steps
    deadline = started + 60 * cfg.max_minutes if cfg.max_minutes else None

    def should_stop() -> bool:
        return deadline is not None and any_rank(time.monotonic() >= deadline, ctx.device)

    settings = StepSettings(cfg.task, ctx.device, cfg.loss, cfg.precision, cfg.channels_last, cfg.clip_grad,
                            cfg.input_spec(), cfg.iterative_settings(ctx.rank))
    status = "done"
    bar = s.console.bar(cfg.epochs * steps, "training", "step", initial=progress.step)
    try:
        observer = _Observer(s, bar, cfg.epochs * steps)
        while progress.epoch < cfg.epochs and status == "done":
            bar.set_description(f"epoch {progress.epoch + 1}/{cfg.epochs}")
            s.stream.set_epoch(progress.epoch)
            outcome = train_one_epoch(
                s.net, s.optimizer, s.scheduler, s.scaler, make_loader(s.stream, pin_memory=ctx.device.type == "cuda"),
                settings, epoch=progress.epoch + 1, first_step=progress.step, steps=steps,
                samples_per_step=cfg.batch_size * ctx.world_size, log_every=cfg.log_every, observer=observer,
                done=progress.epoch_step, loss_sum=progress.epoch_loss if ctx.is_main else 0.0,
                should_stop=should_stop, bare_net=s.raw)
            if outcome.steps == steps:
                progress = _end_epoch(s, progress, outcome, progress.epoch + 1)
            if outcome.stopped and progress.epoch < cfg.epochs:
                progress, status = _stop(s, progress, outcome, (time.monotonic() - started) / 60), "stopped"
    finally:
        s.console.close_bar(bar)
    if cfg.epochs == 0:  # a baseline: the initialised model, validated and saved like a trained one
        progress = _end_epoch(s, progress, EpochOutcome(math.nan, 0, 0.0, False), 0)
    return TrainResult(s.run_dir, progress.epoch, progress.step, steps, progress.last_loss, s.metric, progress.best,
                       progress.last_val, progress.best_epoch, status)


def train(config: TrainConfig) -> TrainResult:
    """Train (or, with `config.resume`, continue) a run; returns when `config.epochs` epochs are done, when
    `config.max_minutes` have passed (status `stopped`), or at once for a resumed run that is already finished.

    Under `torchrun`, call it in every process: the process group is taken from the environment. Rank 0 prints
    the run's lines (progress, validation, one closing line) and writes its files.
    """
    started = time.monotonic()
    ctx = init_distributed(config.device)
    stop_with_launcher()
    console = Console(ctx.is_main, config.progress)
    try:
        with ExitStack() as stack:
            s, progress = _setup(config, ctx, stack, console)
            if _finished(config, progress):
                result = TrainResult(s.run_dir, progress.epoch, progress.step, s.stream.steps, progress.last_loss,
                                     s.metric, progress.best, progress.last_val, progress.best_epoch, "finished")
            else:
                result = _run_epochs(s, progress, started)
            console.line(_closing_line(s, result))
            return result
    finally:
        shutdown()
