"""The emulator's clock: wall time plus an offset that tests and scenarios advance.

Token expiry, rate-limit windows and (later) back-off read this clock, never `time.time()`,
so a scenario spanning Redox's real time scales runs in milliseconds.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

MAX_OFFSET = 100 * 365.25 * 86400  # a century: far enough for any scenario, short of year 9999


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch on the emulator's clock."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        if not 0 <= seconds <= MAX_OFFSET - self._offset:
            raise ValueError(f"the clock moves forward only, by at most {MAX_OFFSET:g} seconds in all")
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    def isoformat(self, at: float | None = None) -> str:
        return iso(self.now() if at is None else at)


def iso(at: float) -> str:
    """ISO-8601 with milliseconds and `Z`, the way Redox writes times."""
    millis = int(at * 1000)  # truncate once, so seconds and milliseconds agree
    return datetime.fromtimestamp(millis // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
