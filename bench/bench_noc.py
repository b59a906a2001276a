"""NoC evaluation speed: objects per second for a full click run, batched against one object at a time.

Run: `python bench/bench_noc.py [--images 12] [--long-side 320] [--max-clicks 20] [--batch-size 16]`.
Makes a synthetic VOC-style val split (`ifcn-prep`'s synthesiser and sampler), reads its objects once (decoding is
not timed), then times `evaluate_objects` with an untrained resnet18-8s (weights none, the speed is the same as
a trained one) on the CPU and, when one is visible, on the GPU. Also reported: the engine's own cost per
object-click (clicker, thresholding, IoU: a predictor that returns zeros), which bounds the batched speed-up on a GPU,
and whether batched and one-at-a-time logs agree (with the default kernels they may differ in rare pixels).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.synth import SynthConfig, make_synth_dataset
from ifcn.shards.manifest import resolve_shards
from ifcn.trainer.core.clicks import Click
from ifcn.trainer.evaluation.noc import NocSettings, ObjectLog, evaluate_objects, use_device_clicker
from ifcn.trainer.evaluation.objects import EvalObject, iter_objects
from ifcn.trainer.inference import Predictor
from ifcn.trainer.models import ModelConfig, build_model


class ZeroPredictor:
    """Predicts nothing, instantly: what is left of the run time is the engine's own (clicker, IoU)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        return torch.zeros(images.shape[0], *images.shape[2:], device=self.device)


def val_objects(workdir: Path, images: int, long_side: int, scheduler: str | None = None) -> list[EvalObject]:
    """Objects of a synthetic val split sampled into shards by the real pipeline (on `scheduler` when given)."""
    root = make_synth_dataset(workdir / "synth", SynthConfig(train_images=0, val_images=images, long_side=long_side))
    run_sample(SampleJob(voc_root=root, split="val", out=workdir / "val", clicks=ClickConfig(pairs=1),
                         workers=None if scheduler else 1, scheduler=scheduler, progress=False), log=lambda _: None)
    return list(iter_objects(resolve_shards(workdir / "val")))


def timed(objects: list[EvalObject], predictor: object, settings: NocSettings, batch_size: int,
          workers: int = 1, device_clicker: bool | None = None) -> tuple[float, list[ObjectLog]]:
    if getattr(predictor, "device", torch.device("cpu")).type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    logs = sorted(evaluate_objects(objects, predictor, settings, batch_size, workers, device_clicker),
                  key=lambda g: g.index)
    return time.perf_counter() - start, logs


@dataclass(frozen=True)
class NocSpeed:
    """One device's figures: objects/s one at a time and batched, the engine's own ms per object-click, and how
    many objects' logs differ between the two runs."""

    device: str
    objects: int
    one_at_a_time: float
    batched: float
    engine_ms_per_click: float
    logs_differ: int
    batched_cpu_clicker: float | None = None  # off the CPU: batched with the per-object CPU clicker instead

    @property
    def speedup(self) -> float:
        return self.batched / self.one_at_a_time


def compare(objects: list[EvalObject], model: torch.nn.Module, device: torch.device, settings: NocSettings,
            batch_size: int, workers: int = 1) -> NocSpeed:
    """Time a full NoC run batched and one object at a time on `device`, and the engine alone."""
    predictor = Predictor(model, "interactive", device)
    timed(objects[:1], predictor, NocSettings(max_clicks=2), 1)  # warm-up: kernels, allocator
    engine, _ = timed(objects, ZeroPredictor(device), settings, batch_size, workers)
    single, single_logs = timed(objects, predictor, settings, 1)
    batched, batched_logs = timed(objects, predictor, settings, batch_size, workers)
    differing = sum(a != b for a, b in zip(single_logs, batched_logs, strict=True))
    cpu_clicker = None
    if use_device_clicker(settings, device):
        seconds, _ = timed(objects, predictor, settings, batch_size, workers, device_clicker=False)
        cpu_clicker = len(objects) / seconds
    return NocSpeed(device.type, len(objects), len(objects) / single, len(objects) / batched,
                    1000 * engine / (len(objects) * settings.max_clicks), differing, cpu_clicker)


def untrained_model() -> torch.nn.Module:
    """The model timed: an untrained resnet18-8s (weights none; a trained one costs the same)."""
    return build_model(ModelConfig(backbone="resnet18", stride=8, in_channels=5, num_classes=1, weights="none"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=12, help="synthetic val images")
    parser.add_argument("--long-side", type=int, default=320, help="long image side (VOC: 500)")
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="objects per forward in the batched run")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--workers", type=int, default=1, help="clicker threads of the batched run (ifcn-eval noc "
                        "--threads); the one-at-a-time run uses 1")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = NocSettings(max_clicks=args.max_clicks)
    with tempfile.TemporaryDirectory() as tmp:
        objects = val_objects(Path(tmp), args.images, args.long_side)
    sizes = sorted({o.shape for o in objects})
    print(f"{len(objects)} objects in {args.images} images of {len(sizes)} sizes (long side {args.long_side}), "
          f"{args.max_clicks} clicks each, batch size {args.batch_size}, torch threads {torch.get_num_threads()}, "
          f"clicker threads {args.workers}")
    model = untrained_model()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    else:
        print("no CUDA device visible: GPU figures not measured (run this script on a GPU machine for them)")
    rows = [compare(objects, model, device, settings, args.batch_size, args.workers) for device in devices]
    print(f"{'device':<8}{'one at a time':>16}{'batched':>12}{'speed-up':>10}{'engine ms/click':>17}"
          f"{'logs differ':>13}{'batched, CPU clicker':>22}")
    for r in rows:
        cpu_clicker = "" if r.batched_cpu_clicker is None else f"{r.batched_cpu_clicker:.2f} o/s"
        print(f"{r.device:<8}{r.one_at_a_time:>12.2f} o/s{r.batched:>8.2f} o/s{r.speedup:>9.2f}x"
              f"{r.engine_ms_per_click:>17.3f}{r.logs_differ:>8d}/{r.objects}{cpu_clicker:>22}")


if __name__ == "__main__":
    main()
