"""Exponential backoff with jitter, shared by the heartbeat loop and the SuperNode supervisor."""

from __future__ import annotations

import random


class Backoff:
    """Delays of ``initial * factor**n`` seconds capped at ``maximum``, each moved by up to
    ``jitter`` (a fraction) so that many nodes that lost the server together do not return in step."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, *, factor: float = 2.0, jitter: float = 0.1,
                 rng=random.random):
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.factor = factor
        self.jitter = jitter
        self.failures = 0
        self._rng = rng

    def next(self) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(self.failures, 64))
        self.failures += 1
        return min(self.maximum, max(0.0, base * (1 + self.jitter * (2 * self._rng() - 1))))

    def reset(self) -> None:
        self.failures = 0
