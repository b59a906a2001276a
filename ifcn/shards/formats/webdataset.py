"""WebDataset tar shards: `<key>.jpg`, `<key>.cls.png`, `<key>.obj.png`, `<key>.clicks.json`, `<key>.sha256`."""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ifcn.shards.formats import RawSample
from ifcn.shards.reader import is_remote, open_location
from ifcn.shards.records import FIELD_CLICKS, Sample


def _runs(tar: tarfile.TarFile, wanted: Callable[[str], bool]) -> Iterator[tuple[int, str, dict[str, bytes]]]:
    """(offset of its first member, key, fields) of each run of consecutive members sharing a key (the part of the
    name before the first dot), as webdataset groups them. Only `wanted` fields are read; in a seekable archive the
    data of the others is skipped with a seek."""
    current: str | None = None
    start, fields = 0, {}
    for member in tar:
        if not member.isfile():
            continue
        key, _, field = member.name.partition(".")
        if key != current:
            if current is not None:
                yield start, current, fields
            current, start, fields = key, member.offset, {}
        if wanted(field):
            extracted = tar.extractfile(member)
            assert extracted is not None
            fields[field] = extracted.read()
    if current is not None:
        yield start, current, fields


def _remote_runs(location: str) -> Iterator[tuple[int, str, dict[str, bytes]]]:
    """Every run of a tar streamed from a URL or `pipe:` command (webdataset's `gopen`). When the reader stops
    early the command is closed mid-stream and may die of SIGPIPE, which is no error; when the data end too early,
    a failed exit status (curl's for a missing file or an unreachable host) is the error to report."""
    stream = open_location(location)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            yield from _runs(tar, lambda field: True)
    except GeneratorExit:
        with contextlib.suppress(OSError):
            stream.close()
        raise
    except Exception as error:  # the data ended or broke off: a failed transfer (the command's exit status) says why
        try:
            stream.close()
        except OSError as failed:
            raise failed from error
        raise
    stream.close()


def _local_runs(location: str, start: int, wanted: Callable[[str], bool]) -> Iterator[tuple[int, str,
                                                                                            dict[str, bytes]]]:
    with open(location, "rb") as f:
        f.seek(start)  # a tar is a sequence of (header, data) blocks: reading may begin at any member's header
        with tarfile.open(fileobj=f, mode="r:") as tar:
            yield from _runs(tar, wanted)


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

    def read(self, location: str, start: int = 0) -> Iterator[RawSample]:
        """A local file is read seekable from byte offset `start`; anything webdataset's `gopen` opens
        (`http(s)://`, `pipe:CMD`) is streamed from its first byte. The standard library's tar reader checks every
        header's checksum; a damaged header after the first ends the archive early, which the readers' count checks
        against the manifest report."""
        if is_remote(location):
            if start:
                raise ValueError(f"{location}: a remote shard can only be read from its first byte")
            runs = _remote_runs(location)
        else:
            runs = _local_runs(location, start, lambda field: True)
        for _, key, fields in runs:
            yield key, fields

    def scan(self, location: str) -> Iterator[tuple[int, str, bytes]]:
        """Reads the tar headers and each sample's clicks JSON; the other members' data are skipped with seeks."""
        for position, key, fields in _local_runs(location, 0, lambda field: field == FIELD_CLICKS):
            yield position, key, fields.get(FIELD_CLICKS, b"")
