"""Redox's retry schedule for a destination that failed a delivery (SPEC 5.4)."""

from __future__ import annotations

# Seconds to wait before retrying, after the 1st, 2nd, ... consecutive failure; then every 120 s.
RETRY_DELAYS = (0.0, 10.0, 10.0, 20.0, 30.0, 50.0, 80.0, 120.0)


def delay_after(failures: int) -> float:
    """Seconds (on the emulator's clock) between the `failures`-th failed attempt and the next one."""
    if failures < 1:
        return 0.0
    return RETRY_DELAYS[min(failures, len(RETRY_DELAYS)) - 1]
