"""HDF5 shards: one `.h5` file per shard, one variable-length row per sample, random access by index.

HDF5 needs random access to the file, so these shards are read from local (or mounted) paths only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np

from ifcn.shards.formats import RawSample
from ifcn.shards.records import FIELD_CLICKS, FIELDS, Sample

_BYTES = h5py.vlen_dtype(np.dtype("uint8"))


def dataset_name(field: str) -> str:
    """HDF5 dataset name of a sample field (`cls.png` -> `cls_png`)."""
    return field.replace(".", "_")


class HDF5Format:
    """Datasets `key` (UTF-8 strings) and one variable-length uint8 dataset per field, all indexed by sample."""

    name = "hdf5"
    suffix = ".h5"
    remote = False

    def write(self, path: Path, samples: Iterable[Sample]) -> int:
        """One dataset per field that some sample has; a sample without a field (a JPEG sample in the `png`
        dataset, or the reverse) has an empty row there. Shards of JPEG samples only have no `png` dataset."""
        rows = [(s.key, s.to_fields()) for s in samples]  # encode each sample's clicks JSON once
        used = [field for field in FIELDS if any(field in fields for _, fields in rows)]
        # track_times=False and a fixed libver keep the file bytes a function of the content only.
        with h5py.File(path, "w", libver=("v110", "v110"), track_order=False) as f:
            f.attrs["format"] = "ifcn-shard"
            f.create_dataset("key", data=[key.encode() for key, _ in rows], dtype=h5py.string_dtype("utf-8"),
                             track_times=False)
            for field in used:
                ds = f.create_dataset(dataset_name(field), shape=(len(rows),), dtype=_BYTES, track_times=False)
                for i, (_, fields) in enumerate(rows):
                    ds[i] = np.frombuffer(fields.get(field, b""), np.uint8)
        return len(rows)

    def read(self, location: str, start: int = 0) -> Iterator[RawSample]:
        """Rows from `start` (a row index: positions are rows)."""
        with h5py.File(location, "r") as f:
            for i in range(start, f["key"].shape[0]):
                yield read_row(f, i)

    def scan(self, location: str) -> Iterator[tuple[int, str, bytes]]:
        with h5py.File(location, "r") as f:
            clicks = f[dataset_name(FIELD_CLICKS)]
            for i in range(f["key"].shape[0]):
                yield i, _key(f, i), clicks[i].tobytes()


def _key(f: h5py.File, index: int) -> str:
    key = f["key"][index]
    return key.decode() if isinstance(key, bytes) else str(key)


def read_row(f: h5py.File, index: int) -> RawSample:
    """Raw sample `index` of an open shard file (random access); its fields are the non-empty rows."""
    rows = {field: f[dataset_name(field)][index].tobytes() for field in FIELDS if dataset_name(field) in f}
    return _key(f, index), {field: data for field, data in rows.items() if data}
