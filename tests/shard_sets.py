"""Shard sets made for tests from the session fixtures' samples: rewritten, regrouped or damaged on purpose, with
a manifest that describes them (or, for the manifest faults, one edited afterwards)."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ifcn.io import file_sha256
from ifcn.shards.formats import get_format
from ifcn.shards.manifest import Manifest, ShardEntry, Totals, load_manifest, write_manifest
from ifcn.shards.reader import read_shard
from ifcn.shards.records import Sample


def shard_samples(folder: Path) -> list[list[Sample]]:
    """The samples of each shard of the set in `folder` (a folder holding manifest.json)."""
    return [list(read_shard(folder / entry.path)) for entry in load_manifest(folder).shards]


def _totals(totals: Totals, entries: list[ShardEntry]) -> Totals:
    """`totals` with the counts that are the sums of `entries`' (what a consistent manifest records)."""
    return replace(totals, images=sum(e.samples for e in entries), objects=sum(e.objects for e in entries),
                   pairs=sum(e.pairs for e in entries))


def write_set(folder: Path, parts: list[list[Sample]], base: Manifest, fmt: str = "webdataset") -> Path:
    """Write each list of `parts` as one shard of `folder`, with a manifest that describes them (the rest is
    `base`'s: parameters, source); returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    shard_format = get_format(fmt)
    entries = []
    for n, part in enumerate(parts):
        path = folder / f"part-{n:06d}{shard_format.suffix}"
        shard_format.write(path, part)
        sha256, size = file_sha256(path)
        entries.append(ShardEntry(path.name, fmt, len(part), sum(len(s.clicks.objects) for s in part),
                                  sum(s.clicks.num_pairs for s in part), size, sha256, part[0].key, part[-1].key))
    write_manifest(folder, replace(base, format=fmt, shards=tuple(entries), totals=_totals(base.totals, entries)))
    return folder


def edit_manifest(folder: Path, shard: int, *, keep_totals: bool = False, **changes: object) -> None:
    """Change fields of shard number `shard`'s entry in `folder`'s manifest; the totals follow (so the manifest
    stays consistent in itself) unless `keep_totals`."""
    manifest = load_manifest(folder)
    shards = list(manifest.shards)
    shards[shard] = replace(shards[shard], **changes)
    totals = manifest.totals if keep_totals else _totals(manifest.totals, shards)
    write_manifest(folder, replace(manifest, shards=tuple(shards), totals=totals))


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 (a free port) from a thread; yields the base URL (ending with '/')."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
