"""Objects per second of `ifcn-prep sample` for every source on its synthetic layout (issue 8), 2 workers.

    python bench/bench_sources.py                       # 300 images per layout, long side 500, 15 pairs
    python bench/bench_sources.py --images 40 --long-side 160 --pairs 3   # a quick check that it runs

Each layout is written once by `ifcn-prep synth --layout` logic and cached under bench/out/ (git-ignored). One run per
source, each into a fresh folder on its own local Dask cluster of `--workers` processes. "objects/s" counts the kept
objects over the wall time (cluster start-up and shutdown included); "work" is from the cluster being ready to the
last shard. What differs between sources is reading: VOC palette PNGs, SBD's two MATLAB files per image
(`scipy.io.loadmat`), GrabCut's BMP images (converted to PNG) and masks, COCO's polygon and RLE decoding
(`pycocotools`); click sampling dominates where images hold several objects (VOC, SBD, COCO), one object per image
(GrabCut, Berkeley, DAVIS) makes the per-image cost weigh more.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path

from ifcn.pipeline import synth
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.sources import SourceSpec, make_synth_layouts, synth_layout_specs

BENCH_OUT = Path(__file__).resolve().parent / "out"


def layouts(images: int, long_side: int) -> dict[str, SourceSpec]:
    """Every layout with `images` images in its train (or only) split, cached; returns where each train split is."""
    sources = Path(synth.__file__).parent / "sources"
    code = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(sources.glob("*.py")))).hexdigest()[:8]
    folder = BENCH_OUT / f"layouts-{images}-{long_side}-{code}"
    if not folder.is_dir():
        start = time.perf_counter()
        config = synth.SynthConfig(train_images=images, val_images=0, seed=0, long_side=long_side)
        make_synth_layouts(folder.with_name(folder.name + ".tmp"), config)
        folder.with_name(folder.name + ".tmp").rename(folder)
        print(f"built {folder} in {time.perf_counter() - start:.1f} s")
    return synth_layout_specs(folder, "train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--long-side", type=int, default=500)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    specs = layouts(args.images, args.long_side)
    print(f"{args.images} images per layout, long side {args.long_side}, {args.pairs} pairs, {args.workers} workers")
    print("| source | images | kept objects | wall s | objects/s | objects/s (work) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, spec in specs.items():
        out = BENCH_OUT / f"sources-{name}"
        shutil.rmtree(out, ignore_errors=True)
        job = SampleJob(source=name, root=spec.root, split=spec.split, coco_json=spec.coco_json, out=out,
                        clicks=ClickConfig(pairs=args.pairs), workers=args.workers, progress=False)
        result = run_sample(job, log=lambda message: None)
        t = result.manifest.totals
        print(f"| {name} | {t.images} | {t.objects} | {result.seconds:.1f} | {t.objects / result.seconds:.1f} | "
              f"{t.objects / max(result.work_seconds, 1e-9):.1f} |", flush=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
