"""The measured steps of `bench/gpu.sh` and its report: one function per step, each also runnable on the CPU at tiny
sizes (the tests run them so, so that the first run on a GPU is the one that counts).

`bash bench/gpu.sh` runs, each under its own time limit, `python -m bench.gpu STEP --json FILE` for the steps below,
then `python -m bench.gpu report WORK_DIR`, which gathers every step's result (and the text output of the steps run
by the shell script itself: `pytest -m cuda`, the demo latency) into `bench/results-gpu.json` and a Markdown report,
both also written under `$OUT` when that is set, and prints the report.

- train: images/s, peak GPU memory and the fraction of time the GPU is busy for resnet50-8s and vgg16-8s at
  384×384, fp32 against bf16 + channels_last (`bench/bench_train.py`); compile: resnet50-8s bf16 + channels_last
  under `torch.compile`.
- iterative: the training step time of resnet50-8s bf16 + channels_last without and with 3 extra click rounds
  (`ifcn-train --iterative`, issue 12).
- loader: samples/s of the training loader alone with one DataLoader worker per core, to set beside the model's
  images/s (does the loader keep up?).
- maps: the distance channels on the device before (`dense`) and after (`chunked`) issue 14: time and peak memory
  for batch 24 to 256 at 384² with 24 clicks per sign, and with 10 valid clicks in 64 padded slots.
- noc: NoC with batched objects against one object at a time, objects/s and whether the logs agree
  (`bench/bench_noc.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from bench.bench_loader import our_batches, prepare, rate
from bench.bench_noc import compare, untrained_model, val_objects
from bench.bench_train import Result, measure
from bench.real_recipe import DEFAULT_PACKED, RECIPE
from ifcn.cores import usable_cores
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.synth import SynthConfig, make_synth_dataset
from ifcn.trainer.core.clickmaps import distance_maps
from ifcn.trainer.evaluation.noc import NocSettings
from ifcn.trainer.evaluation.objects import EvalObject

#: The steps gpu.sh runs, in order: (name, title). `cuda-tests` and `demo` are text outputs of shell commands.
STEPS = (("cuda-tests", "CUDA tests (`pytest -m cuda`)"), ("train", "Training throughput"),
         ("iterative", "Training step time with extra click rounds (`--iterative`, issue 12)"),
         ("compile", "Training throughput with torch.compile"), ("loader", "Does the loader keep up?"),
         ("maps", "Distance channels on the device (issue 14)"), ("noc", "NoC: batched against one object at a time"),
         ("demo", "Demo server click latency"), ("real", "Real photos: the recipe trained one minute, NoC held out"))
#: The row of the train step the loader is compared with, and the issue's targets.
REFERENCE_MODEL = ("resnet50-8s", "bf16-cl")
TARGETS = ("resnet50-8s bf16 + channels_last: at least 1,500 images/s on an H100 with the GPU busy at least 90 % of "
           "the time; NoC batched at least 5x one object at a time.")
RESULTS_JSON = Path("bench/results-gpu.json")


@dataclass(frozen=True)
class StepResult:
    """A measured step: a table (columns, rows) and notes, with the command that produced it."""

    step: str
    command: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    notes: tuple[str, ...] = ()
    seconds: float = 0.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(arch: str, mode: str, device: torch.device, batch: int, crop: int, steps: int, warmup: int,
             compile_backend: str = "inductor", extra_rounds: int = 0) -> Result | str:
    """`bench_train.measure`, or the text of its failure: one failed mode (no compiler for torch.compile, out of
    memory) must not hide the rest."""
    try:
        return measure(arch, mode, device, batch, crop, steps, warmup, compile_backend, extra_rounds)
    except Exception as e:
        return f"failed: {type(e).__name__}: {e}"[:200]
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _train_rows(runs: Sequence[tuple[str, str, int, int, int, int]], device: torch.device,
                compile_backend: str = "inductor") -> tuple[tuple[Any, ...], ...]:
    rows = []
    for arch, mode, batch, crop, steps, warmup in runs:
        r = _measure(arch, mode, device, batch, crop, steps, warmup, compile_backend)
        if isinstance(r, str):
            rows.append((f"{arch}-8s", mode, f"{crop}x{crop}", batch, r, "", ""))
        else:
            busy = "n/a" if r.busy is None else f"{100 * r.busy:.1f} %"
            rows.append((f"{arch}-8s", mode, f"{crop}x{crop}", batch, round(r.images_per_s, 1),
                         round(r.peak_gib, 2), busy))
    return tuple(rows)


TRAIN_COLUMNS = ("model", "mode", "size", "batch", "images/s", "peak GiB", "GPU busy")
TRAIN_NOTE = ("bf16-cl = bf16 autocast + channels_last; busy = union of CUDA kernel intervals over the wall time of "
              "10 profiled steps.")


def train_step(device: torch.device, tiny: bool = False) -> StepResult:
    """Training throughput, peak memory and GPU-busy fraction per model and mode (`bench_train.measure`)."""
    if tiny:
        runs = [("resnet18", mode, 2, 32, 1, 1) for mode in ("fp32", "bf16-cl")]
    else:
        runs = [(arch, mode, 32, 384, 20, 5) for arch in ("resnet50", "vgg16") for mode in ("fp32", "bf16-cl")]
    return StepResult("train", "python -m bench.gpu train" + (" --tiny" if tiny else ""), TRAIN_COLUMNS,
                      _train_rows(runs, device), (TRAIN_NOTE,))


def compile_step(device: torch.device, tiny: bool = False) -> StepResult:
    """resnet50-8s bf16 + channels_last under torch.compile (a step of its own: compiling takes a minute or more).

    Tiny: resnet18 with the "eager" backend, which runs the compile wrapper's code path without code generation.
    """
    run = ("resnet18", "bf16-cl-compile", 2, 32, 1, 1) if tiny else ("resnet50", "bf16-cl-compile", 32, 384, 20, 5)
    return StepResult("compile", "python -m bench.gpu compile" + (" --tiny" if tiny else ""), TRAIN_COLUMNS,
                      _train_rows([run], device, "eager" if tiny else "inductor"),
                      ("The first warm-up step compiles; the timed steps run the compiled graph.",))


#: Extra click rounds per step the iterative step compares (`--iterative 3`: RITM's setting).
ITERATIVE_ROUNDS = (0, 3)


def iterative_step(device: torch.device, tiny: bool = False) -> StepResult:
    """Training step time without and with 3 extra click rounds before every step (`ifcn-train --iterative`)."""
    arch, mode, batch, crop, steps, warmup = ("resnet18", "fp32", 2, 32, 1, 1) if tiny else \
        ("resnet50", "bf16-cl", 32, 384, 10, 3)
    rows = []
    for rounds in ITERATIVE_ROUNDS:
        r = _measure(arch, mode, device, batch, crop, steps, warmup, extra_rounds=rounds)
        figures = (r, "", "", "") if isinstance(r, str) else \
            (round(1000 * batch / r.images_per_s, 1), round(r.images_per_s, 1), round(r.peak_gib, 2),
             "n/a" if r.busy is None else f"{100 * r.busy:.1f} %")
        rows.append((f"{arch}-8s", mode, f"{crop}x{crop}", batch, rounds, *figures))
    return StepResult("iterative", "python -m bench.gpu iterative" + (" --tiny" if tiny else ""),
                      ("model", "mode", "size", "batch", "extra rounds", "ms/step", "images/s", "peak GiB",
                       "GPU busy"), tuple(rows),
                      ("Every step with that many extra rounds (no-grad forward + batched standard clicker + one "
                       "click per sample each). `--iterative 3` with the default `--iterative-prob` (0.75) averages "
                       "1.5 rounds per step: its mean step time lies halfway between the two rows.",))


def loader_step(shards: Path, batch: int, crop: int, workers: int, batches: int) -> StepResult:
    """Samples/s of the training loader alone (stream + augmentation + collate) with `workers` DataLoader workers."""
    wall, _ = rate(our_batches(shards, crop, batch, batches, workers=workers))
    return StepResult("loader", f"python -m bench.gpu loader  (workers {workers})",
                      ("loader workers", "crop", "batch", "samples/s"), ((workers, crop, batch, round(wall, 1)),))


def _time_call(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> tuple[float, float]:
    """(median milliseconds, peak memory growth in MiB; NaN off CUDA) of `fn`, after one warm-up call."""
    fn()
    _sync(device)
    peak = float("nan")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return 1000 * statistics.median(times), peak


def _mib(value: float) -> int | str:
    return "n/a" if math.isnan(value) else round(value)


def maps_step(device: torch.device, tiny: bool = False) -> StepResult:
    """One distance channel of a batch on `device`: `dense` (before issue 14) against the default formulation."""
    cases = [(2, 32, 4, 4), (2, 32, 2, 16)] if tiny else \
        [(b, 384, 24, 24) for b in (24, 64, 128, 256)] + [(256, 384, 10, 64)]
    rows = []
    g = torch.Generator().manual_seed(0)
    for batch, size, valid_clicks, slots in cases:
        clicks = torch.randint(0, size, (batch, slots, 2), dtype=torch.int32, generator=g).to(device)
        valid = torch.zeros(batch, slots, dtype=torch.bool)
        valid[:, :valid_clicks] = True
        valid = valid.to(device)
        before = _time_call(partial(distance_maps, clicks, valid, size, size, formulation="dense"), device, 10)
        after = _time_call(partial(distance_maps, clicks, valid, size, size), device, 10)
        output_mib = batch * size * size * 4 / 2**20
        rows.append((batch, f"{size}x{size}", f"{valid_clicks}/{slots}", round(before[0], 3), round(after[0], 3),
                     round(before[0] / after[0], 2), _mib(before[1]), _mib(after[1]), round(output_mib)))
    return StepResult("maps", "python -m bench.gpu maps" + (" --tiny" if tiny else ""),
                      ("batch", "size", "valid/slots", "before ms", "after ms", "speed-up", "before peak MiB",
                       "after peak MiB", "output MiB"), tuple(rows),
                      ("One sign's channel; peak = growth of allocated GPU memory during the call (output included).",))


def noc_step(objects: list[EvalObject], device: torch.device, max_clicks: int, batch_size: int,
             workers: int) -> StepResult:
    """NoC objects/s batched against one at a time on `device`, and whether their logs agree."""
    r = compare(objects, untrained_model(), device, NocSettings(max_clicks=max_clicks), batch_size, workers)
    cpu_clicker = "n/a" if r.batched_cpu_clicker is None else round(r.batched_cpu_clicker, 2)
    return StepResult("noc", f"python -m bench.gpu noc  (batch {batch_size}, {workers} clicker threads)",
                      ("objects", "clicks", "one at a time obj/s", "batched obj/s", "speed-up", "engine ms/click",
                       "logs differ", "batched, CPU clicker obj/s"),
                      ((r.objects, max_clicks, round(r.one_at_a_time, 2), round(r.batched, 2), round(r.speedup, 2),
                        round(r.engine_ms_per_click, 3), f"{r.logs_differ}/{r.objects}", cpu_clicker),),
                      ("Untrained resnet18-8s; default kernels, so a pixel within ~1e-6 of the threshold may flip "
                       "between batch sizes (`--batch-invariant` makes the logs identical; a CUDA test checks it). "
                       "On a GPU the standard clicker runs batched on the device "
                       "(`ifcn.trainer.core.error_clicks`); the last column is the batched run with the per-object CPU "
                       "clicker instead.",))


def real_step(device: torch.device, shards: Path | None, minutes: float, tiny: bool = False) -> StepResult:
    """Train the real-photo recipe from scratch on `shards`/train for `minutes`, then NoC on `shards`/held."""
    command = "python -m bench.gpu real" + (" --tiny" if tiny else "")
    columns = ("recipe", "minutes", "steps", "NoC@85", "NoC@90", "NoF@90", "mIoU@1", "mIoU@5", "mIoU@20", "s/click")
    if shards is None:
        return StepResult("real", command, ("status",), (("skipped: no packed real-photo shards",),),
                          (f"Make them with `python -m bench.real_recipe pack SPLIT {DEFAULT_PACKED}` and carry "
                           f"`{DEFAULT_PACKED}` (or set IFCN_REAL_SHARDS).",))
    flags = ("--crop", "64", "--batch-size", "2", "--epochs", "1") if tiny else (*RECIPE, "--epochs", "1000")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, report_dir = Path(tmp) / "run", Path(tmp) / "noc"
        subprocess.run(["ifcn-train", "--shards", str(shards / "train"), "--weights", "none", *flags,
                        "--max-minutes", str(minutes), "--device", device.type, "--no-progress", "--out",
                        str(run_dir)], check=True)
        subprocess.run(["ifcn-eval", "noc", "--checkpoint", str(run_dir / "last.pt"), "--shards",
                        f"held={shards / 'held'}", "--device", device.type, "--no-progress", "--out",
                        str(report_dir)] + (["--max-clicks", "2"] if tiny else []), check=True)
        summary = json.loads((report_dir / "summary.json").read_text())
        steps = sum(1 for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "step"' in line)
    curve = summary["miou_curve"]
    miou = [round(100 * curve[k - 1], 1) if k <= len(curve) else "" for k in (1, 5, 20)]
    row = (" ".join(flags), minutes, steps, summary["noc"]["85"], summary["noc"]["90"],
           summary.get("nof", {}).get("90", ""), *miou, round(summary.get("seconds_per_click", math.nan), 4))
    return StepResult("real", command, columns, (row,),
                      (f"{summary['num_objects']} held-out COCO_MVal objects (photos at long side 320, "
                       "`bench/real_recipe.py`); from scratch (no ImageNet weights on these machines); steps = "
                       "logged training steps.",))


def tiny_real_shards(workdir: Path, scheduler: str | None) -> Path:
    """A tiny stand-in for the packed real photos (a CPU check of the step): a synthetic dataset as train/ and held/."""
    root = make_synth_dataset(workdir / "synth", SynthConfig(train_images=4, val_images=2, long_side=64))
    for part, split in (("train", "train"), ("held", "val")):
        run_sample(SampleJob(voc_root=root, split=split, out=workdir / "real" / part, clicks=ClickConfig(pairs=1),
                             workers=None if scheduler else 1, scheduler=scheduler, progress=False),
                   log=lambda _: None)
    return workdir / "real"


def real_shards() -> Path | None:
    """The packed real-photo shards: IFCN_REAL_SHARDS, else .real-photos when present."""
    folder = Path(os.environ.get("IFCN_REAL_SHARDS", DEFAULT_PACKED))
    return folder if (folder / "train" / "manifest.json").is_file() else None


def environment() -> dict[str, Any]:
    """Device name, torch, CUDA and cuDNN versions, cores: the header of the report."""
    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name() if cuda else "no CUDA device", "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
            "cpu_cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def _markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return ["| " + " | ".join(map(str, columns)) + " |", "|" + "---|" * len(columns),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def _loader_note(results: dict[str, dict[str, Any]]) -> str | None:
    """Loader samples/s against the reference model's images/s, when both steps ran."""
    train, loader = results.get("train"), results.get("loader")
    if not train or not loader or "rows" not in train or "rows" not in loader:
        return None
    model = [r for r in train["rows"] if tuple(r[:2]) == REFERENCE_MODEL]
    if not model:
        return None
    images_per_s, samples_per_s = model[0][4], loader["rows"][0][-1]
    verdict = "keeps up" if samples_per_s >= images_per_s else "does NOT keep up"
    return (f"The loader ({samples_per_s} samples/s) {verdict} with {' '.join(REFERENCE_MODEL)} "
            f"({images_per_s} images/s).")


def report(work: Path, out: Path | None = None, results_json: Path = RESULTS_JSON) -> str:
    """Gather the step files of `work` (NAME.json, or NAME.txt + NAME.cmd, and NAME.rc) into the results JSON and a
    Markdown report; write both (and under `out`), and return the Markdown."""
    results: dict[str, dict[str, Any]] = {}
    for name, _ in STEPS:
        entry: dict[str, Any] = {}
        rc = work / f"{name}.rc"
        if rc.exists():
            entry["exit_code"] = int(rc.read_text().strip() or -1)
        if (work / f"{name}.json").exists():
            entry.update(json.loads((work / f"{name}.json").read_text()))
        elif (work / f"{name}.txt").exists():
            lines = (work / f"{name}.txt").read_text(errors="replace").splitlines()
            entry["output_tail"] = lines[-15:]
        if (work / f"{name}.cmd").exists():
            entry.setdefault("command", (work / f"{name}.cmd").read_text().strip())
        if entry:
            results[name] = entry
    env = environment()
    lines = [f"## GPU results: {env['device']}", "",
             f"torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, {env['cpu_cores']} CPU cores, "
             f"{env['date']}. Produced by `bash bench/gpu.sh`. Targets: {TARGETS}", ""]
    for name, title in STEPS:
        entry = results.get(name)
        if entry is None:
            continue
        status = entry.get("exit_code", 0)
        state = "" if status == 0 else (" — **timed out**" if status in (124, 137) else f" — **exit {status}**")
        lines += [f"### {title}{state}", "", f"`{entry.get('command', name)}`", ""]
        if "rows" in entry:
            lines += _markdown_table(entry["columns"], entry["rows"])
            lines += ["", *entry.get("notes", ())]
            if entry.get("seconds"):
                lines.append(f"Step time {entry['seconds']:.0f} s.")
        else:
            lines += ["```", *entry.get("output_tail", ["(no output)"]), "```"]
        if name == "loader" and (note := _loader_note(results)):
            lines.append(note)
        lines.append("")
    markdown = "\n".join(lines)
    payload = json.dumps({"environment": env, "steps": results}, indent=2) + "\n"
    targets = [results_json.parent] + ([out] if out else [])
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
    results_json.write_text(payload)
    if out:
        (out / results_json.name).write_text(payload)
        (out / "results-gpu.md").write_text(markdown)
    return markdown


def run_step(step: str, device: torch.device, tiny: bool, scheduler: str | None = None) -> StepResult:
    """Run one step with the sizes gpu.sh uses (or tiny ones), preparing its synthetic data in a temporary folder
    (with `ifcn-prep`'s pipeline on a local Dask cluster, or on `scheduler`)."""
    if step == "train":
        return train_step(device, tiny)
    if step == "compile":
        return compile_step(device, tiny)
    if step == "iterative":
        return iterative_step(device, tiny)
    if step == "maps":
        return maps_step(device, tiny)
    if step == "real" and not tiny:
        return real_step(device, real_shards(), minutes=1.0)
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        if step == "loader":
            images, batch, crop = (4, 2, 64) if tiny else (160, 32, 384)
            _, shards = prepare(Path(tmp), images, 15, workers=min(cores, 8), images_per_shard=4, scheduler=scheduler)
            return loader_step(shards, batch, crop, workers=0 if tiny else cores, batches=3 if tiny else 200)
        if step == "noc":
            images, long_side, clicks = (2, 64, 2) if tiny else (16, 320, 20)
            objects = val_objects(Path(tmp), images, long_side, scheduler=scheduler)
            return noc_step(objects, device, clicks, batch_size=32, workers=min(cores, 8))
        if step == "real":
            return real_step(device, tiny_real_shards(Path(tmp), scheduler), minutes=0.2, tiny=True)
    raise ValueError(f"unknown step {step!r}; choose one of train, iterative, compile, loader, maps, noc, real, "
                     "report")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("train", "iterative", "compile", "loader", "maps", "noc", "real", "report"))
    parser.add_argument("work", nargs="?", type=Path, help="report: the folder of the step files")
    parser.add_argument("--json", type=Path, help="write the step's result here")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU check of the code path)")
    args = parser.parse_args()
    if args.step == "report":
        if args.work is None:
            parser.error("report needs the folder of the step files")
        out = os.environ.get("OUT")
        print(report(args.work, Path(out) if out else None))
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    start = time.perf_counter()
    result = run_step(args.step, device, args.tiny)
    result = StepResult(**{**asdict(result), "seconds": time.perf_counter() - start})
    print("\n".join(_markdown_table(result.columns, result.rows)))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")


if __name__ == "__main__":
    main()
