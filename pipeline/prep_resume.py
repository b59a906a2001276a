"""Resume, and what an output folder's files belong to: what a rerun may keep, what `--overwrite` may replace.

At its start a job writes `OUT/.ifcn-job.json` (tool version, generation parameters, source). Every finished shard
gets a sidecar `OUT/.ifcn-sidecars/<shard>.json` written after the shard itself; a shard is kept only when its sidecar
belongs to the same job, its size and sha256 still match and the input files it records are unchanged
(`ifcn.pipeline.provenance`). Everything else is rewritten, which gives the same bytes for the same inputs.

The folder may hold the user's own files too. Only what an earlier run recorded is ever replaced or removed: the job
file and the shard names its plan gives, the manifest and the shards it lists, the sidecars, and temporaries of those
names (`.tmp-<name>.<8 hex>`). A file in the way of a planned name that no run recorded stops the job instead.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ifcn.io import atomic_write_bytes, canonical_json, file_sha256, remove_own_temporaries
from ifcn.lock import LOCK_NAME
from ifcn.pipeline.shard_plan import shard_name
from ifcn.shards.formats import FORMATS, get_format
from ifcn.shards.manifest import MANIFEST_NAME, ShardEntry, SkippedImage

JOB_FILE = ".ifcn-job.json"
SIDECAR_DIR = ".ifcn-sidecars"
SIDECAR_SUFFIX = ".json"


def fingerprint(record: dict[str, Any]) -> str:
    """A short id of a job record; sidecars carry it so that a shard of another job is never kept."""
    return hashlib.sha256(canonical_json(record)).hexdigest()[:16]


class JobMismatchError(ValueError):
    """The output folder holds the result of a job with other parameters."""


class ForeignFileError(ValueError):
    """A file stands where the job would write, and no earlier run recorded it: it is the user's, never replaced."""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def previous_record(folder: Path) -> dict[str, Any] | None:
    """The job record in `folder/.ifcn-job.json`: None when there is none, {} when it is unreadable."""
    try:
        record = json.loads((folder / JOB_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def planned_shard_names(record: dict[str, Any]) -> set[str]:
    """The shard names the job of `record` writes (its plan: split, number of ids, shard size, format); none when the
    record is not a readable job record."""
    try:
        split, num_ids = str(record["source"]["split"]), int(record["source"]["num_ids"])
        size, suffix = int(record["params"]["images_per_shard"]), get_format(record["params"]["format"]).suffix
        return {shard_name(split, i, suffix) for i in range(math.ceil(num_ids / size))}
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return set()


def _is_shard_name(name: object) -> bool:
    """Whether `name` is a bare file name with a shard format's suffix (nothing else is ever taken as a run's shard)."""
    suffixes = tuple(f.suffix for f in FORMATS.values())
    return isinstance(name, str) and Path(name).name == name and name.endswith(suffixes)


def manifest_shard_names(folder: Path) -> set[str] | None:
    """The shard files (names with a shard format's suffix) `folder/manifest.json` lists, when it is recognisably a
    manifest of this tool; else None (no manifest, or someone else's `manifest.json`). Lenient on purpose: an old or
    damaged one still names its shards."""
    try:
        d = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(d, dict) and {"schema_version", "tool_version", "shards"} <= d.keys()
            and isinstance(d["shards"], list)):
        return None
    return {s["path"] for s in d["shards"] if isinstance(s, dict) and _is_shard_name(s.get("path"))}


def recorded_names(folder: Path) -> set[str]:
    """Names of entries of `folder` that an earlier run of this tool recorded as its own (see the module notes)."""
    record = previous_record(folder)
    listed = manifest_shard_names(folder)
    sidecars = folder / SIDECAR_DIR
    names = {LOCK_NAME} | planned_shard_names(record or {}) | (listed or set())
    if sidecars.is_dir():
        shards = (p.name.removesuffix(SIDECAR_SUFFIX) for p in sidecars.glob(f"*{SIDECAR_SUFFIX}"))
        names |= {SIDECAR_DIR} | {n for n in shards if _is_shard_name(n)}
    if record is not None:
        names.add(JOB_FILE)
    if listed is not None or record is not None:
        names.add(MANIFEST_NAME)
    return {n for n in names if (folder / n).exists() or (folder / n).is_symlink()}


def check_output(out: Path, record: dict[str, Any], names: Collection[str], overwrite: bool) -> bool:
    """Check that the job of `record`, writing the shards `names`, may use `out`; reads only. Returns whether the job
    replaces another job's result (`overwrite` given and `out` holds one), else it writes into `out` (new or resumed).

    Raises `ForeignFileError` for a file in the way that no run recorded, and `JobMismatchError` for another job's
    result without `overwrite`, with a message naming every parameter that differs (a typo or a deliberate change).
    """
    if not out.is_dir():
        return False
    recorded = recorded_names(out)
    in_the_way = sorted(n for n in (*names, MANIFEST_NAME) if (out / n).exists() and n not in recorded)
    if in_the_way:
        more = f" (and {len(in_the_way) - 1} more)" if len(in_the_way) > 1 else ""
        raise ForeignFileError(
            f"{out / in_the_way[0]}{more} is in the way: the job writes a file of that name, and no earlier "
            f"`ifcn-prep sample` run in {out} recorded it, so it is not replaced. Fix: move it elsewhere, or choose "
            "another --out")
    previous = previous_record(out)
    if previous == record or not recorded - {LOCK_NAME}:
        return False
    if overwrite:
        return True
    if not previous:
        raise JobMismatchError(f"{out} holds shards or a manifest of an unknown job (no readable {JOB_FILE}). "
                               "Fix: pass --overwrite to replace them, or choose another --out")
    old, new = _flatten(previous), _flatten(record)
    diffs = [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}"
             for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    raise JobMismatchError(f"{out} holds shards made with other parameters ({'; '.join(diffs)}). "
                           "Fix: pass --overwrite to replace them, or choose another --out")


def own_files(names: Collection[str]) -> set[str]:
    """Every file name a job that writes the shards `names` creates in its folder."""
    return {*names, MANIFEST_NAME, JOB_FILE}


def remove_temporaries(folder: Path, names: Collection[str]) -> None:
    """Remove the temporaries that killed writers (the driver, Dask workers) of the job writing the shards `names`
    left in `folder` and its sidecar folder; a user's `.tmp-` files stay."""
    remove_own_temporaries(folder, own_files(names))
    if (folder / SIDECAR_DIR).is_dir():
        remove_own_temporaries(folder / SIDECAR_DIR, {f"{n}{SIDECAR_SUFFIX}" for n in names})


def claim_output(folder: Path, record: dict[str, Any], names: Collection[str]) -> None:
    """Make `folder` this job's (after `check_output` passed): remove the temporaries an interrupted run of it left,
    and record the job in `folder/.ifcn-job.json`."""
    (folder / SIDECAR_DIR).mkdir(parents=True, exist_ok=True)
    remove_temporaries(folder, names)
    atomic_write_bytes(folder / JOB_FILE, canonical_json(record))


@dataclass(frozen=True)
class ShardRecord:
    """What one finished shard contributes to the manifest; also the content of its sidecar."""

    entry: ShardEntry
    skipped_objects: dict[str, int]
    skipped_images: tuple[SkippedImage, ...]


def sidecar_path(out: Path, shard_name: str) -> Path:
    return out / SIDECAR_DIR / f"{shard_name}{SIDECAR_SUFFIX}"


def write_sidecar(out: Path, record: ShardRecord, job_id: str, inputs: list[dict[str, Any]]) -> None:
    """Record a finished shard: its job, manifest entry and skips, and the input files it was built from
    (`ifcn.pipeline.provenance.fingerprint_files`)."""
    payload = {"job": job_id, **asdict(record), "inputs": inputs}
    atomic_write_bytes(sidecar_path(out, record.entry.path), canonical_json(payload))


def recorded_inputs(out: Path, shard_name: str) -> list[dict[str, Any]] | None:
    """The input files the sidecar of `out/shard_name` records, or None (no sidecar, or one of an older version)."""
    try:
        inputs = json.loads(sidecar_path(out, shard_name).read_text())["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return inputs if isinstance(inputs, list) else None


def read_sidecar(path: Path) -> tuple[str, ShardRecord] | None:
    """The (job id, record) a sidecar holds, or None when it is missing or unreadable."""
    try:
        d = json.loads(path.read_text())
        record = ShardRecord(ShardEntry(**d["entry"]), {str(k): int(v) for k, v in d["skipped_objects"].items()},
                             tuple(SkippedImage(**s) for s in d["skipped_images"]))
        return str(d["job"]), record
    except (OSError, ValueError, KeyError, TypeError):
        return None


def complete_shard(out: Path, shard_name: str, job_id: str) -> ShardRecord | None:
    """The record of `out/shard_name` when it is a finished shard of this job with a matching checksum, else None."""
    found = read_sidecar(sidecar_path(out, shard_name))
    if found is None or found[0] != job_id or found[1].entry.path != shard_name:
        return None
    record, shard = found[1], out / shard_name
    if not shard.is_file() or shard.stat().st_size != record.entry.bytes:
        return None
    return record if file_sha256(shard)[0] == record.entry.sha256 else None
