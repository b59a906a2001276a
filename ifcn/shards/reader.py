"""The one shard reader: every tool (`verify`, `inspect`, the trainer, the evaluator) reads shards through
`read_shard`, for both formats and from any location webdataset opens (local paths, `http(s)://`, `pipe:CMD`).

Each sample's digest is checked as it is decoded (unless the caller opts out), and every failure becomes an
`InputError` that names the shard and, when known, the sample's key.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlparse

from ifcn.errors import InputError
from ifcn.shards.records import Sample
from ifcn.shards.remote import RETRIES, open_remote, with_retries

if TYPE_CHECKING:
    from ifcn.shards.formats import RawSample, ShardFormat

REWRITE = "rerun `ifcn-prep sample` with the same options to rewrite it"
#: URL schemes read through webdataset's `gopen` (a Windows drive letter is one character, so never matches).
_REMOTE_MIN_SCHEME = 2


def is_remote(location: str) -> bool:
    """Whether `location` is a URL or `pipe:` command rather than a local path."""
    scheme = urlparse(str(location)).scheme
    return len(scheme) >= _REMOTE_MIN_SCHEME and scheme != "file"


def open_location(location: str) -> BinaryIO:
    """A binary stream of a local file, or of a URL or `pipe:` command through webdataset's `gopen` (imported only
    then: webdataset brings torch, which local readers such as `ifcn-prep verify` do not need), with the read
    timeout of `ifcn.shards.remote`."""
    if not is_remote(location):
        return open(location, "rb")
    return open_remote(location)


def fetch_fix(location: str) -> str:
    """What to do when a remote location cannot be read: a network or command problem, not a damaged shard."""
    if location.startswith("pipe:"):
        return f"check that the command works in a shell: `{location[5:]} | tar t` must list the file's contents"
    return (f"check the address and that this machine reaches it: `curl -fsSL '{location}' | tar t` must list the "
            "file's contents (a file missing on the server must be copied there)")


def read_bytes(location: str, limit: int | None = None) -> bytes:
    """The whole content of a small file (a manifest) at a local path or URL; a `ValueError` naming it when it is
    larger than `limit` bytes (checked before it is read whole: a hostile file must not exhaust memory)."""
    def too_large() -> ValueError:
        return ValueError(f"{location}: larger than {limit:,} bytes, the most a manifest may be; it is not a manifest "
                          "written by `ifcn-prep sample` (pass the manifest.json of a shard folder)")

    if not is_remote(location):
        try:
            with open(location, "rb") as f:
                if limit is not None and os.fstat(f.fileno()).st_size > limit:
                    raise too_large()
                return f.read()
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise
            raise ValueError(f"{location}: a loop of symbolic links (a link that leads back to itself). Fix: point "
                             "the link at the real file or folder, or pass that path") from None

    def fetch() -> bytes:
        with open_location(location) as stream:
            return stream.read() if limit is None else stream.read(limit + 1)

    try:
        data = with_retries(fetch)
    except Exception as e:  # curl or the pipe command failed: the file is not there or not reachable
        raise FileNotFoundError(f"{location}: could not be fetched ({type(e).__name__}: {e}). Fix: "
                                f"{fetch_fix(location)}") from None
    if limit is not None and len(data) > limit:
        raise too_large()
    return data


@contextmanager
def sample_errors(location: str, key: str) -> Iterator[None]:
    """Turn a failure to decode or use one sample (a mask that is not a PNG, sizes that disagree, clicks outside
    the image) into an `InputError` that names the shard and the key."""
    try:
        yield
    except InputError:
        raise
    except (ValueError, KeyError, UnicodeError) as e:
        raise InputError(location, f"sample {key!r} is unusable ({e})", REWRITE, kind="corrupt_sample",
                         key=key) from None


def read_failure(location: str, error: Exception, last: str | None) -> InputError:
    """A shard that could not be read: unreachable (a remote location's transfer or command failed) or damaged."""
    after = f" after sample {last!r}" if last is not None else ""
    detail = f"{type(error).__name__}: {error}"
    if is_remote(location) and isinstance(error, OSError):
        return InputError(location, f"could not be fetched{after} ({detail})", fetch_fix(location),
                          kind="unreachable")
    return InputError(location, f"unreadable or corrupt shard{after} ({detail})", REWRITE, kind="corrupt_shard")


def shard_format(location: str) -> ShardFormat:
    """The format of the shard at `location`; an `InputError` when it is no shard, or an HDF5 shard at a URL."""
    from ifcn.shards.formats import format_of_path

    try:
        fmt = format_of_path(location)
    except ValueError as e:
        raise InputError(location, str(e).split(": ", 1)[-1], "pass shard files written by `ifcn-prep sample`",
                         kind="not_a_shard") from None
    if is_remote(location) and not fmt.remote:
        raise InputError(location, f"{fmt.name} shards can only be read from local files (they need random access)",
                         "copy the shards to a local or mounted folder, or write them with --format webdataset",
                         kind="remote_hdf5")
    return fmt


def read_records(location: str | Path, start: int = 0) -> Iterator[RawSample]:
    """The raw `(key, fields)` records of one shard from position `start` (0, or a position its format's `scan`
    reported for a local file), undecoded; any read failure is an `InputError` naming the shard. A remote shard
    whose transfer fails or stalls is streamed again (at most `RETRIES` times), skipping what was already given."""
    location = str(location)
    fmt = shard_format(location)
    last: str | None = None
    done, attempt = 0, 0
    while True:
        try:
            for n, (key, fields) in enumerate(fmt.read(location, start)):
                if n < done:  # a retried remote shard streams again from its start
                    continue
                yield key, fields
                last, done = key, done + 1
            return
        except Exception as e:  # tar, HDF5, transfer and I/O failures: a corrupt, truncated or unreachable shard
            if is_remote(location) and isinstance(e, OSError) and attempt < RETRIES:
                attempt += 1
                continue
            raise read_failure(location, e, last) from e


def read_shard(location: str | Path, *, check_digest: bool = True, start: int = 0) -> Iterator[Sample]:
    """The samples of one shard in written order, from position `start` (see `read_records`).

    A read or decode failure (unreachable location, unreadable file, damaged tar header, missing field, digest
    mismatch, clicks outside the image) raises an `InputError` naming the shard and the sample's key.
    `check_digest=False` skips the per-sample sha256 (for shards verified already).
    """
    location = str(location)
    for key, fields in read_records(location, start):
        with sample_errors(location, key):
            sample = Sample.from_fields(key, fields, check_digest=check_digest)
        yield sample
