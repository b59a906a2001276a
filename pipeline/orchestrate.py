"""`ifcn-prep sample` as one typed call: check everything, then one Dask task per shard, then the manifest.

Order matters for the user's data: options, the source's layout, the split and the output folder are all checked
before anything is written, so bad input never touches what OUT already holds. The driver then holds OUT's lock for
the whole job (Dask workers write into OUT, and a second writer would delete their files), so a second job on the
same folder is refused. Tasks run on a local cluster of worker processes, or on an existing cluster given by its
scheduler address; the manifest is written last, atomically. A full disk stops the job with one line
(`DiskFullError`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ifcn import __version__
from ifcn.cli_options import ON_ERROR, progress
from ifcn.cores import usable_cores
from ifcn.disk import DiskFullError, disk_full_guard, is_disk_full
from ifcn.errors import InputError
from ifcn.lock import output_lock
from ifcn.pipeline.click_sampling import MAX_SEED, ClickConfig, valid_int
from ifcn.pipeline.prep_resume import check_output, claim_output, fingerprint, remove_temporaries
from ifcn.pipeline.replace import STAGING_DIR, commit, finish_interrupted_swap, staging_folder
from ifcn.pipeline.shard import ShardResult, ShardTask, build_shard
from ifcn.pipeline.shard_plan import DEFAULT_IMAGES_PER_SHARD, ids_sha256, plan_shards, shard_name
from ifcn.pipeline.sources import SourceSpec, get_source, resolve_split
from ifcn.shards.formats import get_format
from ifcn.shards.manifest import SCHEMA_VERSION, Manifest, Source, Totals, write_manifest

#: Retries of a task that raised (a worker that died is rescheduled by the scheduler on its own).
TASK_RETRIES = 2
WORKER_WAIT_S = 60
#: Local worker processes per usable core at most: more only compete for the same cores (and memory).
MAX_WORKERS_PER_CORE = 4
#: At most this many images per shard: a shard is built in one worker's memory (VOC: about 0.15 MB per image).
MAX_IMAGES_PER_SHARD = 10_000
#: What `ifcn-prep sample` says about itself in the folder lock (a second writer's message names it).
LOCK_HOLDER = "ifcn-prep sample"
#: Space a driver-side write (job file, manifest, swap journal) needs at most.
DRIVER_WRITE_BYTES = 1 << 20


@dataclass(frozen=True)
class SampleJob:
    """Every option of `ifcn-prep sample`. Invalid values raise ValueError naming the CLI flag.

    `root` is the dataset folder of `source` (COCO: the images folder); `voc_root` is the same for VOC, the name it
    had before there were other sources. `split` defaults to the source's own (GrabCut: `all`; COCO: the annotation
    file's name); VOC and SBD need one.
    """

    out: Path
    split: str | None = None
    source: str = "voc"
    root: Path | None = None
    voc_root: Path | None = None
    coco_json: Path | None = None
    clicks: ClickConfig = field(default_factory=ClickConfig)
    seed: int = 0
    format: str = "webdataset"
    images_per_shard: int = DEFAULT_IMAGES_PER_SHARD
    #: Local worker processes; None: one per usable core (at most one per shard). Not with `scheduler`.
    workers: int | None = None
    scheduler: str | None = None
    on_error: str = "fail"
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        get_format(self.format)
        valid_int("seed", self.seed, 0, MAX_SEED)
        valid_int("images_per_shard", self.images_per_shard, 1, MAX_IMAGES_PER_SHARD,
                  why="a shard is built in one worker's memory")
        if self.workers is not None:
            if self.scheduler:
                raise ValueError("--workers sets the size of the local cluster; with --scheduler the cluster's own "
                                 "workers run the tasks: leave out --workers")
            valid_int("workers", self.workers, 1, MAX_WORKERS_PER_CORE * usable_cores(),
                      why=f"this machine lets the job use {usable_cores()} cores and more processes only compete for "
                      "them; run a Dask cluster and pass --scheduler to use more machines")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"--on-error must be one of {', '.join(ON_ERROR)} (got {self.on_error!r})")
        get_source(self.source)
        if self.voc_root is not None:
            if self.source != "voc" or self.root is not None:
                raise ValueError("--voc-root is the --root of --source voc; pass --root for other sources")
            object.__setattr__(self, "root", self.voc_root)
            object.__setattr__(self, "voc_root", None)
        if self.root is None:
            flag = "--coco-images" if self.source == "coco" else "--root"
            raise ValueError(f"{flag} is required: the folder of the {self.source} dataset")
        if (self.coco_json is None) != (self.source != "coco"):
            raise ValueError("--coco-json is required with --source coco, and only there")
        object.__setattr__(self, "split", resolve_split(self.source_spec))

    @property
    def source_spec(self) -> SourceSpec:
        """Where the data is, as the source reads it."""
        return SourceSpec(self.source, self.root, self.split, self.coco_json)

    @property
    def params(self) -> dict[str, Any]:
        """The generation parameters recorded in the manifest: everything the shard bytes depend on."""
        return {"clicks": self.clicks.to_dict(), "seed": self.seed, "format": self.format,
                "images_per_shard": self.images_per_shard}


@dataclass(frozen=True)
class SampleResult:
    """The manifest written, with timings: `seconds` in all, `startup_seconds` of them checking the input and starting
    the cluster, `work_seconds` from the cluster being ready to the last shard (shutdown is the rest)."""

    out: Path
    manifest: Manifest
    seconds: float
    startup_seconds: float
    work_seconds: float
    shards_written: int
    shards_kept: int


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def check_writable(out: Path) -> None:
    """Raise InputError unless `out` is (or can be created as) a writable folder. Writes nothing."""
    fix = "choose a writable folder with --out"
    if out.exists() and not out.is_dir():
        raise InputError(out, "the output path exists and is not a folder", fix, kind="output")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(out, f"{existing} is a file, so no folder can be created under it", fix, kind="output")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(out, f"no permission to write in {existing}", fix, kind="output")


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A client of the cluster at `scheduler`, or of a local cluster of `workers` single-threaded processes."""
    from distributed import Client

    if scheduler:
        try:  # waits up to Dask's `distributed.comm.timeouts.connect` (30 s unless configured)
            client = Client(scheduler)
        except OSError as e:
            raise ConnectionError(f"could not reach the Dask scheduler at {scheduler} ({e}). Fix: start one with "
                                  "`dask scheduler` and `dask worker`, or leave out --scheduler") from None
        with client:
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise ConnectionError(f"no Dask worker joined the scheduler at {scheduler} within {WORKER_WAIT_S} s. "
                                      f"Fix: start workers with `dask worker {scheduler}`") from None
            yield client
        return
    with local_cluster(workers) as cluster, Client(cluster) as client:
        yield client


def local_cluster(workers: int) -> Any:
    """A local Dask cluster of `workers` single-threaded worker processes (a context manager).

    The scheduler's HTTP endpoint takes any free port (":0"), so concurrent jobs on one machine never compete for
    the default 8787 (the bokeh dashboard itself is not installed). Workers import the task's modules while starting
    (preload), so that time counts as start-up, not as work.
    """
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                        silence_logs=logging.ERROR, preload=[build_shard.__module__])


def _run_tasks(client: Any, tasks: list[ShardTask], bar: bool, out: Path,
               log: Callable[[str], None]) -> list[ShardResult]:
    """Submit one task per shard and collect the results; stop at the first bad input (`--on-error fail`) or full
    disk (`DiskFullError` for `out`, the folder the user named). Says which finished shards were rebuilt because
    their input files changed; progress goes to stderr (a bar on a terminal when `bar`)."""
    from distributed import as_completed

    futures = [client.submit(build_shard, task, pure=False, retries=TASK_RETRIES) for task in tasks]
    names = {task.spec.index: task.name for task in tasks}
    results: list[ShardResult] = []
    try:
        for future in progress(as_completed(futures), total=len(futures), desc=f"{tasks[0].split} shards",
                               unit="shards", bar=bar):
            result: ShardResult = future.result()
            if result.stale:
                log(f"{out / names[result.index]}: {result.stale}")
            if is_disk_full(result.error):
                raise _disk_full(out, tasks, results, result)
            if result.error is not None:
                raise result.error
            results.append(result)
    finally:
        client.cancel(futures)
    return sorted(results, key=lambda r: r.index)


def _disk_full(out: Path, tasks: list[ShardTask], finished: list[ShardResult], failed: ShardResult) -> DiskFullError:
    """The one-line error for a shard that did not fit: the space the unfinished shards need, estimated from the
    bytes per image of the shard that failed (its samples were in memory, so its size was known)."""
    done = {r.index for r in finished}
    images = {t.spec.index: len(t.spec.ids) for t in tasks}
    unfinished = sum(n for index, n in images.items() if index not in done)
    needed = max(failed.needed_bytes * unfinished // max(images[failed.index], 1), DRIVER_WRITE_BYTES)
    return DiskFullError(out, needed, f"free space there or choose another --out, then rerun the same command: the "
                         f"{len(finished)} shards finished are kept")


def _disk_full_as_one_line(out: Path) -> AbstractContextManager[None]:
    """A full disk met by the driver's own writes (job file, manifest, swap journal) as a `DiskFullError`."""
    return disk_full_guard(out, DRIVER_WRITE_BYTES, "free space there or choose another --out, then rerun the same "
                           "command: the finished shards are kept")


def _manifest(job: SampleJob, source: Source, results: list[ShardResult]) -> Manifest:
    records = [r.record for r in results if r.record is not None]
    entries = tuple(r.entry for r in records)
    skipped_objects: Counter[str] = Counter()
    for r in records:
        skipped_objects.update(r.skipped_objects)
    totals = Totals(images=sum(e.samples for e in entries), objects=sum(e.objects for e in entries),
                    pairs=sum(e.pairs for e in entries), skipped_objects=dict(sorted(skipped_objects.items())),
                    skipped_images=tuple(s for r in records for s in r.skipped_images))
    return Manifest(schema_version=SCHEMA_VERSION, tool_version=__version__, format=job.format, params=job.params,
                    source=source, shards=entries, totals=totals)


def run_sample(job: SampleJob, log: Callable[[str], None] = _stderr) -> SampleResult:
    """Turn one split of a source into shards plus `manifest.json` under `job.out`; resume what a previous run of the
    same job left. Raises InputError (bad input data), ValueError (bad options, another job's folder, a user's file in
    the way, another live writer: `FolderLockedError`), ConnectionError (cluster unreachable) or `DiskFullError`.
    All are raised before anything is written, except an InputError that only reading an image reveals (a corrupt
    file under `--on-error fail`) and a full disk: the shards finished by then stay, with their sidecars, for the rerun
    after the fix, and no manifest is written. With `overwrite`, another job's dataset in OUT stays whole until the
    new one is complete (see `ifcn.pipeline.replace`)."""
    start = time.perf_counter()
    split = str(job.split)
    listing = get_source(job.source).list_split(job.source_spec, split)
    for note in listing.notes:
        log(note)
    problems = listing.problems
    if job.on_error == "fail" and problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more ids of the split have problems)" if len(problems) > 1 else ""
        raise InputError(first.path, first.reason + more, first.fix, kind=first.kind, key=first.key)
    out = Path(job.out).resolve()
    check_writable(out)
    keys = listing.keys
    source = Source(root=str(listing.root), split=split, ids_sha256=ids_sha256(keys), num_ids=len(keys),
                    name=job.source, annotation_file=listing.annotation_file,
                    annotation_sha256=listing.annotation_sha256)
    record = {"tool_version": __version__, "params": job.params, "source": asdict(source)}
    plan = plan_shards(keys, job.images_per_shard, job.seed)
    names = [shard_name(split, spec.index, get_format(job.format).suffix) for spec in plan]
    refs = {ref.key: ref for ref in listing.refs}
    with _locked(out):
        if finish_interrupted_swap(out):
            log(f"{out}: finished replacing the dataset, which an earlier --overwrite run was killed doing")
        replacing = check_output(out, record, names, job.overwrite)
        folder = staging_folder(out, record, log) if replacing else out
        job_id = fingerprint(record)
        tasks = [ShardTask(spec, tuple(refs[k] for k in spec.ids), job.source, listing.root, folder, split, job.clicks,
                           job.format, job.on_error, job_id) for spec in plan]
        workers = usable_cores() if job.workers is None else job.workers
        with dask_client(job.scheduler, min(workers, len(tasks))) as client:
            ready = time.perf_counter()
            claim_output(folder, record, names)
            try:
                results = _run_tasks(client, tasks, job.progress, out, log)
            except BaseException:
                if replacing:
                    log(f"{out}: the dataset there is unchanged; the new one stays unfinished in {folder}, where a "
                        "rerun of the same command resumes it")
                raise
            work = time.perf_counter() - ready
        manifest = _manifest(job, source, results)
        write_manifest(folder, manifest)
        if replacing:
            commit(out, folder)
        _tidy(out, names, log)
    kept = sum(r.reused for r in results)
    return SampleResult(out, manifest, time.perf_counter() - start, ready - start, work, len(results) - kept, kept)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold `out`'s lock for the block, with a full disk as one line. A folder the lock had to create is removed
    again when the job stops having written nothing into it (another job's lock, an unreachable cluster)."""
    with output_lock(out, LOCK_HOLDER), _disk_full_as_one_line(out):
        yield


def _tidy(out: Path, names: list[str], log: Callable[[str], None]) -> None:
    """After the manifest: remove the temporaries killed writers of this job left (a Dask worker that died while
    writing a shard, whose task then ran elsewhere), and an unfinished `--overwrite` run of other parameters."""
    remove_temporaries(out, names)
    if (out / STAGING_DIR).is_dir():
        log(f"{out}: removing an unfinished --overwrite run of other parameters ({out / STAGING_DIR})")
        shutil.rmtree(out / STAGING_DIR)
