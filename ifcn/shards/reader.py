"""The one shard reader: every tool (`verify`, `inspect`, the trainer, the evaluator) reads shards through
`read_shard`, for both formats and from any location webdataset opens (local paths, `http(s)://`, `pipe:CMD`).

Each sample's digest is checked as it is decoded (unless the caller opts out), and every failure becomes an
`InputError` that names the shard and, when known, the sample's key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from ifcn.errors import InputError
from ifcn.shards.records import Sample

REWRITE = "rerun `ifcn-prep sample` with the same options to rewrite it"
#: URL schemes read through webdataset's `gopen` (a Windows drive letter is one character, so never matches).
_REMOTE_MIN_SCHEME = 2


def is_remote(location: str) -> bool:
    """Whether `location` is a URL or `pipe:` command rather than a local path."""
    scheme = urlparse(str(location)).scheme
    return len(scheme) >= _REMOTE_MIN_SCHEME and scheme != "file"


def open_location(location: str) -> BinaryIO:
    """A binary stream of a local file, or of a URL or `pipe:` command through webdataset's `gopen` (imported only
    then: webdataset brings torch, which local readers such as `ifcn-prep verify` do not need)."""
    if not is_remote(location):
        return open(location, "rb")
    from webdataset.gopen import gopen

    return gopen(location, "rb")


def read_bytes(location: str) -> bytes:
    """The whole content of a small file (a manifest) at a local path or URL."""
    if not is_remote(location):
        return Path(location).read_bytes()
    try:
        with open_location(location) as stream:
            return stream.read()
    except Exception as e:  # curl or the pipe command failed: the file is not there or not reachable
        raise FileNotFoundError(f"{location}: could not be read ({type(e).__name__}: {e})") from None


def read_shard(location: str | Path, *, check_digest: bool = True) -> Iterator[Sample]:
    """The samples of one shard in written order.

    A read or decode failure (unreadable file, damaged tar header, missing field, digest mismatch, clicks outside the
    image) raises an `InputError` naming the shard and the sample's key.
    """
    from ifcn.shards.formats import format_of_path

    location = str(location)
    try:
        fmt = format_of_path(location)
    except ValueError as e:
        raise InputError(location, str(e).split(": ", 1)[-1], "pass shard files written by `ifcn-prep sample`",
                         kind="not_a_shard") from None
    if is_remote(location) and not fmt.remote:
        raise InputError(location, f"{fmt.name} shards can only be read from local files (they need random access)",
                         "copy the shards to a local or mounted folder, or write them with --format webdataset",
                         kind="remote_hdf5")
    last: str | None = None
    try:
        for key, fields in fmt.read(location):
            try:
                sample = Sample.from_fields(key, fields, check_digest=check_digest)
            except (ValueError, KeyError, UnicodeError) as e:
                raise InputError(location, f"sample {key!r} is unusable ({e})", REWRITE, kind="corrupt_sample",
                                 key=key) from None
            last = key
            yield sample
    except InputError:
        raise
    except Exception as e:  # tar, HDF5 and I/O failures all mean a corrupt, truncated or unreachable shard
        after = f" after sample {last!r}" if last is not None else ""
        raise InputError(location, f"unreadable or corrupt shard{after} ({type(e).__name__}: {e})", REWRITE,
                         kind="corrupt_shard") from e
