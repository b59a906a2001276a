"""Shards from anywhere (issue 10, item 2): `--shards`/`--val-shards` of `ifcn-train` and `--shards` of `ifcn-eval`
take `http(s)://` URLs and `pipe:` commands, with the manifest read from the same place, and give exactly what the
local files give; an HDF5 shard at a URL and a URL that cannot be fetched get a clear error that names it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ifcn.errors import InputError
from ifcn.shards.check import check_shards
from ifcn.shards.manifest import resolve_shards
from ifcn.shards.reader import read_shard
from ifcn.trainer.core.checkpoint import load_checkpoint
from ifcn.trainer.data import AugmentConfig, TrainStream, make_loader, steps_per_epoch
from ifcn.trainer.evaluation.eval_cli import main as eval_main
from ifcn.trainer.train import TrainConfig, train
from ifcn.trainer.train_cli import main as train_main
from tests.eval_data import make_checkpoint
from tests.ports import free_port
from tests.shard_sets import http_server

RUN = {"arch": "resnet18", "weights": "none", "crop": 64, "batch_size": 4, "device": "cpu", "progress": False,
       "epochs": 1, "seed": 2, "shuffle_items": 8, "chunk_items": 5, "val_limit": 2}


@pytest.fixture(scope="module")
def served(train_shards: Path, val_shards: Path, train_shards_h5: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder holding copies of the train (both formats) and val shard sets, and its URL on 127.0.0.1."""
    root = tmp_path_factory.mktemp("served")
    for name, folder in (("train", train_shards), ("val", val_shards), ("train_h5", train_shards_h5)):
        shutil.copytree(folder, root / name)
    with http_server(root) as url:
        yield root, url


def _batches(spec: str | Path, workers: int) -> list[dict[str, torch.Tensor]]:
    infos = check_shards(resolve_shards(spec), "interactive")
    steps = steps_per_epoch(sum(i.items for i in infos), 1, 4)
    stream = TrainStream(infos, "interactive", AugmentConfig(64), 4, steps, seed=1, workers=workers, shuffle_items=8,
                         chunk_items=5)
    return list(make_loader(stream))


def _equal(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) > 0 and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                        for x, y in zip(a, b, strict=True))


def _train(shards: str, val_shards: str, out: Path) -> dict[str, torch.Tensor]:
    result = train(TrainConfig(shards=shards, val_shards=val_shards, out=str(out), workers=1, **RUN))
    assert result.steps > 0 and result.last_val["val_objects"] > 0
    return load_checkpoint(result.last_checkpoint)["model"]


@pytest.fixture(scope="module")
def local_weights(served: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    root, _ = served
    return _train(str(root / "train"), str(root / "val"), tmp_path_factory.mktemp("local") / "run")


@pytest.mark.parametrize("remote", ["http", "pipe"])
def test_one_epoch_from_a_url_or_pipe_equals_the_local_run(served: tuple[Path, str], remote: str,
                                                           local_weights: dict[str, torch.Tensor],
                                                           tmp_path: Path) -> None:
    root, url = served
    spec = {"http": lambda name: f"{url}{name}/",
            "pipe": lambda name: f"pipe:cat {root / name / 'manifest.json'}"}[remote]
    assert _equal(_batches(spec("train"), workers=2), _batches(root / "train", workers=0))
    fetched = _train(spec("train"), spec("val"), tmp_path / remote)
    assert local_weights.keys() == fetched.keys()
    assert all(torch.equal(local_weights[k], fetched[k]) for k in fetched)


def test_a_url_pattern_without_manifest_reads_the_same_samples(served: tuple[Path, str]) -> None:
    root, url = served
    shards = resolve_shards(f"{url}train/train-{{000000..000002}}.tar")
    assert shards.manifest is None and shards.locations[0] == f"{url}train/train-000000.tar"
    local = [s.key for p in sorted((root / "train").glob("*.tar")) for s in read_shard(p)]
    assert [s.key for p in shards.locations for s in read_shard(p)] == local
    assert _equal(_batches(f"{url}train/train-{{000000..000002}}.tar", 0), _batches(root / "train", 0))


def test_eval_reads_val_shards_from_a_url(served: tuple[Path, str], tmp_path: Path) -> None:
    root, url = served
    checkpoint = make_checkpoint(tmp_path / "model.pt", "interactive")
    outputs = []
    for shards in (f"{url}val/", str(root / "val")):
        result = CliRunner().invoke(eval_main, ["iou", "--checkpoint", str(checkpoint), "--shards", shards,
                                                "--device", "cpu"])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1] and "IoU" in outputs[0]


def test_hdf5_shards_at_a_url_are_refused_by_name(served: tuple[Path, str], tmp_path: Path) -> None:
    _, url = served
    location = f"{url}train_h5/train-000000.h5"
    with pytest.raises(InputError, match="only be read from local files") as error:
        next(read_shard(location))
    assert error.value.path == location and "--format webdataset" in error.value.fix
    result = CliRunner().invoke(train_main, ["--shards", f"{url}train_h5/", "--out", str(tmp_path / "run"),
                                             "--device", "cpu", "--weights", "none", "--no-progress"])
    assert result.exit_code == 1 and "train-000000.h5" in result.output and "local files" in result.output


def test_a_url_that_cannot_be_fetched_gets_a_network_fix(served: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = served
    gone = tmp_path / "gone"
    shutil.copytree(root / "train", gone)
    (gone / "train-000001.tar").unlink()  # the manifest is there, one of its shards is not
    cases = {f"http://127.0.0.1:{free_port()}/train/": "manifest.json",
             f"pipe:cat {tmp_path / 'nowhere' / 'manifest.json'}": "manifest.json"}
    with http_server(tmp_path) as other:
        cases[f"{other}gone/"] = "train-000001.tar"
        for spec, named in cases.items():
            result = CliRunner().invoke(train_main, ["--shards", spec, "--out", str(tmp_path / "run"), "--device",
                                                     "cpu", "--weights", "none", "--no-progress"])
            assert result.exit_code == 1 and named in result.output, result.output
            assert "could not be fetched" in result.output and "| tar t" in result.output
            assert "ifcn-prep sample" not in result.output  # a network failure is no reason to rewrite shards
