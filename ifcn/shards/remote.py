"""Reading a URL or `pipe:` command without hanging: a read timeout and a bounded number of retries.

A server that sends part of a shard and then stalls would otherwise block `verify`, training and evaluation forever
(curl waits, and `--max-minutes` is only checked between steps). Every remote stream is read through `open_remote`:
when no byte arrives for `read_timeout()` seconds (`--read-timeout`, default 60), the transfer command is killed and
a `StalledError` names the location. Callers retry such failures `RETRIES` times, then stop with the location named.
The timeout travels in the environment (`IFCN_READ_TIMEOUT`), so data-loader worker processes read with it too.
"""

from __future__ import annotations

import io
import os
import select
from collections.abc import Callable
from contextlib import suppress
from typing import Any, BinaryIO, TypeVar

import click

READ_TIMEOUT_ENV = "IFCN_READ_TIMEOUT"
DEFAULT_READ_TIMEOUT = 60.0
#: Further attempts after a remote read failed (a stall, a broken transfer), before the error stops the command.
RETRIES = 2
T = TypeVar("T")


class StalledError(TimeoutError):
    """No data arrived from a remote location within the read timeout."""


def read_timeout() -> float:
    """Seconds without a byte after which a remote read gives up (`--read-timeout`)."""
    try:
        seconds = float(os.environ.get(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT))
    except ValueError:
        return DEFAULT_READ_TIMEOUT
    return seconds if seconds > 0 else DEFAULT_READ_TIMEOUT


def set_read_timeout(seconds: float) -> None:
    """Make `seconds` the read timeout of this process and the processes it starts (loader workers)."""
    if not seconds > 0:
        raise ValueError(f"--read-timeout must be > 0 seconds, got {seconds}")
    os.environ[READ_TIMEOUT_ENV] = repr(float(seconds))


class _TimedPipe(io.RawIOBase):
    """The output of a transfer command (webdataset's `Pipe`), read straight from its file descriptor so that a
    wait for data can be bounded."""

    def __init__(self, pipe: Any, location: str, timeout: float):
        self.pipe, self.location, self.timeout = pipe, location, timeout
        self.fd = pipe.stream.fileno()
        self.stalled = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            self.stalled = True
            with suppress(OSError):
                self.pipe.proc.kill()
            raise StalledError(f"{self.location}: no data for {self.timeout:g} s (--read-timeout); the server or "
                               "command stalled")
        data = os.read(self.fd, len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            super().close()
            if self.stalled:  # killed by us: its exit status says nothing the StalledError did not
                with suppress(OSError):
                    self.pipe.close()
            else:
                self.pipe.close()  # waits for the command; a failed exit status raises OSError


def open_remote(location: str) -> BinaryIO:
    """A buffered stream of a URL (`curl`) or `pipe:` command (webdataset's `gopen`) with the read timeout."""
    from webdataset.gopen import gopen

    pipe = gopen(location, "rb")
    if not hasattr(pipe, "proc"):  # a scheme gopen reads in-process: no command to bound
        return pipe
    return io.BufferedReader(_TimedPipe(pipe, location, read_timeout()), 1 << 16)


def with_retries(read: Callable[[], T]) -> T:
    """`read()`, tried again up to `RETRIES` times when it fails with an OSError (stalls and transfer failures)."""
    for attempt in range(RETRIES + 1):
        try:
            return read()
        except OSError:
            if attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


def _set_from_flag(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    set_read_timeout(value)
    return value


#: The `--read-timeout` option of every command that reads shards or manifests.
read_timeout_option = click.option(
    "--read-timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_READ_TIMEOUT, show_default=True,
    expose_value=False, callback=_set_from_flag, is_eager=True,
    help=f"Seconds without data after which a remote (http(s):// or pipe:) read gives up; it is retried {RETRIES} "
         "times, then the command stops naming the URL.")
