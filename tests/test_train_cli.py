"""`ifcn-train` refuses bad input with a clear message before any training time is spent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ifcn.trainer.train_cli import main

BASE = ["--arch", "resnet18", "--weights", "none", "--crop", "64", "--batch-size", "4", "--workers", "0",
        "--device", "cpu", "--epochs", "1", "--no-progress"]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_list_archs_prints_the_backbones() -> None:
    code, out = _run("--list-archs")
    names = out.split()
    assert code == 0 and {"resnet18", "resnet50", "vgg16", "alexnet"} <= set(names)


def _copy(train_shards: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(train_shards, tmp_path / "shards"))


@pytest.mark.parametrize("extra, message", [
    (["--arch", "resnet19"], "unknown backbone 'resnet19'"),
    (["--precision", "fp16"], "fp16 needs a CUDA device"),
    (["--val-every", "2"], "--val-every needs --val-shards"),
    (["--task", "semantic", "--first-layer-init", "mean"], "--first-layer-init"),
    (["--num-classes", "5"], "--num-classes applies to --task semantic"),
    (["--crop", "16"], "--crop"),
    (["--batch-size", "1000"], "lower --batch-size"),
    (["--resume"], "last.pt does not exist"),
    (["--weights", "missing.pth"], "--weights"),
    (["--scale-range", "1.5", "0.5"], "--scale-range"),
    (["--schedule", "poly", "--warmup-steps", "10000"], "--warmup-steps"),
])
def test_inconsistent_flags_are_refused(train_shards: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    code, out = _run("--shards", str(train_shards), "--out", str(tmp_path / "run"), *BASE, *extra)
    assert code != 0 and message in out, out
    assert not (tmp_path / "run" / "last.pt").exists()


def test_missing_shard_is_named(train_shards: Path, tmp_path: Path) -> None:
    shards = _copy(train_shards, tmp_path)
    victim = sorted(shards.glob("*.tar"))[-1]
    victim.unlink()
    code, out = _run("--shards", str(shards), "--out", str(tmp_path / "run"), *BASE)
    assert code == 1 and victim.name in out and "missing" in out


def test_corrupt_shard_is_named(train_shards: Path, tmp_path: Path) -> None:
    shards = _copy(train_shards, tmp_path)
    victim = sorted(shards.glob("*.tar"))[0]
    victim.write_bytes(b"\0" * victim.stat().st_size)  # right size, garbage content
    code, out = _run("--shards", str(shards), "--out", str(tmp_path / "run"), *BASE)
    assert code == 1 and victim.name in out and "corrupt" in out


def test_missing_manifest_or_pattern_is_reported(tmp_path: Path) -> None:
    code, out = _run("--shards", str(tmp_path), "--out", str(tmp_path / "run"), *BASE)
    assert code == 1 and "manifest" in out
    code, out = _run("--shards", str(tmp_path / "train-{000000..000002}.tar"), "--out", str(tmp_path / "run"), *BASE)
    assert code == 1 and "missing" in out
