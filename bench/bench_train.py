"""Training throughput on a GPU: images/s, peak memory and the fraction of time the GPU is busy, per model and mode.

Run: `python bench/bench_train.py [--archs resnet50,vgg16] [--crop 384] [--batch-size 32] [--steps 30]
[--modes fp32,bf16-cl,bf16-cl-compile] [--rounds 0,3] [--cpu]`.

Each measurement runs `ifcn.trainer.loop.training_step` (the trainer's own step: uint8 crops and click coordinates
copied from pinned host memory, network input built on the device, forward, loss, backward, Adam) on an interactive
FCN-8s (5 input channels, `--weights none`). Batches are pre-collated on the host, so the figures are those of the
device side; `ifcn-train` keeps the device fed when its loader delivers at least this rate (see bench_loader.py).
GPU busy = union of the CUDA kernel intervals recorded by torch.profiler over the timed steps, divided by their wall
time. Without a CUDA device it says so and runs a tiny CPU smoke test of the same code path (not a performance
figure), unless `--cpu` asks for the given sizes on the CPU.

`--rounds` times steps with that many extra click rounds each (`ifcn-train --iterative`: a no-grad forward, the
batched standard clicker and one more click per sample per round, before the trained step); a run with
`--iterative N` and the default `--iterative-prob` averages N/2 rounds per step.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch

from ifcn.trainer.loop import training_step
from ifcn.trainer.models import ModelConfig, build_model

MODES = {"fp32": ("fp32", False, False), "bf16-cl": ("bf16", True, False), "bf16-cl-compile": ("bf16", True, True)}


@dataclass(frozen=True)
class Result:
    arch: str
    mode: str
    images_per_s: float
    peak_gib: float
    busy: float | None


def synthetic_batch(batch: int, crop: int, clicks: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """A collated batch as the loader delivers it (uint8 crops, uint8 targets, padded click coordinates). Each target
    is a disc (a third to a half of the crop across): the error regions of the extra click rounds are then as deep
    as a real object's, which sets the clicker's cost."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.randint(crop // 4, 3 * crop // 4, (batch, 2, 1, 1), generator=g)
    radius = torch.randint(crop // 6, crop // 4 + 1, (batch, 1, 1), generator=g)
    yy, xx = torch.meshgrid(torch.arange(crop), torch.arange(crop), indexing="ij")
    discs = (yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2 <= radius**2
    return {"image": torch.randint(0, 256, (batch, crop, crop, 3), dtype=torch.uint8, generator=g),
            "target": discs.to(torch.uint8),
            "pos": torch.randint(0, crop, (batch, clicks, 2), dtype=torch.int32, generator=g),
            "pos_valid": torch.ones(batch, clicks, dtype=torch.bool),
            "neg": torch.randint(0, crop, (batch, clicks, 2), dtype=torch.int32, generator=g),
            "neg_valid": torch.ones(batch, clicks, dtype=torch.bool)}


def busy_fraction(intervals: list[tuple[float, float]], wall: float) -> float:
    """Length of the union of [start, end) intervals over `wall` (same unit): overlapping kernels count once."""
    covered, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e <= end:
            continue
        covered += e - max(s, end)
        end = e
    return covered / wall if wall > 0 else 0.0


def _kernel_intervals(prof: torch.profiler.profile) -> list[tuple[float, float]]:
    return [(e.time_range.start, e.time_range.end) for e in prof.events()
            if e.device_type == torch.autograd.DeviceType.CUDA]


def measure(arch: str, mode: str, device: torch.device, batch: int, crop: int, steps: int, warmup: int,
            compile_backend: str = "inductor", extra_rounds: int = 0) -> Result:
    """One model and mode; `compile_backend` is torch.compile's (a CPU check of the code path uses "eager");
    `extra_rounds` click rounds before every step (`--iterative`)."""
    precision, channels_last, compile_ = MODES[mode]
    model = build_model(ModelConfig(arch, 8, "deconv", in_channels=5, num_classes=1, weights="none")).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model, backend=compile_backend) if compile_ else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    host = synthetic_batch(batch, crop)
    if device.type == "cuda":
        host = {k: v.pin_memory() for k, v in host.items()}

    def step() -> torch.Tensor:
        return training_step(net, optimizer, scaler, host, task="interactive", device=device, precision=precision,
                             channels_last=channels_last, extra_rounds=extra_rounds, bare_net=model)

    for _ in range(warmup):
        step()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)  # waits for the device
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    busy = None
    if cuda:  # a separate, shorter profiled run: the profiler's own overhead must not lower the throughput figure
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            for _ in range(min(steps, 10)):
                loss = step()
            float(loss)
            profiled = time.perf_counter() - t0
        busy = busy_fraction(_kernel_intervals(prof), profiled * 1e6)
    return Result(arch, mode, steps * batch / wall, peak, busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="resnet50,vgg16")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--rounds", default="0", help="extra click rounds per step, comma-separated (--iterative)")
    parser.add_argument("--cpu", action="store_true", help="measure on the CPU at the given sizes")
    args = parser.parse_args()
    archs, modes, rounds = args.archs.split(","), args.modes.split(","), [int(r) for r in args.rounds.split(",")]
    if torch.cuda.is_available() and not args.cpu:
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name()}, crop {args.crop}, batch {args.batch_size}, {args.steps} steps")
        runs = [(a, m, args.batch_size, args.crop, args.steps, args.warmup) for a in archs for m in modes]
    elif args.cpu:
        device = torch.device("cpu")
        print(f"device: CPU ({torch.get_num_threads()} threads), crop {args.crop}, batch {args.batch_size}, "
              f"{args.steps} steps")
        runs = [(a, m, args.batch_size, args.crop, args.steps, args.warmup) for a in archs for m in modes]
    else:
        device = torch.device("cpu")
        print("no CUDA device: GPU figures skipped. CPU smoke run of the same code path (tiny; not a performance "
              "figure):")
        runs = [(a, m, 2, 64, 2, 1) for a in ("resnet18",) for m in ("fp32", "bf16-cl")]
    for arch, mode, batch, crop, steps, warmup in runs:
        for extra in rounds:
            r = measure(arch, mode, device, batch, crop, steps, warmup, extra_rounds=extra)
            busy = f"{100 * r.busy:5.1f} %" if r.busy is not None else "  n/a"
            print(f"{r.arch:>10}-8s {r.mode:>16} {extra} extra rounds: {1000 * batch / r.images_per_s:8.1f} ms/step, "
                  f"{r.images_per_s:8.1f} images/s, peak {r.peak_gib:6.2f} GiB, GPU busy {busy}")


if __name__ == "__main__":
    main()
