"""WebDataset tar shards: `<key>.jpg`, `<key>.cls.png`, `<key>.obj.png`, `<key>.clicks.json` per sample."""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import webdataset as wds

from ifcn.pipeline.records import Sample


class WebDatasetFormat:
    """Plain (uncompressed) POSIX tar: JPEG and PNG do not compress further, and seeking stays cheap."""

    name = "webdataset"
    suffix = ".tar"

    def write(self, path: Path, samples: Iterable[Sample]) -> int:
        count = 0
        with open(path, "wb") as f:
            # Fixed mtime, owner and mode, and webdataset's sorted member order: reruns are byte-identical.
            writer = wds.TarWriter(f, user="ifcn", group="ifcn", mode=0o444, encoder=False, mtime=0.0,
                                   format=tarfile.USTAR_FORMAT)
            for sample in samples:
                if "." in sample.key or "/" in sample.key:
                    raise ValueError(f"sample key {sample.key!r} contains '.' or '/', which breaks webdataset grouping")
                writer.write({"__key__": sample.key, **sample.to_fields()})
                count += 1
            writer.close()
        return count

    def read(self, path: Path) -> Iterator[Sample]:
        """Read with the standard library's tarfile (no webdataset pipeline needed for random inspection)."""
        current: str | None = None
        fields: dict[str, bytes] = {}
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, field = member.name.partition(".")
                if key != current:
                    if current is not None:
                        yield Sample.from_fields(current, fields)
                    current, fields = key, {}
                extracted = tar.extractfile(member)
                assert extracted is not None
                fields[field] = extracted.read()
        if current is not None:
            yield Sample.from_fields(current, fields)
