"""Demo sessions: one image, its clicks and its last prediction per browser tab, kept apart by random ids.

The store holds at most `capacity` sessions and forgets the least recently used one first, so a server left open
for days keeps a bounded memory; a forgotten id is answered like an unknown one (404: start a new session).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

import numpy as np

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.demo.history import DEFAULT_CAPACITY, PrevMaskHistory
from ifcn.trainer.web.lru import LruStore


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


class SessionStore(LruStore[Session]):
    """Sessions by id, the least recently used forgotten first; each session keeps at most `history` previous
    predictions."""

    def __init__(self, capacity: int = 32, history: int = DEFAULT_CAPACITY) -> None:
        super().__init__(capacity)
        self.history = history

    def create(self, name: str, image: np.ndarray, original_size: tuple[int, int]) -> Session:
        session = Session(secrets.token_urlsafe(16), name, image, original_size,
                          history=PrevMaskHistory(self.history))
        return self.add(session.id, session)
