"""Demo sessions: one image, its clicks and its last prediction per browser tab, kept apart by random ids.

The store holds at most `capacity` sessions and forgets the least recently used one first, so a server left open
for days keeps a bounded memory; a forgotten id is answered like an unknown one (404: start a new session).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.demo.history import DEFAULT_CAPACITY, PrevMaskHistory


@dataclass
class Session:
    """The state of one tab. `mask` is the last (H, W) bool prediction; `prediction_ms` its server time. For a
    `--prev-mask` network, `history` holds the last probabilities it returned (what it sees as the previous
    prediction at the next click)."""

    id: str
    name: str
    image: np.ndarray
    original_size: tuple[int, int]
    clicks: list[Click] = field(default_factory=list)
    grabcut: bool = False
    mask: np.ndarray | None = None
    prediction_ms: float | None = None
    history: PrevMaskHistory = field(default_factory=PrevMaskHistory, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the image the clicks and the mask refer to."""
        return self.image.shape[0], self.image.shape[1]

    def current_mask(self) -> np.ndarray:
        """The last prediction, or an empty mask before the first click."""
        return np.zeros(self.size, bool) if self.mask is None else self.mask


class SessionStore:
    """Thread-safe id -> Session map with least-recently-used eviction; each session keeps at most `history`
    previous predictions."""

    def __init__(self, capacity: int = 32, history: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"the session capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.history = history
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, name: str, image: np.ndarray, original_size: tuple[int, int]) -> Session:
        session = Session(secrets.token_urlsafe(16), name, image, original_size,
                          history=PrevMaskHistory(self.history))
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self.capacity:
                self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                self._sessions.move_to_end(session_id)
            return session

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def __len__(self) -> int:
        return len(self._sessions)
