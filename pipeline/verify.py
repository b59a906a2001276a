"""`ifcn-prep verify`: check a dataset against its manifest, and an output folder for what does not belong in it.

The manifest itself is checked when it is loaded (schema, totals equal to the shards' sums, shard paths that stay in
its folder). Per shard, the checksum proves the bytes are the ones written; reading each shard through the one reader
(`ifcn.shards.reader.read_shard`, which checks every sample's digest and that its clicks lie in the image) also proves
that the manifest's counts and key range describe it, that every image and mask has the size its clicks were drawn
for, and that no image appears twice: what the trainer and evaluator rely on. A manifest at a URL is verified by
streaming each shard once (hashed while it downloads). In a local folder, files a killed writer left (temporaries,
an unfinished `--overwrite` run) are problems too, and so are stale shards, built from input files that changed since
(their sidecars record them); the user's own files are listed, and left alone.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ifcn.errors import InputError
from ifcn.io import file_sha256, temporary_target
from ifcn.lock import LOCK_NAME
from ifcn.pipeline.prep_resume import JOB_FILE, SIDECAR_DIR, SIDECAR_SUFFIX, recorded_inputs
from ifcn.pipeline.provenance import changed_files, describe_changes
from ifcn.pipeline.replace import REPLACE_ENTRIES
from ifcn.shards.manifest import MANIFEST_NAME, Manifest, ShardEntry, load_manifest, resolve_shards
from ifcn.shards.reader import is_remote, open_location, read_shard
from ifcn.shards.records import Sample
from ifcn.shards.remote import with_retries

RERUN = ("rerun `ifcn-prep sample` with the same options: it rewrites bad and stale shards and removes its own "
         "leftovers")


@dataclass(frozen=True)
class Problem:
    """One bad or missing shard, or a leftover file (`path` relative to the dataset's folder), and what is wrong."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True)
class Verification:
    """What `verify` found: problems (the dataset is not in order) and the folder's other files (the user's own,
    not part of the dataset; None when the dataset is remote, where a folder cannot be listed)."""

    problems: tuple[Problem, ...]
    other_files: tuple[str, ...] | None

    @property
    def ok(self) -> bool:
        return not self.problems


def _size_problem(sample: Sample) -> str | None:
    """Whether the image and its masks have the size the clicks were drawn for (read from their headers only)."""
    expected = (sample.clicks.width, sample.clicks.height)
    fields = (("image", sample.image_bytes), ("class mask", sample.class_png), ("object mask", sample.object_png))
    for field, data in fields:
        try:
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
        except Exception as e:  # PIL raises many types on hostile bytes
            return f"sample {sample.key!r}: its {field} is unreadable ({e})"
        if size != expected:
            return (f"sample {sample.key!r}: its {field} is {size[0]}×{size[1]} pixels, its clicks were drawn on "
                    f"{expected[0]}×{expected[1]}")
    return None


def _read_back(path: Path, entry: ShardEntry, seen: set[str]) -> str | None:
    """What is wrong with the samples of a shard whose bytes are the recorded ones, or None."""
    try:
        samples = list(read_shard(path))
    except InputError as e:  # the reader names the sample at fault; report it, do not crash
        return e.reason
    for sample in samples:
        if sample.key in seen:
            return f"sample {sample.key!r} appears twice in the dataset (a trainer would repeat it)"
        seen.add(sample.key)
        problem = _size_problem(sample)
        if problem is not None:
            return problem
    found = (len(samples), sum(len(s.clicks.objects) for s in samples), sum(s.clicks.num_pairs for s in samples),
             samples[0].key if samples else "", samples[-1].key if samples else "")
    expected = (entry.samples, entry.objects, entry.pairs, entry.first_key, entry.last_key)
    if found != expected:
        return f"holds (samples, objects, pairs, first key, last key) = {found}, the manifest says {expected}"
    return None


def check_shard(path: Path, entry: ShardEntry, seen: set[str], digest: tuple[str, int] | None = None) -> str | None:
    """What is wrong with the local shard file `path`, or None when it matches its manifest entry. `digest` is its
    (sha256, size) when already computed (while downloading); `seen` collects the keys of the shards checked so far."""
    if not path.is_file():
        return "missing"
    sha256, size = digest or file_sha256(path)
    if size != entry.bytes:
        return f"size {size} bytes, the manifest says {entry.bytes}"
    if sha256 != entry.sha256:
        return f"sha256 {sha256[:12]}…, the manifest says {entry.sha256[:12]}…"
    return _read_back(path, entry, seen)


def _download(location: str, dest: Path) -> tuple[str, int]:
    """Stream a remote file to `dest` once, hashing it on the way; (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    with open_location(location) as source, open(dest, "wb") as target:
        while block := source.read(1 << 20):
            digest.update(block)
            size += len(block)
            target.write(block)
    return digest.hexdigest(), size


def _check_remote(location: str, entry: ShardEntry, seen: set[str]) -> str | None:
    with tempfile.TemporaryDirectory(prefix="ifcn-verify-") as tmp:
        local = Path(tmp) / entry.path
        try:
            digest = with_retries(lambda: _download(location, local))
        except Exception as e:  # curl, the pipe command or the network failed
            return f"could not be read from {location} ({type(e).__name__}: {e})"
        return check_shard(local, entry, seen, digest)


def _leftovers(manifest_path: Path, manifest: Manifest) -> tuple[list[Problem], list[str]]:
    """Entries of a local dataset's folder that are not part of the dataset: what a writer of this tool left
    (problems) and everything else (the user's files, listed)."""
    folder = manifest_path.parent
    shards = {e.path for e in manifest.shards}
    known = {MANIFEST_NAME, manifest_path.name, JOB_FILE, LOCK_NAME, SIDECAR_DIR, *shards}
    problems, others = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name in known:
            continue
        if temporary_target(entry.name) in known:
            problems.append(Problem(entry.name, f"temporary file of a writer that was killed. Fix: {RERUN}"))
        elif entry.name in REPLACE_ENTRIES:
            problems.append(Problem(entry.name, "left by an `--overwrite` run that did not finish (the dataset "
                                    "verified is the old one). Fix: rerun that command to finish it, or delete it"))
        else:
            others.append(entry.name)
    sidecars = folder / SIDECAR_DIR
    expected = {f"{s}{SIDECAR_SUFFIX}" for s in shards}
    for entry in sorted(sidecars.iterdir()) if sidecars.is_dir() else ():
        if entry.name not in expected:
            problems.append(Problem(f"{SIDECAR_DIR}/{entry.name}", f"not the record of a shard the manifest lists. "
                                    f"Fix: {RERUN}"))
    return problems, others


def _shard_problems(entries: Iterable[ShardEntry], locations: Iterable[str]) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for entry, location in zip(entries, locations, strict=True):
        problem = (_check_remote(location, entry, seen) if is_remote(location)
                   else check_shard(Path(location), entry, seen))
        if problem is not None:
            problems.append(Problem(entry.path, problem))
    return problems


def verify_output(shards: str | Path) -> Verification:
    """Verify the dataset at `shards`: a folder holding manifest.json, the manifest file, or its URL (`http(s)://`,
    `pipe:`). Raises (ValueError, FileNotFoundError) when the manifest is missing, malformed or inconsistent."""
    text = str(shards)
    if is_remote(text):
        shard_set = resolve_shards(text)
        if shard_set.manifest is None:
            raise ValueError(f"{text}: verify compares shards with their manifest; pass the manifest's URL (or the "
                             "folder's URL ending in /)")
        return Verification(tuple(_shard_problems(shard_set.manifest.shards, shard_set.locations)), None)
    path = Path(text)
    manifest_path = path / MANIFEST_NAME if path.is_dir() else path
    manifest = load_manifest(manifest_path)
    folder = manifest_path.parent
    problems = _shard_problems(manifest.shards, (str(folder / e.path) for e in manifest.shards))
    leftovers, others = _leftovers(manifest_path, manifest)
    return Verification(tuple(problems + _stale(folder, manifest) + leftovers), tuple(others))


def _stale(folder: Path, manifest: Manifest) -> list[Problem]:
    """Shards whose sidecar records input files that changed since they were built (shards without a recorded
    input list, copied without their sidecars or written by an older version, cannot be judged and pass)."""
    problems = []
    for entry in manifest.shards:
        changed = changed_files(recorded_inputs(folder, entry.path))
        if changed:
            problems.append(Problem(entry.path, f"stale: changed since it was built: {describe_changes(changed)}. "
                                    f"Fix: {RERUN}"))
    return problems
