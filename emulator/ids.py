"""IDs for logs, attempts and exchanges: UUIDs, version 7 (time-ordered, RFC 9562).

Time order keeps the store's indexes append-mostly; `random.getrandbits` avoids the system call
`uuid4` makes on every ID (it releases and re-acquires the GIL on the request path). These IDs
identify, they do not protect anything: tokens come from `secrets`.
"""

from __future__ import annotations

import random
import time

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62


def new_id() -> str:
    millis = time.time_ns() // 1_000_000
    rand_a = random.getrandbits(12)
    rand_b = random.getrandbits(62)
    h = f"{(millis << 80) | _VERSION_7 | (rand_a << 64) | _VARIANT | rand_b:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
