"""The previous predictions a `--prev-mask` network needs, at most `capacity` of them per session.

The network sees, with click k, its probabilities after click k - 1; undo goes back to earlier ones. One float map
per click without a cap grows a session by H x W x 4 bytes per click (64 MB at 4096²), so only the last `capacity`
maps are kept. Undoing past them replays the clicks from the first one: slower for that one request, but the same
mask as if every map had been kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from ifcn.trainer.core.clicks import Click

#: Default `--prev-mask-history`.
DEFAULT_CAPACITY = 4
#: Computes the probabilities for `clicks` given the map after the click before the last one (None at the first).
PredictFn = Callable[[Sequence[Click], "np.ndarray | None"], np.ndarray]


class PrevMaskHistory:
    """(click count, probabilities after that click) of the last `capacity` predictions, oldest first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"--prev-mask-history must be at least 1, got {capacity}")
        self._maps: deque[tuple[int, np.ndarray]] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._maps)

    def append(self, clicks: int, probabilities: np.ndarray) -> None:
        """Record the map returned for the first `clicks` clicks (the oldest kept one goes when full)."""
        self.truncate(clicks - 1)
        self._maps.append((clicks, probabilities))

    def truncate(self, clicks: int) -> None:
        """Forget the maps of more than `clicks` clicks (after an undo or a reset)."""
        while self._maps and self._maps[-1][0] > clicks:
            self._maps.pop()

    def previous(self, clicks: Sequence[Click], predict: PredictFn) -> np.ndarray | None:
        """The map after all but the last of `clicks` (None for one click or none), replaying the earlier clicks
        with `predict` when the cap dropped it."""
        wanted = len(clicks) - 1
        self.truncate(wanted)
        if wanted <= 0:
            return None
        if not self._maps:
            prev = None
            for k in range(1, wanted + 1):
                prev = predict(clicks[:k], prev)
                self.append(k, prev)
        return self._maps[-1][1]
