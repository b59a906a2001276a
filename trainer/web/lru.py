"""A thread-safe id -> value store that forgets the least recently used entry first: the demo's sessions and the
annotation tool's drafts (one per browser tab) keep a bounded memory however long a server stays open; a forgotten
id is answered like an unknown one."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class LruStore(Generic[T]):
    """At most `capacity` values by id; `get` marks a value as used, `add` drops the least recently used beyond it."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"the store's capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, value: T) -> T:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def get(self, key: str) -> T | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._items.pop(key, None) is not None

    def __len__(self) -> int:
        return len(self._items)
