"""The `ifcn-prep sample` job's safety: `--overwrite`, one writer per folder, verify, a full disk, option limits
(from issue 13, numbered by its items; the code before the fix failed each test).

2. `--overwrite` removes only what an earlier run recorded, and never leaves OUT without a dataset.
3. One writer per output folder: a second `sample` is refused, naming the first; `kill -9` leaves no stale lock.
7. `verify` refuses a lying manifest (counts, paths, duplicates) and samples that do not fit their image.
8. `verify` reports stray files; a finished run removes the temporaries its killed workers left.
10. A full disk stops `sample` with one line naming the folder and the space needed; what was written stays valid.
13. Absurd option values are refused with their limit.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import ifcn.pipeline.orchestrate as orchestrate
import ifcn.pipeline.replace as replace
from ifcn.disk import DiskFullError
from ifcn.io import file_sha256
from ifcn.lock import FolderLockedError
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.prep_cli import main
from ifcn.pipeline.prep_resume import SIDECAR_DIR, read_sidecar
from ifcn.pipeline.replace import ASIDE_DIR, JOURNAL, STAGING_DIR
from ifcn.pipeline.sources.voc import read_split
from ifcn.pipeline.verify import verify_output
from ifcn.shards.formats import get_format
from ifcn.shards.formats.webdataset import WebDatasetFormat
from ifcn.shards.manifest import MANIFEST_NAME, load_manifest
from ifcn.shards.reader import read_shard
from ifcn.shards.records import ClickPair, ObjectClicks

#: conftest's `train_shards` job: rerunning it into a copy of that folder is "the same command".
SAME = ("--pairs", "3", "--images-per-shard", "4")
#: The same images with other parameters: a job that `--overwrite` replaces the fixture's with.
OTHER = ("--pairs", "2", "--images-per-shard", "4")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def sample(root: Path, out: Path, *extra: str | Path, scheduler: str | None = None) -> Result:
    common = ["sample", "--voc-root", root, "--split", "train", "--out", out, "--no-progress"]
    return invoke(*common, *(["--scheduler", scheduler] if scheduler else []), *extra)


def job(root: Path, out: Path, scheduler: str, **changes) -> SampleJob:
    options = {"split": "train", "clicks": ClickConfig(pairs=3), "images_per_shard": 4, "progress": False,
               "scheduler": scheduler, **changes}
    return SampleJob(voc_root=root, out=out, **options)


def snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in skip}


def copy(shards: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(shards, tmp_path / "out"))


# --- 2. --overwrite: only what a run recorded, and never a folder without a dataset ---------------------------------

def test_overwrite_keeps_user_files_that_merely_look_like_shards(train_shards: Path, synth_root: Path,
                                                                    tmp_path: Path, dask_address: str) -> None:
    out = copy(train_shards, tmp_path)
    users = {"photos-201901.tar": b"a tar of photos", "train-000007.tar": b"not a shard of any run",
             ".tmp-holiday.jpg": b"jpeg", ".tmp-notes.txt.1a2b3c4d": b"an editor's backup"}
    for name, data in users.items():
        (out / name).write_bytes(data)
    (out / ".tmp-train-000001.tar.0badf00d").write_bytes(b"half a shard")  # the tool's own: goes
    result = sample(synth_root, out, *OTHER, "--overwrite", scheduler=dask_address)
    assert result.exit_code == 0, result.output
    assert {name: (out / name).read_bytes() for name in users} == users
    assert not (out / ".tmp-train-000001.tar.0badf00d").exists()
    assert load_manifest(out).params["clicks"]["pairs"] == 2
    report = verify_output(out)
    assert report.ok and set(report.other_files) == set(users)


@pytest.mark.parametrize("name", ["train-000000.tar", MANIFEST_NAME])
def test_a_user_file_where_a_shard_goes_is_refused_not_replaced(name: str, synth_root: Path, tmp_path: Path,
                                                                   dask_address: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(b"the user's")
    for extra in ((), ("--overwrite",)):
        result = sample(synth_root, out, *SAME, *extra, scheduler=dask_address)
        assert result.exit_code == 1 and f"{out / name} is in the way" in result.output, result.output
        assert (out / name).read_bytes() == b"the user's"


def test_a_failed_overwrite_run_leaves_the_old_dataset_whole(voc_copy: Path, synth_root: Path, tmp_path: Path,
                                                                dask_address: str) -> None:
    out = tmp_path / "out"
    assert sample(voc_copy, out, *SAME, scheduler=dask_address).exit_code == 0
    before = snapshot(out)
    key = read_split(voc_copy, "train")[5]
    jpeg = voc_copy / "JPEGImages" / f"{key}.jpg"
    original, stat = jpeg.read_bytes(), jpeg.stat()
    jpeg.write_bytes(original[:300])  # a corrupt image stops the `fail` run half way

    result = sample(voc_copy, out, *OTHER, "--overwrite", scheduler=dask_address)
    assert result.exit_code == 1 and str(jpeg) in result.output and "unchanged" in result.output, result.output
    assert snapshot(out, skip=(STAGING_DIR,)) == before
    jpeg.write_bytes(original)  # repaired as it was (a changed input would make its old shard stale: issue 21 item 5)
    os.utime(jpeg, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    report = verify_output(out)
    assert [p.path for p in report.problems] == [STAGING_DIR]  # the old dataset is fine; the unfinished run is said
    result = sample(voc_copy, out, *SAME, scheduler=dask_address)  # the old command again: it drops the other run
    assert result.exit_code == 0 and "removing an unfinished --overwrite run" in result.output, result.output
    assert snapshot(out) == before and verify_output(out).ok

    jpeg.write_bytes(original[:300])
    result = sample(voc_copy, out, *OTHER, "--overwrite", scheduler=dask_address)
    assert result.exit_code == 1 and snapshot(out, skip=(STAGING_DIR,)) == before
    shutil.copyfile(synth_root / "JPEGImages" / f"{key}.jpg", jpeg)
    result = sample(voc_copy, out, *OTHER, "--overwrite", scheduler=dask_address)
    assert result.exit_code == 0, result.output
    assert load_manifest(out).params["clicks"]["pairs"] == 2 and verify_output(out).ok
    assert not any((out / name).exists() for name in (STAGING_DIR, ASIDE_DIR, JOURNAL))


class Killed(BaseException):
    """Stands for `kill -9` in the middle of the swap: nothing after it runs."""


def test_a_swap_killed_half_way_is_finished_by_the_next_run(train_shards: Path, synth_root: Path, tmp_path: Path,
                                                               dask_address: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    reference = tmp_path / "reference"
    run_sample(job(synth_root, reference, dask_address, clicks=ClickConfig(pairs=2)), log=lambda m: None)
    # The swap renames: 5 old entries aside (job file, manifest, 3 shards; sidecars), then the staged ones in.
    for kill_at in (1, 4, 8, 10):
        out = Path(shutil.copytree(train_shards, tmp_path / f"out-{kill_at}"))
        calls = []

        def dying_replace(src: Path, dst: Path, kill_at: int = kill_at, calls: list = calls) -> None:
            calls.append(src)
            if len(calls) == kill_at:
                raise Killed
            os.replace(src, dst)

        monkeypatch.setattr(replace, "os", type("FakeOs", (), {"replace": staticmethod(dying_replace)}))
        with pytest.raises(Killed):
            run_sample(job(synth_root, out, dask_address, clicks=ClickConfig(pairs=2), overwrite=True),
                       log=lambda m: None)
        monkeypatch.undo()
        assert (out / JOURNAL).is_file()
        result = run_sample(job(synth_root, out, dask_address, clicks=ClickConfig(pairs=2)), log=lambda m: None)
        assert result.shards_kept == 3, kill_at
        assert (out / MANIFEST_NAME).read_bytes() == (reference / MANIFEST_NAME).read_bytes()
        assert verify_output(out).ok


# --- 3. one writer per folder ----------------------------------------------------------------------------------------

def test_a_second_job_on_the_same_out_is_refused_while_the_first_runs(synth_root: Path, tmp_path: Path,
                                                                        dask_address: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    refusals: list[str] = []
    run_tasks = orchestrate._run_tasks

    def run_tasks_and_start_a_second_job(*args, **kwargs):
        for overwrite in (False, True):  # the second job would delete the first one's temporaries, or its shards
            with pytest.raises(FolderLockedError) as info:
                run_sample(job(synth_root, out, dask_address, overwrite=overwrite), log=lambda m: None)
            refusals.append(str(info.value))
        return run_tasks(*args, **kwargs)

    monkeypatch.setattr(orchestrate, "_run_tasks", run_tasks_and_start_a_second_job)
    run_sample(job(synth_root, out, dask_address), log=lambda m: None)
    assert len(refusals) == 2
    assert all(f"ifcn-prep sample (pid {os.getpid()} on host" in m and str(out) in m for m in refusals)
    assert verify_output(out).ok


HOLD_LOCK = """
import sys, time
from pathlib import Path
from ifcn.lock import output_lock
with output_lock(Path(sys.argv[1]), "ifcn-prep sample"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_the_lock_dies_with_its_holder_so_kill_9_leaves_none(synth_root: Path, tmp_path: Path,
                                                                dask_address: str) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = sample(synth_root, out, *SAME, scheduler=dask_address)
        assert result.exit_code == 1 and f"pid {holder.pid}" in result.output, result.output
        assert "being written by ifcn-prep sample" in result.output
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    result = sample(synth_root, out, *SAME, scheduler=dask_address)
    assert result.exit_code == 0, result.output


# --- 7. verify refuses a lying manifest and samples that do not fit their image -------------------------------------

def _edit_manifest(out: Path, edit) -> None:
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    edit(manifest)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))


def _inflate_totals(m: dict) -> None:
    m["totals"]["pairs"] += 30


def _inflate_a_shard(m: dict) -> None:  # totals agree with the shards' entries; the shard itself does not
    m["shards"][0]["pairs"] += 30
    m["totals"]["pairs"] += 30


def _leave_the_folder(m: dict) -> None:
    m["shards"][0]["path"] = "../../train-000000.tar"


def _list_a_shard_twice(m: dict) -> None:
    m["shards"].append(m["shards"][0])
    for field in ("images", "objects", "pairs"):
        m["totals"][field] += m["shards"][0]["samples" if field == "images" else field]


LYING_MANIFESTS = {
    "inflated_totals": (_inflate_totals, "its totals say"),
    "inflated_shard_counts": (_inflate_a_shard, "BAD train-000000.tar: holds (samples, objects, pairs"),
    "path_leaving_the_folder": (_leave_the_folder, "is not a plain file name in the manifest's folder"),
    "shard_listed_twice": (_list_a_shard_twice, "is listed twice"),
}


@pytest.mark.parametrize("case", sorted(LYING_MANIFESTS))
def test_verify_refuses_a_manifest_that_disagrees_with_its_shards(case: str, train_shards: Path,
                                                                   tmp_path: Path) -> None:
    edit, message = LYING_MANIFESTS[case]
    out = copy(train_shards, tmp_path)
    _edit_manifest(out, edit)
    result = invoke("verify", out)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "OK" not in result.output


def _rewrite_first_sample(out: Path, change) -> None:
    """Rewrite shard 0 with its first sample changed (a new, valid digest) and the manifest's entry to match, as a
    buggy or hostile writer would: only the content checks can catch it."""
    path = out / "train-000000.tar"
    samples = list(read_shard(path))
    samples[0] = change(samples[0])
    get_format("webdataset").write(path, samples)
    sha256, size = file_sha256(path)

    def match(m: dict) -> None:
        m["shards"][0].update(sha256=sha256, bytes=size)
    _edit_manifest(out, match)


def _click_outside(s):
    obj = s.clicks.objects[0]
    pair = ClickPair(obj.pairs[0].strategy, ((s.clicks.height + 3, 0),), obj.pairs[0].neg)
    objects = (ObjectClicks(obj.id, obj.cls, obj.area, (pair, *obj.pairs[1:])), *s.clicks.objects[1:])
    return dataclasses.replace(s, clicks=dataclasses.replace(s.clicks, objects=objects))


def _taller_than_its_masks(s):
    return dataclasses.replace(s, clicks=dataclasses.replace(s.clicks, height=s.clicks.height + 40))


def _second_copy_of_a_key(s):  # sample 0 of shard 0 takes the key of sample 0 of shard 1
    return dataclasses.replace(s, key="KEY", clicks=dataclasses.replace(s.clicks, key="KEY"))


@pytest.mark.parametrize(("change", "message"), [
    (_click_outside, "outside the"),
    (_taller_than_its_masks, "its clicks were drawn on"),
    (_second_copy_of_a_key, "appears twice in the dataset"),
])
def test_verify_refuses_samples_that_do_not_fit_their_image(change, message: str, train_shards: Path,
                                                             tmp_path: Path) -> None:
    out = copy(train_shards, tmp_path)
    if change is _second_copy_of_a_key:
        duplicate = next(iter(read_shard(out / "train-000001.tar"))).key
        change = lambda s: dataclasses.replace(s, key=duplicate,  # noqa: E731
                                               clicks=dataclasses.replace(s.clicks, key=duplicate))
        message = f"BAD train-000001.tar: sample {duplicate!r} appears twice in the dataset"
    _rewrite_first_sample(out, change)
    result = invoke("verify", out)
    assert result.exit_code == 1 and message in result.output, result.output


# --- 8. stray files -------------------------------------------------------------------------------------------------

def test_verify_reports_strays_and_a_finished_run_removes_its_temporaries(train_shards: Path, synth_root: Path,
                                                                            tmp_path: Path, dask_address: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = copy(train_shards, tmp_path)
    dead_worker = ".tmp-train-000001.tar.0badf00d"  # what a Dask worker killed while writing a shard leaves
    (out / dead_worker).write_bytes(b"half a shard")
    (out / SIDECAR_DIR / ".tmp-train-000001.tar.json.0badf00d").write_bytes(b"{")
    (out / "notes.txt").write_text("the user's")
    result = invoke("verify", out)
    assert result.exit_code == 1, result.output
    assert f"BAD {dead_worker}: temporary file of a writer that was killed" in result.output
    assert f"BAD {SIDECAR_DIR}/.tmp-train-000001.tar.json.0badf00d" in result.output
    assert "NOTE notes.txt: not part of the dataset" in result.output

    # The same job again; a worker dies during it, leaving a temporary after the run's start-up clean-up.
    run_tasks = orchestrate._run_tasks

    def tasks_with_a_dying_worker(*args, **kwargs):
        (out / ".tmp-train-000002.tar.5ca1ab1e").write_bytes(b"half a shard")
        return run_tasks(*args, **kwargs)

    monkeypatch.setattr(orchestrate, "_run_tasks", tasks_with_a_dying_worker)
    result = run_sample(job(synth_root, out, dask_address), log=lambda m: None)
    assert result.shards_kept == 3
    assert not list(out.glob(".tmp-*")) and not list((out / SIDECAR_DIR).glob(".tmp-*"))
    assert (out / "notes.txt").read_text() == "the user's"
    result = invoke("verify", out)
    assert result.exit_code == 0 and "OK" in result.output and "NOTE notes.txt" in result.output, result.output


# --- 10. a full disk -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def in_process_cluster() -> Iterator[str]:
    """A Dask cluster whose worker is a thread of this process, so that a monkeypatched writer runs in the worker."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def _wait_until_idle(address: str) -> None:
    """Wait for the task a stopped job left running on the worker (it runs to its end) to finish."""
    from distributed import Client

    def busy(dask_scheduler) -> int:
        return sum(len(w.processing) for w in dask_scheduler.workers.values())

    def executing(dask_worker) -> int:  # a cancelled task's thread runs on, unseen by the scheduler
        return dask_worker.state.executing_count

    with Client(address) as client:
        deadline = time.monotonic() + 30
        while ((client.run_on_scheduler(busy) or sum(client.run(executing).values()))
               and time.monotonic() < deadline):
            time.sleep(0.05)


def test_a_full_disk_stops_with_one_line_and_keeps_what_was_written(train_shards: Path, synth_root: Path,
                                                                      tmp_path: Path, in_process_cluster: str,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    write = WebDatasetFormat.write
    full: list[Path] = []

    def write_until_the_disk_is_full(self, path: Path, samples) -> int:
        if full or Path(path).name.startswith(".tmp-train-000001.tar."):  # full from shard 1 on
            full.append(path)
            Path(path).write_bytes(bytes(4096))  # part of the shard landed before the disk filled up
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write(self, path, samples)

    monkeypatch.setattr(WebDatasetFormat, "write", write_until_the_disk_is_full)
    args = ["sample", "--voc-root", str(synth_root), "--split", "train", "--out", str(out), "--no-progress",
            "--scheduler", in_process_cluster, *SAME]
    with pytest.raises(SystemExit) as stopped:
        main.main(args, prog_name="ifcn-prep")
    assert stopped.value.code == 1
    _wait_until_idle(in_process_cluster)
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err
    [line] = [text for text in captured.err.strip().splitlines() if not text.startswith("train shards: ")]  # progress
    assert line.startswith(f"Error: {out}: no space left on device (needs about ") and " MB free)" in line
    assert "rerun the same command" in line

    assert not (out / MANIFEST_NAME).exists() and not list(out.glob(".tmp-*"))
    finished = sorted(out.glob("train-*.tar"))
    assert "train-000001.tar" not in [p.name for p in finished]
    for shard in finished:  # whatever was finished is complete and recorded
        found = read_sidecar(out / SIDECAR_DIR / f"{shard.name}.json")
        assert found is not None and (found[1].entry.sha256, found[1].entry.bytes) == file_sha256(shard)
        assert len(list(read_shard(shard))) == 4

    monkeypatch.undo()  # space freed: the same command finishes the job, keeping what was written
    result = run_sample(job(synth_root, out, in_process_cluster), log=lambda m: None)
    assert (result.shards_kept, result.shards_written) == (len(finished), 3 - len(finished))
    assert (out / MANIFEST_NAME).read_bytes() == (train_shards / MANIFEST_NAME).read_bytes()


def test_a_full_disk_at_the_manifest_is_one_line_too(train_shards: Path, synth_root: Path, tmp_path: Path,
                                                         dask_address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    out = copy(train_shards, tmp_path)
    (out / MANIFEST_NAME).unlink()  # a run that stopped before its manifest; now the disk fills up writing it

    def no_space(folder: Path, manifest) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / MANIFEST_NAME))

    monkeypatch.setattr(orchestrate, "write_manifest", no_space)
    expected = rf"^{re.escape(str(out))}: no space left on device \(needs about .* MB, .* MB free\)"
    with pytest.raises(DiskFullError, match=expected):
        run_sample(job(synth_root, out, dask_address), log=lambda m: None)
    monkeypatch.undo()
    assert run_sample(job(synth_root, out, dask_address), log=lambda m: None).shards_kept == 3
    assert (out / MANIFEST_NAME).read_bytes() == (train_shards / MANIFEST_NAME).read_bytes()


# --- 13. limits -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "message"), [
    (["--pairs", "100000"], "--pairs must be at most 1,000 (got 100000)"),
    (["--n-pos", "5000"], "--n-pos must be at most 100"),
    (["--n-neg1", "5000"], "--n-neg1 must be at most 100"),
    (["--n-neg2", "5000"], "--n-neg2 must be at most 100"),
    (["--n-neg3", "5000"], "--n-neg3 must be at most 100"),
    (["--d", "1e9"], "--d must be at most 10,000"),
    (["--d-step", "1e9"], "--d-step must be at most 10,000"),
    (["--d-margin", "1e9", "--d", "2e9"], "--d-margin must be at most 10,000"),
    (["--min-area", str(10**12)], "--min-area must be at most 100,000,000"),
    (["--images-per-shard", "1000000"], "--images-per-shard must be at most 10,000"),
    (["--workers", "100000"], "--workers must be at most"),
    (["--seed", str(2**64)], "--seed must be at most"),
    (["--workers", "1", "--scheduler", "tcp://127.0.0.1:1"], "leave out --workers"),
])
def test_absurd_sample_options_are_refused_with_their_limit(flags: list[str], message: str, synth_root: Path,
                                                               tmp_path: Path) -> None:
    result = sample(synth_root, tmp_path / "out", *flags)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--train-images", "1", "--val-images", "0", "--long-side", "100000"], "--long-side must be within 32..4096"),
    (["--train-images", "10000000", "--val-images", "0"], "at most 999999 images"),
    (["--train-images", "1", "--val-images", "0", "--seed", str(2**64)], "--seed must be within"),
])
def test_absurd_synth_options_are_refused_with_their_limit(args: list[str], message: str, tmp_path: Path) -> None:
    result = invoke("synth", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_inspect_refuses_an_object_id_no_mask_can_hold(train_shards: Path, tmp_path: Path) -> None:
    result = invoke("inspect", train_shards, "--object", "100000", "--png", tmp_path / "x.png")
    assert result.exit_code == 2 and "--object" in result.output and "1<=x<=254" in result.output, result.output
