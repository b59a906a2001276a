"""`ifcn-prep verify`: check every shard against the manifest (size, sha256, and what its format reads back).

The checksum alone proves the bytes are the ones written; reading each shard through its format also proves the
manifest's counts and key range describe it, which is what the trainer and evaluator rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ifcn.errors import InputError
from ifcn.io import file_sha256
from ifcn.shards.manifest import MANIFEST_NAME, ShardEntry, load_manifest
from ifcn.shards.reader import read_shard


@dataclass(frozen=True)
class ShardProblem:
    """One bad or missing shard (`path` as the manifest lists it) and what is wrong with it."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def check_shard(folder: Path, entry: ShardEntry) -> str | None:
    """What is wrong with one shard, or None when it matches its manifest entry."""
    path = folder / entry.path
    if not path.is_file():
        return "missing"
    sha256, size = file_sha256(path)
    if size != entry.bytes:
        return f"size {size} bytes, the manifest says {entry.bytes}"
    if sha256 != entry.sha256:
        return f"sha256 {sha256[:12]}…, the manifest says {entry.sha256[:12]}…"
    try:
        samples = list(read_shard(path))
    except InputError as e:  # the reader names the sample at fault; report it, do not crash
        return e.reason
    found = (len(samples), sum(len(s.clicks.objects) for s in samples), sum(s.clicks.num_pairs for s in samples),
             samples[0].key if samples else "", samples[-1].key if samples else "")
    expected = (entry.samples, entry.objects, entry.pairs, entry.first_key, entry.last_key)
    if found != expected:
        return f"holds (samples, objects, pairs, first key, last key) = {found}, the manifest says {expected}"
    return None


def verify_output(out: Path) -> list[ShardProblem]:
    """Every problem of the dataset in `out` (a folder holding manifest.json, or the manifest file itself)."""
    path = Path(out)
    manifest_path = path / MANIFEST_NAME if path.is_dir() else path
    manifest = load_manifest(manifest_path)
    folder = manifest_path.parent
    return [ShardProblem(e.path, p) for e in manifest.shards if (p := check_shard(folder, e)) is not None]
