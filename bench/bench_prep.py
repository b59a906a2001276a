"""Benchmark of `ifcn-prep sample` (issue 2): objects per second with 1 and 2 workers, and shard bytes vs source bytes.

    python bench/bench_prep.py                  # the whole synthetic VOC-train stand-in (1464 images, long side 500)
    python bench/bench_prep.py --images 200     # a quick subset
    python bench/bench_prep.py --images 64 --profile   # where the time of one shard goes (in-process, cProfile)

The synthetic dataset is built once and cached under bench/out/ (git-ignored). Every timed run writes to a fresh
folder and starts its own local Dask cluster: the wall time counts its start-up and shutdown; "work" is the time from
the cluster being ready to the last shard.
Targets (issue 2): whole split < 60 s on 2 cores; 2 workers ≥ 1.7× faster than 1; shards ≤ 1.15× source bytes.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import pstats
import shutil
import time
from pathlib import Path

from ifcn.pipeline import synth
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, SampleResult, run_sample
from ifcn.pipeline.prep_resume import fingerprint
from ifcn.pipeline.shard import ShardTask, build_shard
from ifcn.pipeline.shard_plan import plan_shards
from ifcn.pipeline.sources import ImageRef
from ifcn.pipeline.sources.voc import image_paths, read_split

BENCH_OUT = Path(__file__).resolve().parent / "out"


def dataset(images: int, long_side: int, seed: int) -> Path:
    """The cached synthetic VOC2012 root with `images` train images (built on first use, again when the generator's
    source changes)."""
    code = hashlib.sha256(Path(synth.__file__).read_bytes()).hexdigest()[:8]
    folder = BENCH_OUT / f"synth-{images}-{long_side}-{seed}-{code}"
    root = folder / "VOCdevkit" / "VOC2012"
    if not root.is_dir():
        start = time.perf_counter()
        config = synth.SynthConfig(train_images=images, val_images=0, seed=seed, long_side=long_side)
        synth.make_synth_dataset(folder, config)
        print(f"built {root} in {time.perf_counter() - start:.1f} s")
    return root


def source_bytes(root: Path, ids: list[str]) -> int:
    return sum(p.stat().st_size for key in ids for p in image_paths(root, key))


def timed_run(root: Path, out: Path, workers: int, config: ClickConfig, fmt: str) -> SampleResult:
    shutil.rmtree(out, ignore_errors=True)
    job = SampleJob(voc_root=root, split="train", out=out, clicks=config, format=fmt, workers=workers,
                    progress=False)
    return run_sample(job, log=lambda message: None)


def profile_one_shard(root: Path, config: ClickConfig, fmt: str, images: int) -> None:
    """cProfile of one shard task run in this process (no Dask), sorted by cumulative time."""
    ids = read_split(root, "train")[:images]
    out = BENCH_OUT / "profile"
    shutil.rmtree(out, ignore_errors=True)
    (out / ".ifcn-sidecars").mkdir(parents=True)
    spec = plan_shards(ids, len(ids), 0)[0]
    refs = tuple(ImageRef(key) for key in spec.ids)
    task = ShardTask(spec, refs, "voc", root, out, "train", config, fmt, "fail", fingerprint({"profile": True}))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(build_shard, task)
    print(f"one shard of {len(ids)} images in-process: {time.perf_counter() - start:.2f} s")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(25)
    print(stream.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1464, help="train images (VOC train: 1464)")
    parser.add_argument("--long-side", type=int, default=500)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--format", default="webdataset")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="profile one shard in-process instead of timing")
    args = parser.parse_args()

    root = dataset(args.images, args.long_side, args.seed)
    config = ClickConfig(pairs=args.pairs)
    if args.profile:
        profile_one_shard(root, config, args.format, min(args.images, 64))
        return
    ids = read_split(root, "train")
    src = source_bytes(root, ids)
    print(f"dataset: {root} ({len(ids)} images, source JPEG+PNG {src / 1e6:.1f} MB); pairs={args.pairs}, "
          f"format={args.format}")
    print(f"{'workers':>7} {'images':>7} {'objects':>8} {'wall s':>8} {'start s':>8} {'work s':>8} {'obj/s':>8} "
          f"{'obj/s (work)':>13} {'shards MB':>10} {'shards/src':>10}")
    walls: dict[int, tuple[float, float]] = {}
    for workers in (int(w) for w in args.workers.split(",")):
        result = timed_run(root, BENCH_OUT / f"run-w{workers}", workers, config, args.format)
        t = result.manifest.totals
        shard_bytes = sum(s.bytes for s in result.manifest.shards)
        walls[workers] = (result.seconds, result.work_seconds)
        work = result.work_seconds
        print(f"{workers:>7} {t.images:>7} {t.objects:>8} {result.seconds:>8.1f} {result.startup_seconds:>8.1f} "
              f"{work:>8.1f} {t.objects / result.seconds:>8.1f} {t.objects / work:>13.1f} "
              f"{shard_bytes / 1e6:>10.1f} {shard_bytes / src:>10.3f}")
    if 1 in walls and 2 in walls:
        print(f"speed-up 2 vs 1 workers: {walls[1][0] / walls[2][0]:.2f}× wall, "
              f"{walls[1][1] / walls[2][1]:.2f}× on a running cluster (no start-up or shutdown)")


if __name__ == "__main__":
    main()
