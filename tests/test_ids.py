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


def test_ids_do_not_draw_from_the_global_random_generator() -> None:
    """A user's `random.seed(0)` must not make IDs repeat across processes, and the global state must be
    left alone (Hypothesis fails a test whose strategies see it change: a background thread making log
    IDs while schemathesis drew a case failed test_openapi at random)."""
    import random

    from emulator import ids

    state = random.getstate()
    made = {ids.new_id() for _ in range(100)}
    assert random.getstate() == state
    random.seed(0)
    first = ids.new_id()
    random.seed(0)
    assert ids.new_id()[-12:] != first[-12:]
    assert len(made) == 100
