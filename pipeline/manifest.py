"""The dataset manifest: what was generated, from what, with which parameters, and a checksum per shard.

`manifest.json` is written last and atomically by `ifcn-prep sample`; the trainer and the evaluator read shard lists,
sample/pair counts and the manifest id (recorded in checkpoints and reports) from it. Its JSON Schema is
`manifests/manifest.schema.json`.
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import braceexpand

from ifcn.pipeline.atomic import atomic_write_bytes

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


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
    """Where the images came from: the dataset root, the split and a hash of its id list (order included)."""

    root: str
    split: str
    ids_sha256: str
    num_ids: int


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


def load_manifest(path: Path) -> Manifest:
    """Read and schema-check a manifest; errors name the file."""
    import jsonschema

    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no manifest here; run `ifcn-prep sample --out {path.parent}` first") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); rerun `ifcn-prep sample` to rewrite it") from None
    try:
        jsonschema.validate(d, schema())
    except jsonschema.ValidationError as e:
        raise ValueError(f"{path}: does not follow the manifest schema: {e.message}") from None
    if d["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema version {d['schema_version']}, this tool reads {SCHEMA_VERSION}")
    return Manifest.from_dict(d)


@dataclass(frozen=True)
class ShardSet:
    """Shard files to read, with their manifest when one describes them (for counts and the manifest id)."""

    paths: tuple[Path, ...]
    manifest: Manifest | None = None

    @property
    def entries(self) -> tuple[ShardEntry, ...] | None:
        return self.manifest.shards if self.manifest else None


def resolve_shards(spec: str | Path) -> ShardSet:
    """Turn a user's `--shards` value into shard files.

    Accepts a folder holding `manifest.json`, a manifest file, or a webdataset brace/glob pattern of shard files
    (`out/train-{000000..000015}.tar`). Every listed file must exist.
    """
    text = str(spec)
    path = Path(text)
    if path.is_dir() or path.name.endswith(".json"):
        manifest_path = path / MANIFEST_NAME if path.is_dir() else path
        manifest = load_manifest(manifest_path)
        paths = tuple(manifest_path.parent / s.path for s in manifest.shards)
        shard_set = ShardSet(paths, manifest)
    else:
        expanded = [p for pattern in braceexpand.braceexpand(text) for p in (sorted(glob.glob(pattern)) or [pattern])]
        shard_set = ShardSet(tuple(Path(p) for p in expanded))
    missing = [str(p) for p in shard_set.paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"shard file(s) missing: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; "
                                "rerun `ifcn-prep sample` with the same options to write what is missing")
    if not shard_set.paths:
        raise FileNotFoundError(f"{text}: no shard files found")
    return shard_set
