"""`bench/gpu.sh` without a GPU, and every one of its measured steps and its report run on the CPU at tiny sizes, so
that the first run on a GPU machine is the one that counts (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from bench.gpu import STEPS, StepResult, real_step, report, run_step

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def test_gpu_script_without_a_gpu_prints_its_plan_and_exits_0_quickly(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "OUT": str(tmp_path / "out")}
    start = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], env=env, capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert time.monotonic() - start < 30
    assert done.returncode == 0, done.stderr
    assert "no GPU found" in done.stdout and "nothing installed" in done.stdout
    for command in ("pip install -e .", "python -m pytest -m cuda", "python -m bench.gpu train",
                    "python -m bench.gpu iterative", "python -m bench.gpu compile",
                    "python -m bench.gpu loader", "python -m bench.gpu maps", "python -m bench.gpu noc",
                    "bench/bench_demo.py --device cuda", "python -m bench.gpu report"):
        assert command in done.stdout
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def steps(dask_address: str) -> dict[str, StepResult]:
    """Each measured step of gpu.sh, tiny, on the CPU (data prepared by the pipeline on the shared Dask cluster)."""
    names = ("train", "iterative", "compile", "loader", "maps", "noc", "real")
    return {name: run_step(name, CPU, tiny=True, scheduler=dask_address) for name in names}


def test_train_step_measures_each_mode(steps: dict[str, StepResult]) -> None:
    result = steps["train"]
    assert [row[:2] for row in result.rows] == [("resnet18-8s", "fp32"), ("resnet18-8s", "bf16-cl")]
    assert all(isinstance(row[4], float) and row[4] > 0 for row in result.rows)  # images/s, not a failure text
    assert len(result.columns) == len(result.rows[0])


def test_iterative_step_times_steps_without_and_with_extra_rounds(steps: dict[str, StepResult]) -> None:
    rows = steps["iterative"].rows
    assert [row[4] for row in rows] == [0, 3] and all(row[:2] == ("resnet18-8s", "fp32") for row in rows)
    assert all(isinstance(row[5], float) and row[5] > 0 for row in rows)  # ms/step, not a failure text
    assert len(steps["iterative"].columns) == len(rows[0])


def test_compile_step_runs_the_compiled_model(steps: dict[str, StepResult]) -> None:
    ((model, mode, _, _, images_per_s, _, _),) = steps["compile"].rows
    assert (model, mode) == ("resnet18-8s", "bf16-cl-compile") and isinstance(images_per_s, float)


def test_loader_step_measures_the_loader(steps: dict[str, StepResult]) -> None:
    ((workers, crop, batch, samples_per_s),) = steps["loader"].rows
    assert (workers, crop, batch) == (0, 64, 2) and samples_per_s > 0


def test_maps_step_times_before_and_after(steps: dict[str, StepResult]) -> None:
    rows = steps["maps"].rows
    assert [row[2] for row in rows] == ["4/4", "2/16"]
    assert all(row[3] > 0 and row[4] > 0 and row[6] == "n/a" for row in rows)  # no CUDA memory figures on the CPU


def test_noc_step_compares_batched_and_one_at_a_time(steps: dict[str, StepResult]) -> None:
    ((objects, clicks, one, batched, speedup, engine_ms, differ, cpu_clicker),) = steps["noc"].rows
    assert objects >= 2 and clicks == 2 and min(one, batched, speedup, engine_ms) > 0
    assert differ.endswith(f"/{objects}") and cpu_clicker == "n/a"  # the CPU run has one clicker only


def test_real_step_trains_the_recipe_and_evaluates_held_out_objects(steps: dict[str, StepResult]) -> None:
    ((recipe, minutes, trained, noc85, noc90, nof90, miou1, miou5, miou20, seconds),) = steps["real"].rows
    assert "--crop 64" in recipe and minutes == 0.2 and trained >= 1 and nof90 >= 0
    assert 1 <= noc85 <= noc90 <= 2 and miou5 == miou20 == ""
    assert 0.0 <= miou1 <= 100.0 and seconds > 0


def test_real_step_without_shards_says_how_to_pack_them() -> None:
    result = real_step(CPU, None, minutes=1.0)
    assert result.rows == (("skipped: no packed real-photo shards",),) and "bench.real_recipe pack" in result.notes[0]


def test_report_gathers_every_step_into_json_and_markdown(steps: dict[str, StepResult], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for name, result in steps.items():
        (work / f"{name}.json").write_text(json.dumps(asdict(result)))
        (work / f"{name}.rc").write_text("0\n")
    (work / "cuda-tests.cmd").write_text("python -m pytest -m cuda -q\n")
    (work / "cuda-tests.txt").write_text("collected\n6 passed in 41.0s\n")
    (work / "cuda-tests.rc").write_text("0\n")
    (work / "demo.cmd").write_text("python bench/bench_demo.py --device cuda\n")
    (work / "demo.rc").write_text("124\n")  # timed out: said so, the rest still reported
    out, results = tmp_path / "out", tmp_path / "bench" / "results-gpu.json"
    markdown = report(work, out, results)
    assert markdown == (out / "results-gpu.md").read_text()
    for _, title in STEPS:
        assert f"### {title}" in markdown
    assert "6 passed in 41.0s" in markdown and "timed out" in markdown
    assert "`python -m bench.gpu train --tiny`" in markdown and "| resnet18-8s | fp32 |" in markdown
    payload = json.loads(results.read_text())
    assert payload == json.loads((out / "results-gpu.json").read_text())
    assert payload["environment"]["torch"] == torch.__version__ and payload["steps"]["demo"]["exit_code"] == 124
    assert set(payload["steps"]) == {name for name, _ in STEPS}
