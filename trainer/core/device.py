"""Where tensors live: the device a tool was asked for, and the process group's rank and sums (no-ops alone)."""

from __future__ import annotations

import torch
import torch.distributed as dist


def _available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index is None or device.index < torch.cuda.device_count())
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return True


def parse_device(choice: str | torch.device) -> torch.device | None:
    """The torch device a `--device` value names (None for `auto`), without looking for it on this machine; a
    ValueError when it names none."""
    if isinstance(choice, str) and choice == "auto":
        return None
    try:
        return torch.device(choice)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {choice!r} is not a torch device ({e}); use auto, cpu, cuda, cuda:N or mps") from None


def resolve_device(choice: str | torch.device) -> torch.device:
    """`auto` -> CUDA when present, else the CPU; any other torch device string (`cpu`, `cuda:1`, `mps`) or
    `torch.device` as it is, refused with a message when this machine has no such device."""
    device = parse_device(choice)
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not _available(device):
        raise ValueError(f"device {str(device)!r}: no such device is visible on this machine; use cpu (or auto)")
    return device


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group; (0, 1) in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    return rank_and_world()[1] > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place (and return it)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
