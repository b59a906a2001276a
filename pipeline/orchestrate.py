"""`ifcn-prep sample` as one typed call: check everything, then one Dask task per shard, then the manifest.

Order matters for the user's data: options, the source's layout, the split and the output folder are all checked
before anything is written, so bad input never touches what OUT already holds. Tasks run on a local cluster of worker
processes, or on an existing cluster given by its scheduler address; the manifest is written last, atomically.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ifcn import __version__
from ifcn.errors import InputError
from ifcn.pipeline.clicks import ClickConfig, valid_int
from ifcn.pipeline.resume import check_output, claim_output, fingerprint
from ifcn.pipeline.shard import ShardResult, ShardTask, build_shard
from ifcn.pipeline.shard_plan import DEFAULT_IMAGES_PER_SHARD, ids_sha256, plan_shards
from ifcn.pipeline.sources import SourceSpec, get_source, resolve_split
from ifcn.shards.formats import get_format
from ifcn.shards.manifest import SCHEMA_VERSION, Manifest, Source, Totals, write_manifest

ON_ERROR = ("fail", "skip")
#: Retries of a task that raised (a worker that died is rescheduled by the scheduler on its own).
TASK_RETRIES = 2
WORKER_WAIT_S = 60


def _default_workers() -> int:
    return os.cpu_count() or 1


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
    workers: int = field(default_factory=_default_workers)
    scheduler: str | None = None
    on_error: str = "fail"
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        get_format(self.format)
        for name, minimum in (("seed", 0), ("images_per_shard", 1), ("workers", 1)):
            valid_int(name, getattr(self, name), minimum)
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


def _run_tasks(client: Any, tasks: list[ShardTask], progress: bool, split: str) -> list[ShardResult]:
    """Submit one task per shard and collect the results; stop at the first bad input (`--on-error fail`)."""
    from distributed import as_completed
    from tqdm import tqdm

    futures = [client.submit(build_shard, task, pure=False, retries=TASK_RETRIES) for task in tasks]
    results: list[ShardResult] = []
    try:
        with tqdm(total=len(futures), desc=f"{split} shards", unit="shard", disable=not progress,
                  file=sys.stderr) as bar:
            for future in as_completed(futures):
                result: ShardResult = future.result()
                if result.error is not None:
                    raise result.error
                results.append(result)
                bar.update()
    finally:
        client.cancel(futures)
    return sorted(results, key=lambda r: r.index)


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
    same job left. Raises InputError (bad input data), ValueError (bad options or another job's folder) or
    ConnectionError (cluster unreachable). All are raised before anything is written, except an InputError that only
    reading an image reveals (a corrupt file under `--on-error fail`): the shards finished by then stay, with their
    sidecars, for the rerun after the fix, and no manifest is written."""
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
    check_output(out, record, job.overwrite)
    plan = plan_shards(keys, job.images_per_shard, job.seed)
    job_id = fingerprint(record)
    refs = {ref.key: ref for ref in listing.refs}
    tasks = [ShardTask(spec, tuple(refs[k] for k in spec.ids), job.source, listing.root, out, split, job.clicks,
                       job.format, job.on_error, job_id) for spec in plan]
    with dask_client(job.scheduler, min(job.workers, len(tasks))) as client:
        ready = time.perf_counter()
        claim_output(out, record, job.overwrite)
        results = _run_tasks(client, tasks, job.progress, split)
        work = time.perf_counter() - ready
    manifest = _manifest(job, source, results)
    write_manifest(out, manifest)
    kept = sum(r.reused for r in results)
    return SampleResult(out, manifest, time.perf_counter() - start, ready - start, work, len(results) - kept, kept)
