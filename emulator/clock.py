"""The emulator's clock: what token expiry, rate-limit windows, delays and timeouts read, never `time.time()`.

Three modes (SPEC 7.3), so a scenario spanning Redox's real time scales runs in milliseconds:

    real          wall time (plus whatever `advance()` added)
    accelerated   emulated time runs `factor` times faster than wall time from the moment the mode is set
    manual        emulated time stands still; only `advance()` moves it

`advance()` works in every mode. Changing mode never moves the clock: it continues from where it is.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum

MAX_OFFSET = 100 * 365.25 * 86400  # a century: far enough for any scenario, short of year 9999
MAX_FACTOR = 1_000_000.0
POLL = 0.02  # seconds of wall time between looks at the clock while sleeping on it


class ClockMode(StrEnum):
    REAL = "real"
    ACCELERATED = "accelerated"
    MANUAL = "manual"


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0  # what advance() added since the last reset
        # (emulated time at the anchor, wall time at the anchor, emulated seconds per wall second):
        # one tuple, replaced whole, so a reader on another thread never sees half a mode change.
        self._anchor = (0.0, 0.0, 1.0)
        self._mode = ClockMode.REAL
        self._lock = threading.Lock()
        self.sleepers = 0  # requests waiting on this clock now (a test can wait for one before advancing)

    def now(self) -> float:
        """Seconds since the epoch on the emulator's clock."""
        origin, wall, rate = self._anchor
        return origin + (time.time() - wall) * rate + self._offset

    def advance(self, seconds: float) -> float:
        if not 0 <= seconds <= MAX_OFFSET - self._offset:
            raise ValueError(f"the clock moves forward only, by at most {MAX_OFFSET:g} seconds in all")
        with self._lock:
            self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        """Seconds `advance()` added since the last reset."""
        return self._offset

    @property
    def mode(self) -> ClockMode:
        return self._mode

    @property
    def factor(self) -> float:
        """Emulated seconds per wall-clock second: 1 (real), the factor (accelerated), 0 (manual)."""
        return self._anchor[2]

    def set_mode(self, mode: ClockMode | str, factor: float | None = None) -> None:
        """Switch mode without a jump: the clock goes on from its current reading."""
        mode = ClockMode(mode)
        if mode is ClockMode.ACCELERATED:
            if factor is None or not 0 < factor <= MAX_FACTOR:
                raise ValueError(f"accelerated mode needs a factor above 0 and at most {MAX_FACTOR:g}")
            rate = float(factor)
        elif factor is not None:
            raise ValueError(f"a factor applies to accelerated mode only, not {mode.value}")
        else:
            rate = 1.0 if mode is ClockMode.REAL else 0.0
        with self._lock:
            wall = time.time()
            origin, anchor_wall, old_rate = self._anchor
            here = origin + (wall - anchor_wall) * old_rate  # without the offset, which stays apart
            self._anchor = (here, wall, rate)
            self._mode = mode

    def reset(self) -> None:
        """Real time, nothing advanced."""
        with self._lock:
            self._offset = 0.0
            self._anchor = (0.0, 0.0, 1.0)
            self._mode = ClockMode.REAL

    async def sleep_until(self, deadline: float) -> None:
        """Wait until the emulator's clock reads `deadline`: wall time divided by the factor, or, in manual
        mode, until someone advances the clock that far."""
        self.sleepers += 1
        try:
            while (remaining := deadline - self.now()) > 0:
                rate = self.factor
                await asyncio.sleep(min(remaining / rate, POLL) if rate > 0 else POLL)
        finally:
            self.sleepers -= 1

    def isoformat(self, at: float | None = None) -> str:
        return iso(self.now() if at is None else at)


_SECOND: tuple[int, str] = (-1, "")  # the last second `iso` formatted: every request formats times in it


def iso(at: float) -> str:
    """ISO-8601 with milliseconds and `Z`, the way Redox writes times."""
    global _SECOND
    millis = int(at * 1000)  # truncate once, so seconds and milliseconds agree
    second, prefix = _SECOND  # one tuple, read at once: threads see a pair that belongs together
    if millis // 1000 != second:
        second = millis // 1000
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _SECOND = (second, prefix)
    return f"{prefix}{millis % 1000:03d}Z"
