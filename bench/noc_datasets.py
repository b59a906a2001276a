"""The field's NoC table over all six dataset layouts in one `ifcn-eval noc` call, for the model `scripts/demo.sh`
trained (run that first).

Each layout gets unseen synthetic images (seed 1; the demo trained on seed 0), sampled with `ifcn-prep sample` and
checked with `ifcn-prep verify` like real data; the commands are printed as they run.

Run: `python -m bench.noc_datasets [--checkpoint demo/run/best.pt] [--images 20] [--out demo/datasets]` from the
repository root, in the project's environment (`source .venv/bin/activate`).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
from pathlib import Path

from ifcn.pipeline.sources import make_synth_layouts
from ifcn.pipeline.synth import SynthConfig


def run(*args: object) -> None:
    """Run one of the project's commands as a user types it, echoed first; stop on failure."""
    command = [str(a) for a in args]
    print("+", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("demo/run/best.pt"))
    parser.add_argument("--images", type=int, default=20, help="val images per layout")
    parser.add_argument("--out", type=Path, default=Path("demo/datasets"))
    args = parser.parse_args()
    config = SynthConfig(train_images=0, val_images=args.images, seed=1, long_side=160)
    specs = make_synth_layouts(args.out / "data", config, overwrite=True)
    datasets = []
    for name, spec in specs.items():
        shards = args.out / "shards" / name
        run("ifcn-prep", "sample", *spec.cli_args(), "--pairs", 1, "--out", shards, "--overwrite", "--no-progress")
        run("ifcn-prep", "verify", shards)
        datasets += ["--shards", shards]
    run("ifcn-eval", "noc", "--checkpoint", args.checkpoint, *datasets, "--max-clicks", 20, "--no-progress",
        "--out", args.out / "noc")


if __name__ == "__main__":
    main()
