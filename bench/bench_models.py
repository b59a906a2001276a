"""FCN model family: parameter counts, and forward+backward time and peak memory per backbone.

Run: `python bench/bench_models.py [--backbones vgg16,resnet50] [--device cpu|cuda|auto] [--iters 3] [--warmup 1]`
(`--params-only` prints just the parameter table, which takes seconds). Defaults: every seed backbone, FCN-8s with
`deconv` upsampling, the interactive input (5 channels, 1 class, BCE loss), 384×384, batch 8, weights `none`.

What is measured:
- time: wall-clock milliseconds of one training step without the optimizer (forward, loss, backward, grads zeroed),
  median over `--iters` after `--warmup` steps;
- CPU peak memory: the process's resident set size, sampled every 2 ms by a thread, at its highest during the warm-up
  and timed steps, minus the RSS just before them (model and input already built): activations, gradients and what
  the allocator keeps, not the weights;
- CUDA peak memory: `torch.cuda.max_memory_allocated()` over the same steps, weights and gradients included.
CUDA runs fp32, bf16 autocast with channels_last, and `torch.compile` (bf16, channels_last) for `--compile` backbones.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import psutil
import torch
import torch.nn.functional as F
from torch import nn

from ifcn.trainer.models import SEED_BACKBONES, ModelConfig, build_model
from ifcn.trainer.models.heads import FCNHead

STRIDES = (32, 16, 8)


def parameter_table(backbones: list[str], num_classes: int = 21, in_channels: int = 3) -> str:
    """Markdown table of parameter counts (millions) per backbone and head; the trunk is built once per backbone."""
    rows = ["| backbone | FCN-32s | FCN-16s | FCN-8s | FCN-8s bilinear |", "|---|---:|---:|---:|---:|"]
    for name in backbones:
        model = build_model(ModelConfig(backbone=name, stride=8, in_channels=in_channels, num_classes=num_classes))
        body = sum(p.numel() for p in (*model.backbone.parameters(), *model.fc.parameters()))
        channels = (model.head.score8.in_channels, model.head.score16.in_channels, model.head.score32.in_channels)
        counts = [body + sum(p.numel() for p in FCNHead(channels, num_classes, stride, upsample).parameters())
                  for stride, upsample in [(s, "deconv") for s in STRIDES] + [(8, "bilinear")]]
        rows.append(f"| {name} | " + " | ".join(f"{c / 1e6:.2f} M" for c in counts) + " |")
    return "\n".join(rows)


@contextmanager
def rss_peak(period_s: float = 0.002) -> Iterator[Callable[[], int]]:
    """Sample this process's RSS in a thread; yields a function giving the peak growth (bytes) seen so far."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(period_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak - base
    finally:
        done.set()
        thread.join()


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE for one logit (interactive), cross-entropy otherwise (semantic)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0].float(), target.float())
    return F.cross_entropy(logits.float(), target)


def step_times(model: nn.Module, x: torch.Tensor, target: torch.Tensor, warmup: int, iters: int,
               autocast: torch.autocast | nullcontext) -> tuple[float, list[float]]:
    """(seconds of the first step, seconds of each timed step) of forward + loss + backward."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = []
    for _ in range(warmup + iters):
        sync()
        start = time.perf_counter()
        with autocast:
            loss = loss_fn(model(x), target)
        loss.backward()
        model.zero_grad(set_to_none=False)
        sync()
        times.append(time.perf_counter() - start)
    return times[0], times[warmup:]


def bench_one(config: ModelConfig, device: torch.device, size: int, batch: int, warmup: int, iters: int,
              variant: str) -> str:
    """One markdown row: backbone, variant, ms/step, peak memory."""
    model = build_model(config).to(device).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, config.in_channels, size, size, generator=g).to(device)
    high = 2 if config.num_classes == 1 else config.num_classes
    target = torch.randint(0, high, (batch, size, size), generator=g).to(device)
    autocast: torch.autocast | nullcontext = nullcontext()
    if variant != "fp32":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    if variant == "compile":
        model = torch.compile(model)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        first, times = step_times(model, x, target, warmup, iters, autocast)
        peak = torch.cuda.max_memory_allocated()
        memory = f"{peak / 2**30:.2f} GiB allocated"
    else:
        with rss_peak() as peak_growth:
            first, times = step_times(model, x, target, warmup, iters, autocast)
            memory = f"{peak_growth() / 2**30:.2f} GiB RSS growth"
    ms = 1000 * statistics.median(times)
    return (f"| {config.backbone}-{config.stride}s | {variant} | {ms:.0f} | {batch * 1000 / ms:.1f} | "
            f"{1000 * first:.0f} | {memory} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default=",".join(SEED_BACKBONES), help="comma-separated names")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--stride", type=int, choices=STRIDES, default=8)
    parser.add_argument("--upsample", choices=("deconv", "bilinear"), default="deconv")
    parser.add_argument("--channels", type=int, choices=(3, 5), default=5)
    parser.add_argument("--classes", type=int, default=1, help="1 = interactive (BCE); 21 = VOC semantic (CE)")
    parser.add_argument("--threads", type=int, default=0, help="CPU intra-op threads (0: torch's default)")
    parser.add_argument("--compile", default="resnet50", help="comma-separated backbones also run with torch.compile "
                        "(CUDA only; empty: none)")
    parser.add_argument("--params-only", action="store_true", help="print the parameter table and stop")
    parser.add_argument("--no-params", action="store_true", help="skip the parameter table")
    args = parser.parse_args()
    backbones = [b for b in args.backbones.split(",") if b]
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.no_params:
        print("### Parameters (semantic FCN: 3 input channels, 21 classes; `deconv` unless stated; 5 channels add "
              "2·k²·C to the first convolution)\n")
        print(parameter_table(backbones), "\n", flush=True)
    if args.params_only:
        return
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"### Forward+backward, {args.size}×{args.size}, batch {args.batch}, {args.channels} channels, "
          f"{args.classes} class(es), {args.upsample}, on {name} (torch {torch.__version__})\n")
    print("| model | variant | ms/step | images/s | first step ms | peak memory |\n|---|---|---:|---:|---:|---:|")
    variants = ["fp32", "bf16-cl"] if device.type == "cuda" else ["fp32"]
    compiled = set(args.compile.split(",")) if device.type == "cuda" else set()
    for backbone in backbones:
        config = ModelConfig(backbone=backbone, stride=args.stride, upsample=args.upsample,
                             in_channels=args.channels, num_classes=args.classes)
        for variant in variants + (["compile"] if backbone in compiled else []):
            print(bench_one(config, device, args.size, args.batch, args.warmup, args.iters, variant), flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
