"""`run_sample` end to end: planning, determinism across worker counts, round trip, resume, refusal, verify, inspect."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ifcn.io import file_sha256
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.prep_resume import JOB_FILE, SIDECAR_DIR, JobMismatchError, read_sidecar
from ifcn.pipeline.preview import inspect_output, output_size
from ifcn.pipeline.sample import make_sample
from ifcn.pipeline.shard_plan import DEFAULT_IMAGES_PER_SHARD, ids_sha256, plan_shards, shard_name
from ifcn.pipeline.sources.voc import load_voc_image, read_split
from ifcn.pipeline.synth import SynthConfig, make_synth_dataset
from ifcn.pipeline.verify import verify_output
from ifcn.shards.manifest import MANIFEST_NAME, load_manifest
from ifcn.shards.reader import read_shard
from ifcn.shards.records import Sample

#: The parameters of conftest's `train_shards` (rerunning them into a copy of that folder is "the same command").
FIXTURE_JOB = {"split": "train", "clicks": ClickConfig(pairs=3), "images_per_shard": 4, "progress": False}


def _job(root: Path, out: Path, **changes) -> SampleJob:
    return SampleJob(voc_root=root, out=out, **{**FIXTURE_JOB, **changes})


def _run(job: SampleJob):
    return run_sample(job, log=lambda message: None)


def shard_digests(out: Path) -> dict[str, str]:
    """sha256 of every file under a final shard name in `out` (from the folder, not from the manifest)."""
    return {p.name: file_sha256(p)[0] for p in sorted(out.iterdir()) if p.suffix in (".tar", ".h5")}


def read_all(out: Path) -> list[Sample]:
    return [s for e in load_manifest(out).shards for s in read_shard(out / e.path)]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_plan_gives_voc_train_at_least_16_shards() -> None:
    ids = [f"2008_{i:06d}" for i in range(1464)]
    plan = plan_shards(ids, DEFAULT_IMAGES_PER_SHARD, seed=7)
    assert len(plan) == 23 >= 16
    assert [s.index for s in plan] == list(range(23))
    assert [k for s in plan for k in s.ids] == ids
    assert len(plan[-1].ids) == 1464 - 22 * 64 and {s.seed for s in plan} == {7}
    assert shard_name("train", 3, ".tar") == "train-000003.tar"
    assert ids_sha256(ids) != ids_sha256(ids[::-1])
    with pytest.raises(ValueError, match="images_per_shard"):
        plan_shards(ids, 0, 0)


@pytest.fixture(scope="module")
def one_and_two_workers(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same job on a fresh local cluster of 1 and of 2 worker processes (the default, no --scheduler)."""
    outs = tuple(tmp_path_factory.mktemp(f"w{n}") for n in (1, 2))
    for n, out in zip((1, 2), outs, strict=True):
        _run(_job(synth_root, out, workers=n))
    return outs


def test_same_seed_gives_identical_bytes_with_1_and_2_workers(one_and_two_workers: tuple[Path, Path]) -> None:
    one, two = one_and_two_workers
    assert len(shard_digests(one)) == 3
    assert shard_digests(one) == shard_digests(two)
    assert (one / MANIFEST_NAME).read_bytes() == (two / MANIFEST_NAME).read_bytes()
    assert verify_output(one).ok


def test_another_seed_gives_other_clicks_on_the_same_images(synth_root: Path, train_shards: Path, dask_address: str,
                                                            tmp_path: Path) -> None:
    _run(_job(synth_root, tmp_path, seed=1, scheduler=dask_address))
    base, other = read_all(train_shards), read_all(tmp_path)
    assert [s.key for s in base] == [s.key for s in other]
    assert all(a.image_bytes == b.image_bytes and a.object_png == b.object_png
               for a, b in zip(base, other, strict=True))
    assert [s.clicks for s in base] != [s.clicks for s in other]
    assert load_manifest(tmp_path).params["seed"] == 1


@pytest.mark.parametrize("fixture", ["train_shards", "train_shards_h5"])
def test_shards_hold_exactly_what_was_sampled(fixture: str, synth_root: Path, request: pytest.FixtureRequest) -> None:
    out: Path = request.getfixturevalue(fixture)
    ids = read_split(synth_root, "train")
    expected = [make_sample(load_voc_image(synth_root, key), ClickConfig(pairs=3), 0) for key in ids]
    got = read_all(out)
    assert got == expected
    assert all(np.array_equal(g.object_map(), e.object_map()) for g, e in zip(got, expected, strict=True))
    assert any(255 in s.object_map() for s in got)


def test_manifest_describes_the_shards(synth_root: Path, train_shards: Path) -> None:
    m = load_manifest(train_shards)
    samples = read_all(train_shards)
    ids = read_split(synth_root, "train")
    assert (m.source.split, m.source.num_ids, m.source.ids_sha256) == ("train", 12, ids_sha256(ids))
    assert m.params == {"clicks": ClickConfig(pairs=3).to_dict(), "seed": 0, "format": "webdataset",
                        "images_per_shard": 4}
    assert [e.path for e in m.shards] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert (m.totals.images, m.totals.objects, m.totals.pairs) == (
        len(samples), sum(len(s.clicks.objects) for s in samples), sum(s.clicks.num_pairs for s in samples))
    assert m.totals.pairs == 3 * m.totals.objects > 0
    assert m.totals.skipped_objects == dict(Counter(o.reason for s in samples for o in s.clicks.skipped))
    assert (m.shards[0].first_key, m.shards[-1].last_key) == (ids[0], ids[-1])
    assert m.totals.skipped_images == ()


def test_rerun_keeps_valid_shards_and_rewrites_the_rest(synth_root: Path, train_shards: Path, dask_address: str,
                                                        tmp_path: Path) -> None:
    out = Path(shutil.copytree(train_shards, tmp_path / "out"))
    reference = shard_digests(train_shards)
    (out / "train-000000.tar").unlink()
    data = bytearray((out / "train-000001.tar").read_bytes())
    data[2000] ^= 0xFF  # same size, other content
    (out / "train-000001.tar").write_bytes(bytes(data))
    (out / ".tmp-train-000000.tar.deadbeef").write_bytes(b"half a shard")
    kept_stat = (out / "train-000002.tar").stat()

    result = _run(_job(synth_root, out, scheduler=dask_address))
    assert (result.shards_written, result.shards_kept) == (2, 1)
    assert (out / "train-000002.tar").stat().st_mtime_ns == kept_stat.st_mtime_ns
    assert shard_digests(out) == reference
    assert (out / MANIFEST_NAME).read_bytes() == (train_shards / MANIFEST_NAME).read_bytes()
    assert not list(out.glob(".tmp-*"))

    (out / SIDECAR_DIR / "train-000002.tar.json").unlink()  # killed between the shard's rename and its sidecar
    result = _run(_job(synth_root, out, scheduler=dask_address))
    assert (result.shards_written, result.shards_kept) == (1, 2)
    assert shard_digests(out) == reference


def test_other_parameters_are_refused_without_overwrite(synth_root: Path, train_shards: Path, dask_address: str,
                                                        tmp_path: Path) -> None:
    out = Path(shutil.copytree(train_shards, tmp_path / "out"))
    (out / "notes.txt").write_text("the user's own file")
    before = snapshot(out)
    with pytest.raises(JobMismatchError, match=r"params\.clicks\.pairs: 3 -> 2.*--overwrite"):
        _run(_job(synth_root, out, clicks=ClickConfig(pairs=2), scheduler=dask_address))
    with pytest.raises(JobMismatchError, match=r"params\.format: 'webdataset' -> 'hdf5'"):
        _run(_job(synth_root, out, format="hdf5", scheduler=dask_address))
    assert snapshot(out) == before

    result = _run(_job(synth_root, out, format="hdf5", overwrite=True, scheduler=dask_address))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        MANIFEST_NAME, "notes.txt", "train-000000.h5", "train-000001.h5", "train-000002.h5"]
    assert result.manifest.format == "hdf5" and verify_output(out).ok
    assert json.loads((out / JOB_FILE).read_text())["params"]["format"] == "hdf5"


def test_a_folder_with_shards_of_an_unknown_job_is_refused(synth_root: Path, train_shards: Path,
                                                          tmp_path: Path) -> None:
    out = Path(shutil.copytree(train_shards, tmp_path / "out"))
    (out / JOB_FILE).unlink()
    with pytest.raises(JobMismatchError, match="unknown job"):
        _run(_job(synth_root, out))


def test_verify_names_corrupt_missing_and_miscounted_shards(train_shards: Path, tmp_path: Path) -> None:
    out = Path(shutil.copytree(train_shards, tmp_path / "out"))
    assert verify_output(out).ok
    with open(out / "train-000001.tar", "r+b") as f:
        f.seek(700)
        f.write(b"\x00\x01")
    (out / "train-000002.tar").unlink()
    problems = {p.path: p.problem for p in verify_output(out).problems}
    assert set(problems) == {"train-000001.tar", "train-000002.tar"}
    assert problems["train-000001.tar"].startswith("sha256") and problems["train-000002.tar"] == "missing"

    manifest = json.loads((train_shards / MANIFEST_NAME).read_text())
    manifest["shards"][0]["samples"] += 1  # checksum still right, but the manifest lies about the content
    manifest["totals"]["images"] += 1
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    problems = {p.path: p.problem for p in verify_output(out).problems}
    assert "samples, objects, pairs" in problems["train-000000.tar"]


def test_inspect_draws_the_sample_with_its_clicks(train_shards: Path, tmp_path: Path) -> None:
    first = read_all(train_shards)[0]
    view = inspect_output(train_shards, tmp_path / "a.png")
    assert view.key == first.key and view.object_id == first.clicks.objects[0].id
    assert f"strategy {first.clicks.objects[0].pairs[0].strategy}" in view.title
    png = np.asarray(Image.open(tmp_path / "a.png").convert("RGB")).astype(int)
    height, width = first.image().shape[:2]
    assert (png.shape[1], png.shape[0]) == output_size(height, width)
    r, g, b = png[..., 0], png[..., 1], png[..., 2]
    assert ((g > 200) & (r < 60) & (b < 60)).any() and ((r > 200) & (g < 60) & (b < 60)).any()

    last = read_all(train_shards)[-1]
    assert inspect_output(train_shards, tmp_path / "b.png", key=last.key).key == last.key
    with pytest.raises(ValueError, match="no sample with key"):
        inspect_output(train_shards, tmp_path / "c.png", key="1999_000000")
    with pytest.raises(ValueError, match="has no clicks"):
        inspect_output(train_shards, tmp_path / "c.png", object_id=254)


@pytest.fixture(scope="module")
def larger_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough images that a one-worker run takes a few seconds, so that it can be killed half way."""
    return make_synth_dataset(tmp_path_factory.mktemp("larger"), SynthConfig(train_images=96, val_images=0,
                                                                             long_side=320))


def _final_shards(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("train-*.tar") if not p.name.startswith("."))


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(larger_root: Path, dask_address: str,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "ifcn.pipeline.prep_cli", "sample", "--voc-root", str(larger_root), "--split",
               "train", "--pairs", "3", "--images-per-shard", "2", "--workers", "1", "--no-progress", "--out", str(out)]
    log = (tmp_path / "log.txt").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((out / SIDECAR_DIR).glob("train-*.json")):  # a shard and then its sidecar are final
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.monotonic() < deadline, "no shard was finished in time"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask worker processes
        proc.wait()
    assert not (out / MANIFEST_NAME).exists(), "the run finished before it could be killed"
    finals = _final_shards(out)
    assert 1 <= len(finals) < 48
    for shard in finals:  # whatever stands under a final name is a complete shard
        samples = list(read_shard(shard))
        assert len(samples) == 2
        found = read_sidecar(out / SIDECAR_DIR / f"{shard.name}.json")
        if found is not None:
            assert (found[1].entry.sha256, found[1].entry.bytes) == file_sha256(shard)

    resumed = _run(_job(larger_root, out, images_per_shard=2, scheduler=dask_address))
    assert resumed.shards_kept >= 1 and resumed.shards_written + resumed.shards_kept == 48
    fresh = tmp_path / "fresh"
    _run(_job(larger_root, fresh, images_per_shard=2, scheduler=dask_address))
    assert shard_digests(out) == shard_digests(fresh)
    assert (out / MANIFEST_NAME).read_bytes() == (fresh / MANIFEST_NAME).read_bytes()
    assert not list(out.glob(".tmp-*")) and verify_output(out).ok


def test_job_options_are_checked(synth_root: Path, tmp_path: Path) -> None:
    cases = (({"format": "zip"}, "unknown shard format"), ({"images_per_shard": 0}, "--images-per-shard"),
             ({"workers": 0}, "--workers"), ({"seed": -1}, "--seed"), ({"on_error": "ignore"}, "--on-error"))
    for changes, flag in cases:
        with pytest.raises(ValueError, match=flag):
            _job(synth_root, tmp_path / "out", **changes)
    assert not (tmp_path / "out").exists()

