"""`ifcn-prep` through its CLI: bad input and bad flags, verify, inspect, synth, and a real Dask cluster."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import dask
import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import ifcn.pipeline.orchestrate as orchestrate
from ifcn.cores import usable_cores
from ifcn.io import file_sha256
from ifcn.pipeline.prep_cli import main
from ifcn.pipeline.sources.voc import read_split
from ifcn.pipeline.synth import SYNTH_MARKER
from ifcn.shards.manifest import MANIFEST_NAME, load_manifest
from tests.ports import free_port
from tests.shard_sets import http_server


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def sample(root: Path, out: Path, *extra: str | Path, scheduler: str | None = None) -> Result:
    common = ["sample", "--voc-root", root, "--split", "train", "--pairs", "2", "--out", out, "--no-progress"]
    return invoke(*common, *(["--scheduler", scheduler] if scheduler else []), *extra)


def written(out: Path) -> list[str]:
    """Shards and manifest in `out` (what must not exist after a failed run)."""
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir() if p.suffix in (".tar", ".h5") or p.name == MANIFEST_NAME)


# Each case damages one image (or the layout) of a private copy of the synthetic set and returns the file at fault.
def _drop(rel: str) -> Callable[[Path, str], Path]:
    def damage(root: Path, key: str) -> Path:
        path = root / rel.format(key=key)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return path
    return damage


def _resized_mask(root: Path, key: str) -> Path:
    path = root / "SegmentationClass" / f"{key}.png"
    with Image.open(path) as mask:
        mask.resize((mask.width + 3, mask.height)).save(path)
    return path


def _rgb_mask(root: Path, key: str) -> Path:
    path = root / "SegmentationObject" / f"{key}.png"
    with Image.open(path) as mask:
        mask.convert("RGB").save(path)
    return path


def _truncated_jpeg(root: Path, key: str) -> Path:
    path = root / "JPEGImages" / f"{key}.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _garbage_png(root: Path, key: str) -> Path:
    path = root / "SegmentationObject" / f"{key}.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return path


LAYOUT_CASES = {
    "missing_folder": (_drop("SegmentationObject"), "missing folder"),
    "missing_split_file": (_drop("ImageSets/Segmentation/train.txt"), "missing split file"),
}
IMAGE_CASES = {
    "missing_image": (_drop("JPEGImages/{key}.jpg"), "missing_file"),
    "missing_mask": (_drop("SegmentationObject/{key}.png"), "missing_file"),
    "size_mismatch": (_resized_mask, "size_mismatch"),
    "not_palette_mask": (_rgb_mask, "not_index_mask"),
    "corrupt_jpeg": (_truncated_jpeg, "corrupt_jpeg"),
    "corrupt_png": (_garbage_png, "corrupt_png"),
}


@pytest.mark.parametrize("case", sorted(LAYOUT_CASES))
def test_a_broken_layout_stops_before_any_output(case: str, voc_copy: Path, tmp_path: Path) -> None:
    damage, reason = LAYOUT_CASES[case]
    bad = damage(voc_copy, "")
    for policy in ("fail", "skip"):
        result = sample(voc_copy, tmp_path / "out", "--on-error", policy)
        assert result.exit_code == 1, result.output
        assert str(bad) in result.output and reason in result.output and "Fix:" in result.output
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_a_bad_image_fails_or_is_skipped(case: str, voc_copy: Path, tmp_path: Path, dask_address: str) -> None:
    damage, kind = IMAGE_CASES[case]
    ids = read_split(voc_copy, "train")
    key = ids[2]
    bad = damage(voc_copy, key)

    failed = tmp_path / "failed"
    result = sample(voc_copy, failed, "--on-error", "fail", "--images-per-shard", "64", scheduler=dask_address)
    assert result.exit_code == 1, result.output
    assert str(bad) in result.output and "Fix:" in result.output
    assert written(failed) == [] and not list(failed.glob(".tmp-*"))

    skipped = tmp_path / "skipped"
    result = sample(voc_copy, skipped, "--on-error", "skip", "--images-per-shard", "4", scheduler=dask_address)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(skipped)
    assert manifest.totals.images == len(ids) - 1
    [record] = manifest.totals.skipped_images
    assert (record.key, record.file) == (key, str(bad)) and record.reason.startswith(f"{kind}: ")
    assert "skipped images: 1" in result.output

    # The same job rerun under `fail` does not keep the shard that lacks the image: it stops on that image.
    result = sample(voc_copy, skipped, "--on-error", "fail", "--images-per-shard", "4", scheduler=dask_address)
    assert result.exit_code == 1 and str(bad) in result.output, result.output


def test_every_missing_file_is_counted_before_the_run(voc_copy: Path, tmp_path: Path) -> None:
    ids = read_split(voc_copy, "train")
    for key in ids[3:6]:
        (voc_copy / "JPEGImages" / f"{key}.jpg").unlink()
    result = sample(voc_copy, tmp_path / "out")
    assert result.exit_code == 1 and f"{ids[3]}.jpg" in result.output and "and 2 more ids" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--pairs", "0"], "--pairs must be at least 1"),
    (["--pairs", "-3"], "--pairs must be at least 1"),
    (["--format", "zip"], "Invalid value for '--format'"),
    (["--images-per-shard", "0"], "--images-per-shard must be"),
    (["--workers", "0"], "--workers must be"),
    (["--d", "4"], "--d must be greater than --d-margin"),
    (["--split", "test"], "--split must be one of train, val, trainval for --source voc"),
])
def test_bad_flags_are_named_and_write_nothing(flags: list[str], message: str, synth_root: Path,
                                               tmp_path: Path) -> None:
    result = sample(synth_root, tmp_path / "out", *flags)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_folder_is_refused(synth_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    result = sample(synth_root, blocker / "sub")
    assert result.exit_code == 1 and "is a file" in result.output and "--out" in result.output, result.output
    assert blocker.read_text() == "not a folder"
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = sample(synth_root, locked / "out")
        assert result.exit_code == 1 and "no permission" in result.output
        assert list(locked.iterdir()) == []


def test_changed_parameters_are_refused_and_nothing_changes(train_shards: Path, synth_root: Path, tmp_path: Path,
                                                            dask_address: str) -> None:
    out = Path(shutil.copytree(train_shards, tmp_path / "out"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = sample(synth_root, out, "--images-per-shard", "4", scheduler=dask_address)  # 2 pairs instead of 3
    assert result.exit_code == 1 and "params.clicks.pairs: 3 -> 2" in result.output and "--overwrite" in result.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_sample_prints_a_summary_and_warns_about_incomplete_voc(voc_copy: Path, tmp_path: Path,
                                                               dask_address: str) -> None:
    (voc_copy / SYNTH_MARKER).unlink(missing_ok=True)  # now it looks like a (much too small) real VOC copy
    result = sample(voc_copy, tmp_path / "a", scheduler=dask_address)
    assert result.exit_code == 0, result.output
    assert "lists 12 images, VOC 2012 has 1464" in result.output
    m = load_manifest(tmp_path / "a")
    for text in (f"{m.totals.images} images", f"{m.totals.objects} objects", f"{m.totals.pairs} pairs",
                 "objects/s", f"in {len(m.shards)} webdataset shards", str(tmp_path / "a" / MANIFEST_NAME)):
        assert text in result.output
    (voc_copy / SYNTH_MARKER).write_text("{}")
    result = sample(voc_copy, tmp_path / "b", scheduler=dask_address)
    assert result.exit_code == 0 and "VOC 2012 has" not in result.output


def test_verify_cli_reports_each_bad_shard(train_shards: Path, tmp_path: Path) -> None:
    out = Path(shutil.copytree(train_shards, tmp_path / "out"))
    result = invoke("verify", out)
    assert result.exit_code == 0 and "OK" in result.output
    (out / "train-000002.tar").unlink()
    with open(out / "train-000000.tar", "r+b") as f:
        f.write(b"x")
    result = invoke("verify", out)
    assert result.exit_code == 1
    bad = [line for line in result.output.splitlines() if line.startswith("BAD ")]
    assert bad == ["BAD train-000000.tar: " + bad[0].split(": ", 1)[1], "BAD train-000002.tar: missing"]
    assert invoke("verify", tmp_path / "nowhere").exit_code == 1


def test_verify_streams_a_remote_dataset_through_the_one_reader(train_shards: Path, tmp_path: Path) -> None:
    out = Path(shutil.copytree(train_shards, tmp_path / "out"))
    with http_server(out) as base:
        url = base.rstrip("/")
        for location in (f"{url}/{MANIFEST_NAME}", f"{url}/", f"pipe:cat {out / MANIFEST_NAME}"):
            result = invoke("verify", location)
            assert result.exit_code == 0 and f"OK: every shard in {location} matches" in result.output, result.output
        result = invoke("inspect", f"{url}/", "--png", tmp_path / "remote.png")
        assert result.exit_code == 0 and (tmp_path / "remote.png").is_file(), result.output
        (out / "train-000002.tar").unlink()
        with open(out / "train-000000.tar", "r+b") as f:
            f.seek(700)
            f.write(b"\x00\x01")
        result = invoke("verify", f"{url}/{MANIFEST_NAME}")
    assert result.exit_code == 1, result.output
    assert "BAD train-000000.tar: sha256" in result.output
    assert f"BAD train-000002.tar: could not be read from {url}/train-000002.tar" in result.output
    result = invoke("verify", "http://127.0.0.1:9/train-{000000..000001}.tar")
    assert result.exit_code == 1 and "verify compares shards with their manifest" in result.output


def test_verify_and_inspect_name_their_input_shards() -> None:
    for command in ("verify", "inspect"):
        result = invoke(command, "--help")
        assert "--shards" in result.output and "OUT" not in result.output, result.output


def test_workers_default_to_the_usable_cores_and_never_more_than_shards(synth_root: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    @contextlib.contextmanager
    def no_cluster(scheduler: str | None, workers: int) -> Iterator[None]:
        asked.append(workers)
        raise ConnectionError("no cluster in this test")
        yield

    monkeypatch.setattr(orchestrate, "dask_client", no_cluster)
    for images_per_shard, expected in (("1", min(usable_cores(), 12)), ("12", 1)):  # 12 shards, then 1
        result = sample(synth_root, tmp_path / "out", "--images-per-shard", images_per_shard)
        assert result.exit_code == 1 and "no cluster in this test" in result.output, result.output
        assert asked[-1] == expected
    assert f"({usable_cores()} here)" in " ".join(invoke("sample", "--help").output.split())


def test_inspect_cli_writes_a_png(train_shards: Path, tmp_path: Path) -> None:
    result = invoke("inspect", train_shards, "--png", tmp_path / "x.png", "--pair", "1")
    assert result.exit_code == 0 and "strategy" in result.output, result.output
    with Image.open(tmp_path / "x.png") as png:
        assert png.format == "PNG" and np.asarray(png).std() > 0
    result = invoke("inspect", train_shards, "--png", tmp_path / "y.png", "--pair", "9")
    assert result.exit_code == 1 and "pairs 0..2" in result.output
    result = invoke("inspect", f"{train_shards}/train-{{000000..000001}}.tar", "--png", tmp_path / "z.png")
    assert result.exit_code == 0 and (tmp_path / "z.png").is_file()


def test_synth_cli_makes_a_voc_tree(tmp_path: Path) -> None:
    args = ["synth", tmp_path, "--train-images", "2", "--val-images", "1", "--seed", "3", "--long-side", "64"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "VOCdevkit" / "VOC2012"
    assert [len(read_split(root, split)) for split in ("train", "val", "trainval")] == [2, 1, 3]
    result = invoke(*args)
    assert result.exit_code == 1 and "already exists" in result.output


@contextlib.contextmanager
def _process(*args: str) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_sample_runs_on_an_existing_dask_cluster(synth_root: Path, val_shards: Path, tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    with _process("scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"), \
            _process("worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"):
        # run_sample waits for a worker to join; the job is conftest's `val_shards`, so its bytes must match.
        result = invoke("sample", "--voc-root", synth_root, "--split", "val", "--pairs", "1", "--images-per-shard",
                        "4", "--out", tmp_path / "out", "--scheduler", address, "--no-progress")
    assert result.exit_code == 0, result.output
    assert [file_sha256(tmp_path / "out" / e.path) for e in load_manifest(tmp_path / "out").shards] == \
           [file_sha256(val_shards / e.path) for e in load_manifest(val_shards).shards]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        result = invoke("sample", "--voc-root", synth_root, "--split", "val", "--out", tmp_path / "x", "--scheduler",
                        f"tcp://127.0.0.1:{free_port()}", "--no-progress")
    assert result.exit_code == 1 and "could not reach the Dask scheduler" in result.output
    assert not (tmp_path / "x").exists()  # the folder the lock created goes again: nothing was written
