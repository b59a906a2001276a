"""One shard task, run on a Dask worker: read the shard's images, sample their clicks, write the shard and its sidecar.

The task carries ids (with the little each source needs to find an image's files), the seed and the job's options
only (spec §7); it reads the pixels itself. A shard that a previous
run of the same job finished (sidecar present, checksum valid, input files unchanged) is kept as it is, so a rerun
only writes what is missing or stale.
Bad input and a full disk are returned, not raised: retrying either would only fail again, and the driver stops the
whole job on them (bad input only under `--on-error fail`). A full disk leaves no partial file behind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from ifcn.disk import is_disk_full
from ifcn.errors import InputError
from ifcn.io import atomic_path, file_sha256
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.prep_resume import ShardRecord, complete_shard, recorded_inputs, sidecar_path, write_sidecar
from ifcn.pipeline.provenance import changed_files, describe_changes, fingerprint_files
from ifcn.pipeline.sample import make_sample
from ifcn.pipeline.shard_plan import ShardSpec, shard_name
from ifcn.pipeline.sources import ImageRef, get_source
from ifcn.shards.formats import get_format
from ifcn.shards.manifest import ShardEntry, SkippedImage
from ifcn.shards.records import Sample


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs for one shard; paths are absolute (a remote worker has another working directory)."""

    spec: ShardSpec
    #: The listed images of `spec.ids`, in the same order.
    refs: tuple[ImageRef, ...]
    source: str
    root: Path
    out: Path
    split: str
    clicks: ClickConfig
    format: str
    on_error: str
    job_id: str

    @property
    def name(self) -> str:
        return shard_name(self.split, self.spec.index, get_format(self.format).suffix)


@dataclass(frozen=True)
class ShardResult:
    """A task's outcome: the shard's record (None when the task stopped), whether an existing shard was kept, and the
    error that stopped it: an `InputError` under `--on-error fail`, or the `OSError` of a full disk, with the bytes
    the shard needed (so that the driver can tell the user how much space the job needs)."""

    index: int
    record: ShardRecord | None
    reused: bool = False
    error: Exception | None = None
    needed_bytes: int = 0
    #: Why a finished shard of this job was rebuilt (its input files changed), for the driver to say; "" otherwise.
    stale: str = ""


def dask_setup(worker: Any) -> None:
    """Dask calls this in every worker that preloads this module (the local cluster does): a worker runs one task at a
    time on one core, so OpenCV's own thread pool would only make the workers compete for the same cores."""
    cv2.setNumThreads(1)


def skipped_image(error: InputError, key: str) -> SkippedImage:
    """How an image left out under `--on-error skip` is recorded: its key, the file at fault, `kind: reason`."""
    return SkippedImage(key=error.key or key, file=str(error.path), reason=f"{error.kind}: {error.reason}")


def build_shard(task: ShardTask) -> ShardResult:
    """Make sure `task`'s shard exists, complete and checksum-valid; write it (and then its sidecar) if not."""
    kept = complete_shard(task.out, task.name, task.job_id)
    changed = changed_files(recorded_inputs(task.out, task.name)) if kept is not None else []
    # `--on-error` is not part of the job: a shard that an earlier `skip` run wrote without some images is kept only
    # under `skip`; under `fail` it is rebuilt, so that the bad image stops the run instead of passing silently.
    if kept is not None and changed == [] and (task.on_error == "skip" or not kept.skipped_images):
        return ShardResult(task.spec.index, kept, reused=True)
    stale = f"rebuilt: changed since it was written: {describe_changes(changed)}" if changed != [] else ""
    sidecar_path(task.out, task.name).unlink(missing_ok=True)  # a sidecar must never vouch for a shard being rewritten
    samples: list[Sample] = []
    skipped_images: list[SkippedImage] = []
    files: list[Path] = []
    source = get_source(task.source)
    for ref in task.refs:
        try:
            if ref.problem is not None:  # found while listing (a missing file, say): the same error as loading it
                raise ref.problem
            image = source.load(task.root, ref)
            files.extend(image.files)
            samples.append(make_sample(image, task.clicks, task.spec.seed))
        except InputError as error:
            if task.on_error == "fail":
                return ShardResult(task.spec.index, None, error=error, stale=stale)
            skipped_images.append(skipped_image(error, ref.key))
            files.append(Path(error.path))  # fixing the file at fault makes the shard stale too
    try:
        record = _write(task, samples, skipped_images, fingerprint_files(files))
        return ShardResult(task.spec.index, record, stale=stale)
    except OSError as error:
        if not is_disk_full(error):
            raise
        needed = sum(len(data) for s in samples for data in s.to_fields().values())
        return ShardResult(task.spec.index, None, error=error, needed_bytes=needed)


def _write(task: ShardTask, samples: list[Sample], skipped_images: list[SkippedImage],
           inputs: list[dict[str, Any]]) -> ShardRecord:
    """Write the shard under a temporary name, rename it, then write its sidecar (with the `inputs` it was built
    from); return its record."""
    final = task.out / task.name
    with atomic_path(final) as tmp:
        get_format(task.format).write(tmp, samples)
        sha256, size = file_sha256(tmp)
    entry = ShardEntry(path=task.name, format=task.format, samples=len(samples),
                       objects=sum(len(s.clicks.objects) for s in samples),
                       pairs=sum(s.clicks.num_pairs for s in samples), bytes=size, sha256=sha256,
                       first_key=samples[0].key if samples else "", last_key=samples[-1].key if samples else "")
    skipped_objects = Counter(o.reason for s in samples for o in s.clicks.skipped)
    record = ShardRecord(entry, dict(sorted(skipped_objects.items())), tuple(skipped_images))
    write_sidecar(task.out, record, task.job_id, inputs)
    return record
