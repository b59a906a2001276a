"""WebDataset tar shards: `<key>.jpg`, `<key>.cls.png`, `<key>.obj.png`, `<key>.clicks.json`, `<key>.sha256`."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ifcn.shards.formats import RawSample
from ifcn.shards.records import Sample


class WebDatasetFormat:
    """Plain (uncompressed) POSIX tar: JPEG and PNG do not compress further, and seeking stays cheap."""

    name = "webdataset"
    suffix = ".tar"
    remote = True

    def write(self, path: Path, samples: Iterable[Sample]) -> int:
        """Members sorted by field within a sample, fixed mtime/owner/mode: reruns are byte-identical.

        The standard library's tarfile writes what `webdataset.TarWriter` would (USTAR headers, one 512-byte header
        per member) without importing webdataset's torch-dependent parts into every pipeline worker.
        """
        count = 0
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in samples:
                if "." in sample.key or "/" in sample.key:
                    raise ValueError(f"sample key {sample.key!r} contains '.' or '/', which breaks webdataset grouping")
                for field, data in sorted(sample.to_fields().items()):
                    info = tarfile.TarInfo(f"{sample.key}.{field}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o444
                    info.uname = info.gname = "ifcn"
                    tar.addfile(info, io.BytesIO(data))
                count += 1
        return count

    def read(self, location: str) -> Iterator[RawSample]:
        """Stream the tar from anything webdataset's `gopen` opens (a path, `http(s)://`, `pipe:CMD`), grouping
        consecutive members by key (the part of the name before the first dot), as webdataset does.

        The standard library's streaming tar reader checks every header's checksum, so a damaged header is an error.
        """
        from ifcn.shards.reader import open_location

        current: str | None = None
        fields: dict[str, bytes] = {}
        with open_location(location) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, field = member.name.partition(".")
                if key != current:
                    if current is not None:
                        yield current, fields
                    current, fields = key, {}
                extracted = tar.extractfile(member)
                assert extracted is not None
                fields[field] = extracted.read()
        if current is not None:
            yield current, fields
