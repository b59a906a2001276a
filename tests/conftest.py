"""Shared pytest fixtures. Keep each one tiny: the whole suite shares two CPU cores."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, local_cluster, run_sample
from ifcn.pipeline.sources import SourceSpec, make_synth_layouts
from ifcn.pipeline.synth import SynthConfig, make_synth_dataset

#: The tiny synthetic VOC set behind `synth_root` (18 images, 160 px long side).
SYNTH_TEST_CONFIG = SynthConfig(train_images=12, val_images=6, seed=0, long_side=160)
#: Images per shard of the shard fixtures: several shards from a tiny split.
SHARD_TEST_IMAGES = 4


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset in the VOC 2012 layout; returns its `VOCdevkit/VOC2012` folder. Do not modify it."""
    return make_synth_dataset(tmp_path_factory.mktemp("synth"), SYNTH_TEST_CONFIG)


@pytest.fixture
def voc_copy(synth_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of `synth_root` (its VOC2012 folder) for tests that damage files."""
    return Path(shutil.copytree(synth_root, tmp_path / "VOCdevkit" / "VOC2012"))


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """Scheduler address of a local Dask cluster (2 worker processes) shared by every test that runs the pipeline:
    pass it as `SampleJob(scheduler=...)` or `--scheduler` to skip the cluster start-up."""
    with local_cluster(2) as cluster:
        yield cluster.scheduler_address


def _make_shards(root: Path, out: Path, split: str, pairs: int, fmt: str, scheduler: str) -> Path:
    job = SampleJob(voc_root=root, split=split, out=out, clicks=ClickConfig(pairs=pairs), format=fmt,
                    images_per_shard=SHARD_TEST_IMAGES, scheduler=scheduler, progress=False)
    run_sample(job, log=lambda message: None)
    return out


@pytest.fixture(scope="session")
def train_shards(synth_root: Path, dask_address: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ifcn-prep sample` of `synth_root`'s train split (webdataset, 3 pairs, 3 shards); the folder holds
    manifest.json. Read only."""
    return _make_shards(synth_root, tmp_path_factory.mktemp("train_shards"), "train", 3, "webdataset", dask_address)


@pytest.fixture(scope="session")
def val_shards(synth_root: Path, dask_address: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The val split (webdataset, 1 pair, 2 shards), as the evaluator reads it. Read only."""
    return _make_shards(synth_root, tmp_path_factory.mktemp("val_shards"), "val", 1, "webdataset", dask_address)


@pytest.fixture(scope="session")
def train_shards_h5(synth_root: Path, dask_address: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train_shards` in the HDF5 format (same samples). Read only."""
    return _make_shards(synth_root, tmp_path_factory.mktemp("train_shards_h5"), "train", 3, "hdf5", dask_address)


@pytest.fixture(scope="session")
def synth_layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SourceSpec]:
    """`SYNTH_TEST_CONFIG` written in every source's released layout; where each one's val split is. Do not modify."""
    return make_synth_layouts(tmp_path_factory.mktemp("layouts"), SYNTH_TEST_CONFIG)


@pytest.fixture(scope="session")
def semantic_run(train_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a finished one-epoch semantic resnet18-8s run on `train_shards` (`last.pt`, `best.pt`,
    `config.json`, ...). Read only: copy it to change it."""
    from ifcn.trainer.train import TrainConfig, train

    out = tmp_path_factory.mktemp("semantic_run") / "run"
    config = TrainConfig(shards=str(train_shards), val_shards=str(train_shards), out=str(out), task="semantic",
                         arch="resnet18", stride=8, weights="none", epochs=1, crop=64, batch_size=8, workers=0,
                         device="cpu", progress=False, val_limit=2)
    train(config)
    return out
