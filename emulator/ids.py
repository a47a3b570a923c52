"""IDs for logs, attempts and exchanges: UUIDs, version 7 (time-ordered, RFC 9562).

Time order keeps the store's indexes append-mostly; `random.getrandbits` avoids the system call
`uuid4` makes on every ID (it releases and re-acquires the GIL on the request path). These IDs
identify, they do not protect anything: tokens come from `secrets`.
"""

from __future__ import annotations

import random
import time

# 48 bits of milliseconds, then 80 random bits of which 6 are overwritten: version 7 and variant 0b10.
_RANDOM = ((1 << 80) - 1) & ~((0xF << 76) | (0b11 << 62))
_FIXED = (0x7 << 76) | (0b10 << 62)
# A generator of our own, seeded from the OS: not the global one, which a user's code (or a test
# framework such as Hypothesis, which checks it is left alone) may seed or watch.
_getrandbits = random.Random().getrandbits
_time_ns = time.time_ns


# The last millisecond seen and its time fields, formatted: IDs come in bursts, mostly within one millisecond.
_last: tuple[int, str] = (-1, "")


def new_id() -> str:
    global _last
    ms = _time_ns() // 1_000_000
    last = _last  # one tuple, replaced whole: threads never see half of it
    if last[0] != ms:
        t = f"{ms:012x}"
        last = _last = (ms, f"{t[:8]}-{t[8:]}-")
    # One random draw for version, random and variant fields, and bytes.hex(): cheaper than formatting each.
    h = ((_getrandbits(80) & _RANDOM) | _FIXED).to_bytes(10, "big").hex()
    return f"{last[1]}{h[:4]}-{h[4:8]}-{h[8:]}"
