"""Redox's rolling-window rate limit per client IP (SPEC 5.2), on the emulator's clock."""

from __future__ import annotations

import threading
from collections import deque

from emulator.clock import Clock


class RateLimiter:
    def __init__(self, clock: Clock, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        # At most `limit` times per client: memory is bounded by the limit, not by the traffic.
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> tuple[bool, float]:
        """(allowed, seconds until the next request would be allowed)."""
        now = self._clock.now()
        with self._lock:
            hits = self._hits.get(client)
            if hits is None:
                hits = self._hits[client] = deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False, hits[0] + self.window - now
            hits.append(now)
            return True, 0.0

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()
