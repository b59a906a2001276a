"""The dataset manifest: what was generated, from what, with which parameters, and a checksum per shard.

`manifest.json` is written last and atomically by `ifcn-prep sample`; the trainer and the evaluator read shard lists,
sample/pair counts and the manifest id (recorded in checkpoints and reports) from it. Its JSON Schema is
`manifests/manifest.schema.json`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import braceexpand

from ifcn.io import atomic_write_bytes
from ifcn.shards.reader import is_remote, read_bytes

#: 2: every sample carries a sha256 of its fields (shards of version 1 must be rewritten).
SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
#: The largest manifest read (about 400 bytes per shard: room for 100,000 shards and their skipped images); a larger
#: file is refused before it is read whole.
MAX_MANIFEST_BYTES = 64 << 20
#: What a shard path in a manifest may be: a bare file name (no folder, so it can never point outside).
_SHARD_NAME = re.compile(r"[\w.+-]+")


@dataclass(frozen=True)
class ShardEntry:
    """One shard file; `path` is relative to the manifest's folder."""

    path: str
    format: str
    samples: int
    objects: int
    pairs: int
    bytes: int
    sha256: str
    first_key: str
    last_key: str


@dataclass(frozen=True)
class Source:
    """Where the images came from: the source (`voc`, `sbd`, `grabcut`, `berkeley`, `davis`, `coco`: evaluation
    reports label their rows with it), the dataset root, the split, a hash of its id list (order included) and, for a
    source whose labels live in one file (COCO), that file and its sha256. Manifests written before there were other
    sources are VOC's."""

    root: str
    split: str
    ids_sha256: str
    num_ids: int
    name: str = "voc"
    annotation_file: str = ""
    annotation_sha256: str = ""


@dataclass(frozen=True)
class SkippedImage:
    """An image left out under `--on-error skip`, with the file at fault and the reason."""

    key: str
    file: str
    reason: str


@dataclass(frozen=True)
class Totals:
    """Dataset-wide counts; `skipped_objects` maps a skip reason to its count."""

    images: int
    objects: int
    pairs: int
    skipped_objects: dict[str, int] = field(default_factory=dict)
    skipped_images: tuple[SkippedImage, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """The whole manifest. `params` holds every generation parameter (click config, seed, format, shard size)."""

    schema_version: int
    tool_version: str
    format: str
    params: dict[str, Any]
    source: Source
    shards: tuple[ShardEntry, ...]
    totals: Totals

    @property
    def id(self) -> str:
        """A short content id (parameters, source and shard checksums) recorded by checkpoints and reports."""
        core = {"params": self.params, "source": asdict(self.source), "shards": [s.sha256 for s in self.shards]}
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]

    def to_json_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    def check_consistent(self) -> None:
        """Raise ValueError when the manifest contradicts itself: a shard path that leaves the manifest's folder, a
        shard listed twice, or totals that are not the sums of the shards' counts (either would make a reader repeat
        data)."""
        listed: set[str] = set()
        for s in self.shards:
            if not _SHARD_NAME.fullmatch(s.path) or s.path in (".", ".."):
                raise ValueError(f"shard path {s.path!r} is not a plain file name in the manifest's folder")
            if s.path in listed:
                raise ValueError(f"shard {s.path!r} is listed twice")
            listed.add(s.path)
        sums = (sum(e.samples for e in self.shards), sum(e.objects for e in self.shards),
                sum(e.pairs for e in self.shards))
        totals = (self.totals.images, self.totals.objects, self.totals.pairs)
        if sums != totals:
            raise ValueError(f"its shards' counts sum to (images, objects, pairs) = {sums}, its totals say {totals}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        totals = dict(d["totals"])
        totals["skipped_images"] = tuple(SkippedImage(**s) for s in totals.get("skipped_images", ()))
        return cls(schema_version=int(d["schema_version"]), tool_version=str(d["tool_version"]),
                   format=str(d["format"]), params=dict(d["params"]), source=Source(**d["source"]),
                   shards=tuple(ShardEntry(**s) for s in d["shards"]), totals=Totals(**totals))


def schema() -> dict[str, Any]:
    """The manifest's JSON Schema, shipped in `ifcn.manifests`."""
    from importlib.resources import files

    return json.loads(files("ifcn.manifests").joinpath("manifest.schema.json").read_text())


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Validate `manifest` against the schema and write `folder/manifest.json` atomically."""
    import jsonschema

    data = manifest.to_json_bytes()
    jsonschema.validate(json.loads(data), schema())
    path = Path(folder) / MANIFEST_NAME
    atomic_write_bytes(path, data)
    return path


def load_manifest(location: str | Path) -> Manifest:
    """Read, schema-check and consistency-check a manifest (a local folder or file, or a URL); errors name it."""
    import jsonschema

    text = str(location)
    if not is_remote(text) and Path(text).is_dir():
        text = str(Path(text) / MANIFEST_NAME)
    try:
        d = json.loads(read_bytes(text, MAX_MANIFEST_BYTES))
    except FileNotFoundError:
        if is_remote(text):  # read_bytes said why the transfer failed and what to check
            raise
        raise FileNotFoundError(f"{text}: no manifest here; run `ifcn-prep sample --out {Path(text).parent}` "
                                "first") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{text}: not valid JSON ({e}); rerun `ifcn-prep sample` to rewrite it") from None
    try:
        jsonschema.validate(d, schema())
    except jsonschema.ValidationError as e:
        raise ValueError(f"{text}: does not follow the manifest schema: {e.message}") from None
    if d["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"{text}: schema version {d['schema_version']}, this tool reads {SCHEMA_VERSION}; rewrite "
                         "the shards with this version (`ifcn-prep sample ... --overwrite`)")
    manifest = Manifest.from_dict(d)
    try:
        manifest.check_consistent()
    except ValueError as e:
        raise ValueError(f"{text}: {e}; rewrite it with `ifcn-prep sample ... --overwrite`") from None
    return manifest


@dataclass(frozen=True)
class ShardSet:
    """Shard locations to read (local paths or URLs), with their manifest when one describes them."""

    locations: tuple[str, ...]
    manifest: Manifest | None = None

    @property
    def where(self) -> str:
        """Where the set lives, for messages: the first shard's folder (or URL prefix)."""
        first = self.locations[0]
        return first.rsplit("/", 1)[0] if "/" in first else first


def sibling(manifest_location: str, name: str) -> str:
    """The location of file `name` next to a manifest: its folder, URL or `pipe:` command with the manifest's file
    name replaced (`pipe:aws s3 cp s3://b/d/manifest.json -` -> `pipe:aws s3 cp s3://b/d/train-000000.tar -`)."""
    if not is_remote(manifest_location):
        return str(Path(manifest_location).parent / name)
    words = manifest_location.split(" ")
    for i in reversed(range(len(words))):
        if words[i].endswith(".json"):
            head, slash, _ = words[i].rpartition("/")
            words[i] = f"{head}{slash}{name}" if slash else (head + name if head.startswith("pipe:") else name)
            return " ".join(words)
    raise ValueError(f"{manifest_location}: cannot tell the manifest's file name in it (no word ending in .json)")


def _is_manifest(spec: str) -> bool:
    return spec.split(" ")[-1].endswith(".json") or any(w.endswith(".json") for w in spec.split(" ")[1:])


def resolve_shards(spec: str | Path) -> ShardSet:
    """Turn a user's `--shards` value into shard locations.

    Accepts what webdataset accepts: a local folder holding `manifest.json`, a manifest file or its URL
    (`http(s)://host/dir/manifest.json`, `http(s)://host/dir/`, `pipe:CMD .../manifest.json ...`), whose shards are
    read from the same place; or a brace/glob pattern of shard files or URLs (`out/train-{000000..000015}.tar`).
    Local files must exist; remote ones are checked when read.
    """
    text = str(spec)
    if is_remote(text):
        if text.endswith("/") and not text.startswith("pipe:"):
            text += MANIFEST_NAME
        if _is_manifest(text):
            manifest = load_manifest(text)
            return ShardSet(tuple(sibling(text, s.path) for s in manifest.shards), manifest)
        return ShardSet(tuple(braceexpand.braceexpand(text)))
    path = Path(text)
    if path.is_dir() or path.name.endswith(".json"):
        manifest_path = path / MANIFEST_NAME if path.is_dir() else path
        manifest = load_manifest(manifest_path)
        shard_set = ShardSet(tuple(sibling(str(manifest_path), s.path) for s in manifest.shards), manifest)
    else:
        expanded = [p for pattern in braceexpand.braceexpand(text) for p in (sorted(glob.glob(pattern)) or [pattern])]
        shard_set = ShardSet(tuple(expanded))
    if not shard_set.locations:
        raise FileNotFoundError(f"{text}: no shard files found")
    missing = [p for p in shard_set.locations if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"shard file(s) missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
                                "rerun `ifcn-prep sample` with the same options to write what is missing")
    return shard_set
