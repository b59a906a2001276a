"""The training loop proper: one optimisation step, and one epoch over a DataLoader-like iterable of batches.

Explicit arguments in the style of torchvision's reference `train_one_epoch(model, criterion, optimizer, data_loader,
...)`: the loop knows nothing of run folders, checkpoints or validation, so any iterable of collated batches can feed
it. With `--iterative`, `training_step` first runs the batch's extra no-grad click rounds (`iterative.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

import torch

from ifcn.trainer.core.clickmaps import DEFAULT_SPEC
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.core.inputs import batch_input
from ifcn.trainer.core.precision import autocast
from ifcn.trainer.iterative import IterativeSettings, click_rounds
from ifcn.trainer.losses import loss_function


@dataclass(frozen=True)
class StepSettings:
    """How each step runs: the task's loss, where, in which precision and memory format, with what gradient clip;
    the model's input contract (`InputSpec`: click encoding, previous-mask channel), and the extra click rounds
    (`--iterative`), if any."""

    task: str
    device: torch.device
    loss: str = "bce"
    precision: str = "fp32"
    channels_last: bool = False
    clip_grad: float | None = None
    spec: InputSpec = DEFAULT_SPEC
    iterative: IterativeSettings | None = None


def training_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  batch: dict[str, torch.Tensor], *, task: str, device: torch.device, loss: str = "bce",
                  precision: str = "fp32",
                  channels_last: bool = False, clip_grad: float | None = None,
                  spec: InputSpec = DEFAULT_SPEC,
                  extra_rounds: int = 0, bare_net: torch.nn.Module | None = None) -> torch.Tensor:
    """One optimisation step on a collated batch (also what `bench/bench_train.py` times): move the uint8 crops and
    click coordinates to the device, build the network input there, forward under autocast, loss, backward, step.
    Returns the loss as a device tensor (no host sync).

    `extra_rounds` > 0 first adds that many clicks on the model's own errors, without gradients (`click_rounds`),
    run by `bare_net`: `net` without its DDP or torch.compile wrapper (default: `net` itself)."""
    if extra_rounds:
        batch = click_rounds(net if bare_net is None else bare_net, batch, extra_rounds, device=device,
                             precision=precision, channels_last=channels_last, spec=spec)
    x = batch_input(batch, device, spec, channels_last)
    with autocast(device, precision):
        logits = net(x)
    value = loss_function(task, loss)(logits, batch["target"].to(device, non_blocking=True))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(value).backward()
    if clip_grad:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip_grad)
    scaler.step(optimizer)
    scaler.update()
    return value.detach()


class EpochObserver(Protocol):
    """Receives the loop's progress: `advance()` after every step, `log(record)` every `log_every` steps."""

    def advance(self) -> None: ...

    def log(self, record: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class EpochOutcome:
    """This rank's epoch: summed loss and steps (a resumed epoch's earlier part included), seconds of this call, and
    whether `should_stop` ended it (possibly on its last step)."""

    loss_sum: float
    steps: int
    seconds: float
    stopped: bool


def train_one_epoch(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                    data_loader: Iterable[dict[str, torch.Tensor]], settings: StepSettings, *, epoch: int,
                    first_step: int, steps: int, samples_per_step: int, log_every: int, observer: EpochObserver,
                    done: int = 0, loss_sum: float = 0.0, should_stop: Callable[[], bool] = lambda: False,
                    bare_net: torch.nn.Module | None = None) -> EpochOutcome:
    """Train epoch `epoch` (1-based) for `steps` steps, the first `done` of which were done before (a resumed
    epoch: their batches are drawn and skipped, so the rest is what an uninterrupted run sees, and their loss is
    `loss_sum`). `first_step` is the run's step count before this call; `samples_per_step` = batch × ranks (for the
    rate). `should_stop` is asked after every step (it must give the same answer on every rank). `bare_net` is `net`
    without its DDP or torch.compile wrapper, for the extra click rounds of `settings.iterative`."""
    net.train()
    total = torch.tensor(loss_sum, device=settings.device, dtype=torch.float64)
    window_loss, window_steps, skipped, stopped = float(total), done, done, False
    start = tick = time.perf_counter()
    batches = iter(data_loader)
    try:
        for batch in islice(batches, done, None):
            extra = settings.iterative.rounds(epoch, done) if settings.iterative else 0
            total += training_step(net, optimizer, scaler, batch, task=settings.task, device=settings.device,
                                   loss=settings.loss,
                                   precision=settings.precision, channels_last=settings.channels_last,
                                   clip_grad=settings.clip_grad, spec=settings.spec, extra_rounds=extra,
                                   bare_net=bare_net)
            scheduler.step()
            done += 1
            observer.advance()
            stopped = should_stop()
            if done % log_every == 0 or done == steps or stopped:
                now_loss, now = float(total), time.perf_counter()  # one host sync per log interval, not per step
                observer.log({"kind": "step", "epoch": epoch, "step": first_step + done - skipped,
                              "loss": (now_loss - window_loss) / (done - window_steps),
                              "lr": optimizer.param_groups[0]["lr"],
                              "samples_per_s": (done - window_steps) * samples_per_step / max(now - tick, 1e-9)})
                window_loss, window_steps, tick = now_loss, done, now
            if stopped:
                break
    finally:
        del batches  # shuts the loader's workers down now, also when the epoch ends early
    if done != steps and not stopped:
        raise RuntimeError(f"got {done} batches in epoch {epoch}, expected {steps}: have the shards changed since "
                           "their manifest was written?")
    return EpochOutcome(float(total), done, time.perf_counter() - start, stopped)
