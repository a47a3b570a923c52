"""Log and attempt IDs: UUIDs version 7 (RFC 9562), carrying the time they were made."""

from __future__ import annotations

import time
import uuid

from emulator.ids import new_id


def test_ids_are_rfc_9562_version_7_uuids_carrying_the_current_millisecond() -> None:
    for _ in range(2_000):
        before = time.time_ns() // 1_000_000
        made = new_id()
        after = time.time_ns() // 1_000_000
        parsed = uuid.UUID(made)
        assert str(parsed) == made  # canonical form: lower-case, 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after


def test_ids_are_unique_and_ordered_by_time_across_milliseconds() -> None:
    # Made until they span three milliseconds (not for a set time: a loaded machine may run the loop
    # for less than a millisecond of it), so many share a millisecond and some cross from one to the next.
    made = [new_id()]
    stamps = [uuid.UUID(made[0]).int >> 80]
    while len(set(stamps)) < 3 or len(made) < 1000:
        made.append(new_id())
        stamps.append(uuid.UUID(made[-1]).int >> 80)
    assert len(set(made)) == len(made)
    assert stamps == sorted(stamps)
