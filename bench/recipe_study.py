"""The real-photo recipe study (issue 19): train each configuration from scratch for the same wall-clock budget, then
evaluate it on the held-out photos with the RITM protocol, and print one table row per configuration.

Data: COCO_MVal split by `bench/real_photos.py` into `train` (80 %) and `held` (20 %), sampled with
`ifcn-prep sample --source davis --pairs 15` (train) and `--pairs 1` (held). Each configuration runs alone on one
pinned core (`--core`, one torch thread, loader in the training process), so configurations get equal compute even
while the machine's other core is busy.

    python -m bench.recipe_study run default --minutes 20 -- --crop 192 --batch-size 16
    python -m bench.recipe_study run iter3 --minutes 20 -- --crop 192 --batch-size 16 --iterative 3
    python -m bench.recipe_study resume default60 --from default --minutes 40   # 20 + 40 = a 60-minute run
    python -m bench.recipe_study run default-poly --minutes 20 -- --crop 192 --batch-size 16 --schedule poly --epochs 1
    python -m bench.recipe_study table > table.md
    python -m bench.recipe_study same baseline-grabcut30     # every report again, on that report's objects only

`run` writes `STUDY/runs/NAME` (the training run), `STUDY/flags/NAME.txt` (its own flags) and
`STUDY/noc/NAME[-grabcut]` (the NoC reports); `resume` continues a copy of a finished configuration for more minutes
(`ifcn-train --resume` continues the same data order and optimizer state, so 20 + 40 minutes is one 60-minute run with
a constant learning rate); `table` reads them back, the budget being the sum of the run's `--max-minutes` stops.
A decaying learning rate (`--schedule poly|cosine`) decays over `--epochs`, so such a configuration gives `--epochs`
after the common ones (the last one counts) sized to end within its budget: 564 steps make an epoch of these shards.
Paths default to the layout used on the development machine (`--data /work/data`).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

#: Flags every configuration shares: from scratch (no ImageNet weights here), time budget, no validation (the held
#: photos are the test set and must not pick checkpoints), one loader in the training process.
COMMON = ("--weights", "none", "--epochs", "1000", "--workers", "0", "--no-progress", "--log-every", "50",
          "--seed", "0")


def pinned(core: int | None, *args: object) -> list[str]:
    """A command line, prefixed with `taskset -c CORE` when a core is given."""
    command = [str(a) for a in args]
    return ["taskset", "-c", str(core), *command] if core is not None else command


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(name: str, minutes: float, flags: list[str], data: Path, core: int | None, grabcut: bool,
        source: str | None = None) -> None:
    """Train configuration `name` for `minutes` (from scratch, or continuing a copy of the run `source`), then
    evaluate `last.pt` on the held-out shards."""
    study = data / "study"
    out = study / "runs" / name
    if source is None:
        train = pinned(core, "ifcn-train", "--shards", data / "shards/train", *COMMON, "--max-minutes", minutes,
                       "--out", out, *flags)
    else:
        shutil.copytree(study / "runs" / source, out)
        train = pinned(core, "ifcn-train", "--out", out, "--resume", "--max-minutes", minutes, "--no-progress")
    print("+", shlex.join(train), flush=True)
    subprocess.run(train, check=True, env=ENV)
    for refine in ("none", "grabcut") if grabcut else ("none",):
        suffix = "" if refine == "none" else f"-{refine}"
        noc = pinned(core, "ifcn-eval", "noc", "--checkpoint", out / "last.pt", "--shards",
                     f"held={data / 'shards/held'}", "--device", "cpu", "--threads", "1", "--no-progress",
                     "--refine", refine, "--out", study / "noc" / f"{name}{suffix}")
        print("+", shlex.join(noc), flush=True)
        subprocess.run(noc, check=True, env=ENV)


def _summary(folder: Path) -> dict[str, Any] | None:
    """The held-out dataset's figures of a NoC report folder, or None when it has not been written (yet)."""
    for path in (folder / "held" / "summary.json", folder / "summary.json"):
        if path.is_file():
            summary = json.loads(path.read_text())
            return summary.get("datasets", {}).get("held", summary)
    return None


def _progress(run_dir: Path) -> tuple[int, float, float]:
    """(steps, epochs, minutes) trained, from the run's metrics log (`step` counts from the run's start; each
    `--max-minutes` stop, resumed or not, records its minutes)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if line.strip().endswith("}")]
    config = json.loads((run_dir / "config.json").read_text())
    last = max((r.get("step", 0) for r in records if r.get("kind") in ("step", "stop")), default=0)
    minutes = sum(r["minutes"] for r in records if r.get("kind") == "stop" and "minutes" in r)
    return last, last / config["steps_per_epoch"], minutes or config["max_minutes"]


def table(data: Path) -> str:
    """One Markdown row per finished configuration (its own flags, budget, NoC, NoF, mIoU@k, seconds per click)."""
    study = data / "study"
    rows = []
    for run_dir in sorted((study / "runs").iterdir(), key=lambda p: p.stat().st_mtime):
        s = _summary(study / "noc" / run_dir.name)
        if s is None:
            continue
        steps, epochs, minutes = _progress(run_dir)
        g = _summary(study / "noc" / f"{run_dir.name}-grabcut")
        refined = f"{g['noc']['85']:.2f} / {g['noc']['90']:.2f}" if g else ""
        miou = s["miou_at"]
        flag_file = study / "flags" / f"{run_dir.name}.txt"
        flags = flag_file.read_text().strip() if flag_file.is_file() else ""
        rows.append(f"| {run_dir.name} | `{flags}` | {minutes:.0f} min | {steps} ({epochs:.2f}) "
                    f"| {s['noc']['85']:.2f} | {s['noc']['90']:.2f} | {s['nof']['90']} | {100 * miou['1']:.1f} "
                    f"| {100 * miou['5']:.1f} | {100 * miou['20']:.1f} | {s['seconds_per_click']:.3f} | {refined} |")
    refined_any = any(not row.endswith("|  |") for row in rows)
    head = ["| configuration | flags (beyond the common ones) | budget | steps (epochs) | NoC@85 | NoC@90 | NoF@90 "
            "| mIoU@1 | mIoU@5 | mIoU@20 | s/click | + GrabCut NoC@85/90 |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    if not refined_any:  # no --refine grabcut report: leave the empty column out
        head = [h.rsplit("|", 2)[0] + "|" for h in head]
        rows = [r.rsplit("|", 2)[0] + "|" for r in rows]
    return "\n".join(head + rows)


def _objects(folder: Path) -> dict[tuple[str, int], list[float]]:
    """(key, object id) -> IoU after each click, from a NoC report's `objects.jsonl`."""
    path = next(p for p in (folder / "held" / "objects.jsonl", folder / "objects.jsonl") if p.is_file())
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {(r["key"], r["object_id"]): r["ious"] for r in rows}


def same_objects(data: Path, reference: str) -> str:
    """Every NoC report recomputed on the objects of the report `reference` (a baseline run with `--limit`, say),
    with the NoC engine's own rule, and the smallest gap of each mIoU@k curve to the reference's."""
    from ifcn.trainer.evaluation.noc import clicks_to_reach

    study = data / "study"
    wanted = _objects(study / "noc" / reference)
    base_curve = np.mean(list(wanted.values()), axis=0)
    rows = [f"On the {len(wanted)} objects of `{reference}`:", "",
            "| report | NoC@85 | NoC@90 | NoF@90 | mIoU@1 | mIoU@5 | mIoU@10 | mIoU@20 | min over k of mIoU@k − "
            f"{reference}'s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for folder in sorted((study / "noc").iterdir(), key=lambda p: p.stat().st_mtime):
        try:
            found = _objects(folder)
        except StopIteration:
            continue
        if not set(wanted) <= set(found):
            continue
        ious = np.asarray([found[k] for k in wanted])
        counts = {t: [clicks_to_reach(row, t, False) or ious.shape[1] for row in ious] for t in (0.85, 0.90)}
        curve = ious.mean(0)
        gap = 100 * (curve - base_curve).min()
        rows.append(f"| {folder.name} | {np.mean(counts[0.85]):.2f} | {np.mean(counts[0.90]):.2f} "
                    f"| {sum(c == ious.shape[1] for c in counts[0.90])} | {100 * curve[0]:.1f} | {100 * curve[4]:.1f} "
                    f"| {100 * curve[9]:.1f} | {100 * curve[19]:.1f} | {gap:+.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data"), help="folder with shards/ and study/")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train one configuration, then evaluate it")
    r.add_argument("name")
    r.add_argument("--minutes", type=float, default=20.0)
    r.add_argument("--core", type=int, default=1, help="pin to this core (-1: do not pin)")
    r.add_argument("--grabcut", action="store_true", help="also evaluate with --refine grabcut")
    r.add_argument("flags", nargs=argparse.REMAINDER, help="ifcn-train flags after --")
    c = sub.add_parser("resume", help="continue a copy of a finished configuration, then evaluate it")
    c.add_argument("name")
    c.add_argument("--from", dest="source", required=True, help="the configuration to continue")
    c.add_argument("--minutes", type=float, default=40.0)
    c.add_argument("--core", type=int, default=1)
    c.add_argument("--grabcut", action="store_true")
    sub.add_parser("table", help="print the table of finished configurations")
    s = sub.add_parser("same", help="every NoC report again, on the objects of one report")
    s.add_argument("reference", help="a report folder name under STUDY/noc/")
    args = parser.parse_args()
    if args.command == "table":
        print(table(args.data))
        return
    if args.command == "same":
        print(same_objects(args.data, args.reference))
        return
    flag_dir = args.data / "study" / "flags"
    flag_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "resume":
        shutil.copyfile(flag_dir / f"{args.source}.txt", flag_dir / f"{args.name}.txt")
        run(args.name, args.minutes, [], args.data, None if args.core < 0 else args.core, args.grabcut, args.source)
        return
    flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
    (flag_dir / f"{args.name}.txt").write_text(shlex.join(flags) + "\n")
    run(args.name, args.minutes, flags, args.data, None if args.core < 0 else args.core, args.grabcut)


if __name__ == "__main__":
    main()
