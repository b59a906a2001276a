"""Resume: what a rerun may keep from an interrupted one, and refusing to mix two different jobs in one folder.

At its start a job writes `OUT/.ifcn-job.json` (tool version, generation parameters, source). Every finished shard
gets a sidecar `OUT/.ifcn-sidecars/<shard>.json` written after the shard itself; a shard is kept only when its sidecar
belongs to the same job and its size and sha256 still match. Everything else is rewritten, which gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ifcn.io import TMP_PREFIX, atomic_write_bytes, canonical_json, cleanup_temporaries, file_sha256
from ifcn.shards.formats import FORMATS
from ifcn.shards.manifest import MANIFEST_NAME, ShardEntry, SkippedImage

JOB_FILE = ".ifcn-job.json"
SIDECAR_DIR = ".ifcn-sidecars"
_SHARD_RE = re.compile(r"^\w+-\d{6}(" + "|".join(re.escape(f.suffix) for f in FORMATS.values()) + r")$")


def fingerprint(record: dict[str, Any]) -> str:
    """A short id of a job record; sidecars carry it so that a shard of another job is never kept."""
    return hashlib.sha256(canonical_json(record)).hexdigest()[:16]


class JobMismatchError(ValueError):
    """The output folder holds the result of a job with other parameters."""


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def is_tool_output(path: Path) -> bool:
    """Whether `path` (a direct child of an output folder) is something `ifcn-prep sample` writes."""
    name = path.name
    return (name in (MANIFEST_NAME, JOB_FILE, SIDECAR_DIR) or name.startswith(TMP_PREFIX)
            or bool(_SHARD_RE.match(name)))


def _previous_record(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / JOB_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return {}


def check_output(out: Path, record: dict[str, Any], overwrite: bool) -> None:
    """Refuse an output folder that holds another job's result, unless `overwrite`. Reads only.

    The message names every parameter that differs so that the user can tell a typo from a deliberate change.
    """
    if overwrite or not out.is_dir():
        return
    previous = _previous_record(out)
    if previous is None:
        if any(is_tool_output(p) for p in out.iterdir()):
            raise JobMismatchError(f"{out} holds shards or a manifest of an unknown job (no {JOB_FILE}). "
                                   "Fix: pass --overwrite to replace them, or choose another --out")
    elif previous != record:
        old, new = _flatten(previous), _flatten(record)
        diffs = [f"{k}: {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}"
                 for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        raise JobMismatchError(
            f"{out} holds shards made with other parameters ({'; '.join(diffs)}). "
            "Fix: pass --overwrite to replace them, or choose another --out")


def claim_output(out: Path, record: dict[str, Any], overwrite: bool) -> None:
    """Make `out` this job's folder (after `check_output` passed): with `overwrite` remove this tool's old files,
    remove temporaries an interrupted run left, and record the job in `out/.ifcn-job.json`."""
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        remove_outputs(out)
    cleanup_temporaries(out)
    sidecars = out / SIDECAR_DIR
    sidecars.mkdir(exist_ok=True)
    cleanup_temporaries(sidecars)
    atomic_write_bytes(out / JOB_FILE, canonical_json(record))


def remove_outputs(out: Path) -> list[Path]:
    """Remove this tool's files from `out` (shards, sidecars, manifest, job file, temporaries); keep anything else."""
    removed = [p for p in out.iterdir() if is_tool_output(p)]
    for p in removed:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    return removed


@dataclass(frozen=True)
class ShardRecord:
    """What one finished shard contributes to the manifest; also the content of its sidecar."""

    entry: ShardEntry
    skipped_objects: dict[str, int]
    skipped_images: tuple[SkippedImage, ...]


def sidecar_path(out: Path, shard_name: str) -> Path:
    return out / SIDECAR_DIR / f"{shard_name}.json"


def write_sidecar(out: Path, record: ShardRecord, job_id: str) -> None:
    payload = {"job": job_id, **asdict(record)}
    atomic_write_bytes(sidecar_path(out, record.entry.path), canonical_json(payload))


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
