"""Dataset sources: every released layout (VOC, SBD, GrabCut, Berkeley, DAVIS, COCO) behind one small interface, in
a registry keyed by the `--source` name, as the shard formats are.

A source lists a split (its image keys, each with what a worker needs to read it and any problem found while listing,
such as a missing file) and loads one image: its stored bytes, its object map (0 background, 1..N objects, 255 ignore)
and its class map (0 background, class ids, 255 ignore or unknown class). Everything downstream (click sampling,
shards, manifest, resume, verify) is the same for every source. Each source also writes a small synthetic dataset in
its exact released layout (`ifcn-prep synth --layout`), which the tests and the README read back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ifcn.errors import InputError
from ifcn.keys import check_unique_keys
from ifcn.labels import VOID

if TYPE_CHECKING:
    from ifcn.pipeline.synth import SynthConfig

#: What a split name may be: it prefixes the shard file names (`train-000000.tar`).
_SPLIT_NAME = re.compile(r"\w+")


@dataclass(frozen=True)
class SourceSpec:
    """Where a source's data is, as the user gave it: `--source`, `--root` (`--voc-root`, `--coco-images`), `--split`
    and, for COCO, `--coco-json`."""

    name: str
    root: Path | None
    split: str | None = None
    coco_json: Path | None = None

    def cli_args(self) -> list[str]:
        """The `ifcn-prep sample` options that name this data: `--source`, where it is, and `--split` when set."""
        where = (["--coco-images", str(self.root), "--coco-json", str(self.coco_json)] if self.coco_json is not None
                 else ["--root", str(self.root)])
        return ["--source", self.name, *where, *(["--split", self.split] if self.split else [])]


@dataclass(frozen=True)
class ImageRef:
    """One image of a listed split: its shard key, what `load` needs besides the root (source-specific, small and
    picklable: it travels in the shard task), the problem found while listing (the image is then never loaded) and
    its name in the dataset (the key when not given)."""

    key: str
    data: Any = None
    problem: InputError | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.key)


@dataclass(frozen=True)
class Listing:
    """A split as a source listed it. `root` is the resolved dataset folder the manifest records; `notes` are
    warnings for the user; a source whose labels live in one file (COCO) names it with its sha256, so that a changed
    file is another job."""

    root: Path
    split: str
    refs: tuple[ImageRef, ...]
    notes: tuple[str, ...] = ()
    annotation_file: str = ""
    annotation_sha256: str = ""

    def __post_init__(self) -> None:
        clash = check_unique_keys((r.key, r.name) for r in self.refs)
        if clash:
            raise InputError(self.root, f"{clash}, so their samples could not be told apart",
                             "rename one of the two images", kind="duplicate_id")

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self.refs]

    @property
    def problems(self) -> list[InputError]:
        return [r.problem for r in self.refs if r.problem is not None]


@dataclass(frozen=True, eq=False)
class SourceImage:
    """One image as every source gives it: the bytes a shard stores (JPEG or PNG), H×W uint8 object and class maps
    (read-only shared data: copy to change them), the files they were read from (recorded with the shard, so that a
    rerun notices when one changes; a source's one annotation file is part of the job instead), and `name` as in
    `ImageRef`."""

    key: str
    image: bytes
    object_map: np.ndarray
    class_map: np.ndarray
    files: tuple[Path, ...] = ()
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.key)

    @property
    def height(self) -> int:
        return int(self.object_map.shape[0])

    @property
    def width(self) -> int:
        return int(self.object_map.shape[1])


class DatasetSource(Protocol):
    """What a source provides."""

    name: str
    #: The split names of the layout; empty when any name goes (COCO names a split after its annotation file).
    splits: tuple[str, ...]
    #: The folder under `ifcn-prep synth --out OUT --layout NAME` that the synthetic dataset is written to (pass it
    #: --root).
    synth_folder: str

    def default_split(self, spec: SourceSpec) -> str | None:
        """The split used when `--split` is not given, or None when it must be."""

    def list_split(self, spec: SourceSpec, split: str) -> Listing:
        """Check the layout and list the split's images; raise InputError naming the file or folder at fault."""

    def load(self, root: Path, ref: ImageRef) -> SourceImage:
        """Read and check one listed image; raise InputError naming the file at fault."""

    def write_synthetic(self, folder: Path, config: SynthConfig) -> None:
        """Write a synthetic dataset of `config` in this layout into the new folder `folder`."""


def resolve_split(spec: SourceSpec) -> str:
    """The split to read: `--split`, or the source's default; ValueError naming the flag when it is missing or not one
    of the layout's splits."""
    source = get_source(spec.name)
    split = spec.split or source.default_split(spec)
    if split is None:
        raise ValueError(f"--split is required for --source {spec.name}: one of {', '.join(source.splits)}")
    if source.splits and split not in source.splits:
        raise ValueError(f"--split must be one of {', '.join(source.splits)} for --source {spec.name} (got {split!r})")
    if not _SPLIT_NAME.fullmatch(split):
        raise ValueError(f"--split must be letters, digits and underscores: it names the shard files (got {split!r})")
    return split


def classless_map(object_map: np.ndarray) -> np.ndarray:
    """The class map of a source without classes: 0 on background, 255 (ignored by the semantic task) elsewhere."""
    return np.where(object_map == 0, 0, VOID).astype(np.uint8)


def single_object_map(obj: np.ndarray, ignore: np.ndarray | None = None) -> np.ndarray:
    """The object map of a one-object mask: 1 on the object, 255 on `ignore`, 0 elsewhere."""
    object_map = obj.astype(np.uint8)
    if ignore is not None:
        object_map[ignore] = VOID
    return object_map


def _registry() -> dict[str, DatasetSource]:
    from ifcn.pipeline.sources.coco import CocoSource
    from ifcn.pipeline.sources.davis import DAVIS
    from ifcn.pipeline.sources.grabcut_berkeley import BERKELEY, GRABCUT
    from ifcn.pipeline.sources.sbd import SbdSource
    from ifcn.pipeline.sources.voc import VocSource

    return {s.name: s for s in (VocSource(), SbdSource(), GRABCUT, BERKELEY, DAVIS, CocoSource())}


SOURCES: dict[str, DatasetSource] = _registry()


def get_source(name: str) -> DatasetSource:
    """The source registered as `name`, with an error that lists the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"--source must be one of {', '.join(SOURCES)} (got {name!r})") from None


def make_synth_layouts(out: Path, config: SynthConfig, split: str = "val", *,
                       overwrite: bool = False) -> dict[str, SourceSpec]:
    """Write a synthetic dataset in every source's layout under `out` (replacing existing ones only with `overwrite`)
    and return `synth_layout_specs(out, split)`. Small configs take well under a second per layout."""
    from ifcn.pipeline.synth import make_synth_dataset

    for name in SOURCES:
        make_synth_dataset(out, config, layout=name, overwrite=overwrite)
    return synth_layout_specs(out, split)


def synth_layout_specs(out: Path, split: str = "val") -> dict[str, SourceSpec]:
    """Per source, where split `split` (train or val) of the synthetic layouts under `out` is (GrabCut, Berkeley,
    DAVIS: their only split, `all`; COCO: `val2017`), ready for `SampleJob(source=..., root=..., split=...,
    coco_json=...)` or `ifcn-prep sample --source NAME --root ROOT --split SPLIT`."""
    specs = {}
    for name, source in SOURCES.items():
        root = Path(out) / source.synth_folder
        if name == "coco":
            specs[name] = SourceSpec(name, root / f"{split}2017", f"{split}2017",
                                     root / f"annotations/instances_{split}2017.json")
        else:
            specs[name] = SourceSpec(name, root, split if source.splits != ("all",) else "all")
    return specs
