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
    made = []
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        made.append(new_id())
    assert len(set(made)) == len(made)
    stamps = [uuid.UUID(m).int >> 80 for m in made]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
