"""At most N heavy jobs at once (image decodes in a server): a thread-safe bounded semaphore as a context manager.

A server's worker threads each decoding a large upload would together need N times the memory of one; with slots,
the others wait their turn (their request bodies are already bounded by the body limit).
"""

from __future__ import annotations

import threading
from types import TracebackType


class Slots:
    """`with slots:` runs the block once one of `count` slots is free."""

    def __init__(self, count: int, flag: str = "--max-decodes") -> None:
        if count < 1:
            raise ValueError(f"{flag} must be at least 1, got {count}")
        self.count = count
        self._semaphore = threading.BoundedSemaphore(count)

    def __enter__(self) -> Slots:
        self._semaphore.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._semaphore.release()
