"""`ifcn-prep sample` on real photos (issue 19, item 2): images/s and objects/s on a DAVIS-layout folder of real
photos (COCO_MVal: 800 COCO photos, one object each) beside the synthetic VOC-layout figure of the same image count.

    python -m bench.bench_real_prep --root /work/data/datasets/COCO_MVal --images 100            # CPU; 1, 2 workers
    python -m bench.bench_real_prep --root /work/data/datasets/COCO_MVal --images 64 --profile   # cProfile, 1 shard
    python -m bench.bench_real_prep --root /work/data/datasets/COCO_MVal --images 800 --digest   # clicks digest only

The first `--images` photos (by file name) are hard-linked into bench/out/real-N/ (the dataset itself is only read).
The first table is the CPU time of one shard of all of them built in this process (robust on a shared machine); then
each timed run writes a fresh folder with its own local Dask cluster; "work" is the time from the cluster being ready
to the last shard (as in bench/bench_prep.py). `--digest` samples once (2 workers) and prints the sha256 of every
sample's clicks JSON in key order: equal before and after a speed-up means the same clicks for the seed.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import shutil
import time
from pathlib import Path

from bench.bench_prep import BENCH_OUT, dataset
from bench.bench_prep import timed_run as synthetic_run
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, SampleResult, run_sample
from ifcn.pipeline.prep_resume import fingerprint
from ifcn.pipeline.shard import ShardTask, build_shard
from ifcn.pipeline.shard_plan import plan_shards
from ifcn.pipeline.sources import SourceSpec, get_source
from ifcn.shards.manifest import resolve_shards
from ifcn.shards.reader import read_shard
from ifcn.shards.records import FIELD_CLICKS


def subset(root: Path, images: int) -> Path:
    """A DAVIS-layout folder of the first `images` photos of `root` (by name) and their masks, hard-linked."""
    folder = BENCH_OUT / f"real-{images}"
    names = sorted(os.listdir(root / "img"))[:images]
    if not folder.is_dir():
        for sub in ("img", "gt"):
            (folder / sub).mkdir(parents=True)
        for name in names:
            stem = Path(name).stem
            os.link(root / "img" / name, folder / "img" / name)
            os.link(root / "gt" / f"{stem}.png", folder / "gt" / f"{stem}.png")
    return folder


def real_run(root: Path, out: Path, workers: int, config: ClickConfig) -> SampleResult:
    shutil.rmtree(out, ignore_errors=True)
    job = SampleJob(source="davis", root=root, out=out, clicks=config, workers=workers, progress=False)
    return run_sample(job, log=lambda message: None)


def clicks_digest(out: Path) -> str:
    """sha256 over every sample's key and clicks JSON, in key order."""
    digest = hashlib.sha256()
    samples = sorted((s.key, s.to_fields()[FIELD_CLICKS]) for loc in resolve_shards(str(out)).locations
                     for s in read_shard(loc))
    for key, clicks in samples:
        digest.update(f"{key}:{len(clicks)}:".encode() + clicks)
    return digest.hexdigest()


def one_shard_task(root: Path, source: str, split: str, config: ClickConfig) -> ShardTask:
    """The task of one shard holding every image of the split, writing into a fresh folder under bench/out."""
    listing = get_source(source).list_split(SourceSpec(source, root), split)
    out = BENCH_OUT / f"one-shard-{source}"
    shutil.rmtree(out, ignore_errors=True)
    (out / ".ifcn-sidecars").mkdir(parents=True)
    spec = plan_shards(listing.keys, len(listing.keys), 0)[0]
    return ShardTask(spec, listing.refs, source, listing.root, out, split, config, "webdataset", "fail",
                     fingerprint({"bench": True}))


def cpu_row(label: str, task: ShardTask, repeats: int = 3) -> str:
    """Images/s and objects/s per core from the CPU time (best of `repeats`) of building the shard in this process:
    on a shared machine the wall time measures the other processes too."""
    best, record = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        record = build_shard(task).record
        best = min(best, time.process_time() - start)
        (task.out / task.name).unlink()
    assert record is not None
    images, objects = record.entry.samples, record.entry.objects
    return f"| {label} | {images} | {objects} | {best:.2f} | {images / best:.1f} | {objects / best:.1f} |"


def profile_one_shard(task: ShardTask) -> None:
    """cProfile (CPU time) of one shard task in this process (no Dask), by internal time."""
    profiler = cProfile.Profile(time.process_time)  # CPU time: the machine is shared, wall time is not ours
    start = time.process_time()
    profiler.runcall(build_shard, task)
    print(f"one shard of {len(task.refs)} photos in-process: {time.process_time() - start:.2f} s of CPU")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(20)
    print(stream.getvalue())


def row(label: str, workers: int, result: SampleResult) -> str:
    t = result.manifest.totals
    return (f"| {label} | {workers} | {t.images} | {t.objects} | {result.seconds:.1f} | {result.work_seconds:.1f} | "
            f"{t.images / result.seconds:.1f} ({t.images / result.work_seconds:.1f}) | "
            f"{t.objects / result.seconds:.1f} ({t.objects / result.work_seconds:.1f}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="a DAVIS-layout folder of real photos (img/, gt/)")
    parser.add_argument("--images", type=int, default=100, help="the first N photos (and N synthetic images)")
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--workers", default="1,2", help="worker counts to time, comma-separated (0: CPU rows only)")
    parser.add_argument("--profile", action="store_true", help="profile one shard in-process instead of timing")
    parser.add_argument("--digest", action="store_true", help="print the clicks digest instead of timing")
    args = parser.parse_args()

    real = subset(args.root, args.images)
    config = ClickConfig(pairs=args.pairs)
    if args.profile:
        profile_one_shard(one_shard_task(real, "davis", "all", config))
        return
    if args.digest:
        out = BENCH_OUT / "digest-real"
        result = real_run(real, out, 2, config)
        print(f"{result.manifest.totals.images} photos, {result.manifest.totals.objects} objects: clicks sha256 "
              f"{clicks_digest(out)}")
        return
    synthetic = dataset(args.images, 500, 0)
    print(f"pairs={args.pairs}; one shard in this process, CPU time (best of 3)")
    print("| data | images | objects | CPU s | images/s per core | objects/s per core |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(cpu_row(f"real photos ({args.root.name})", one_shard_task(real, "davis", "all", config)))
    print(cpu_row("synthetic VOC layout, 500 px", one_shard_task(synthetic, "voc", "train", config)), flush=True)
    if args.workers == "0":
        return
    print(f"\npairs={args.pairs}; `ifcn-prep sample`, wall (work: on a running cluster)")
    print("| data | workers | images | objects | wall s | work s | images/s | objects/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for workers in (int(w) for w in args.workers.split(",")):
        print(row(f"real photos ({args.root.name})", workers, real_run(real, BENCH_OUT / "run-real", workers, config)))
        print(row("synthetic VOC layout, 500 px", workers,
                  synthetic_run(synthetic, BENCH_OUT / "run-synth", workers, config, "webdataset")), flush=True)


if __name__ == "__main__":
    main()
