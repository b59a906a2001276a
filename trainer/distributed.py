"""Process-group setup under `torchrun` and the few collectives the trainer needs.

Every helper is a no-op in a single process, so the same training and validation code runs with or without DDP.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ifcn.trainer.core.device import is_distributed, resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: global rank, world size and its device (on CUDA, the GPU of its rank on the node)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_choice: str) -> DistContext:
    """Join the process group `torchrun` describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_*).

    Backend: NCCL on CUDA, gloo on CPU. Without those variables this is a single process and nothing is initialised.
    """
    device = resolve_device(device_choice)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                **({"device_id": device} if device.type == "cuda" else {}))
    return DistContext(rank, world, device)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_ints(value: int, device: torch.device) -> list[int]:
    """Every rank's `value`, in rank order (a one-element list in a single process)."""
    if not is_distributed():
        return [int(value)]
    mine = torch.tensor([int(value)], dtype=torch.int64, device=device)
    out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return [int(t.item()) for t in out]


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so that validation on each rank's share
    and the checkpoint written by rank 0 describe the same model."""
    if is_distributed():
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is True on at least one (a decision all ranks must take together)."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


#: Seconds between two checks that the launcher is still alive.
LAUNCHER_POLL_S = 1.0
#: Exit status of a rank that stopped because its launcher died (128 + SIGHUP, as a lost terminal would give).
LAUNCHER_GONE_EXIT = 129


def stop_with_launcher(poll_s: float = LAUNCHER_POLL_S) -> None:
    """Under `torchrun`: end this process when the launcher that started it dies, even by `kill -9`.

    A launcher forwards SIGTERM/SIGINT to its ranks, but a killed one forwards nothing and the ranks would train on
    unsupervised (or wait forever in a collective). A daemon thread notices that the parent process changed (the
    orphan was re-parented) and exits at once: checkpoints are written atomically, so nothing written is lost, and
    the folder lock is released by the OS. No-op outside torchrun.
    """
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        sys.stderr.write(f"rank {os.environ.get('RANK', '?')}: the launcher (pid {parent}) is gone; stopping\n")
        sys.stderr.flush()
        os._exit(LAUNCHER_GONE_EXIT)

    threading.Thread(target=watch, name="ifcn-launcher-watch", daemon=True).start()
