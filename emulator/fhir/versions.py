"""`meta.versionId` and `meta.lastUpdated` of what writebacks wrote, moving on every write.

The live sandbox's versionId is the unpadded base64 of the write's epoch-nanoseconds, its etag
`W/"<versionId>"`, its lastModified an ISO instant with microseconds and `+00:00` (FHIR.md 4): the
same here, on the emulator's clock, strictly increasing even when two writes share a clock reading.
Resources no writeback touched carry no versionId (as part 1 served them).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAX_STAMPS = 100_000  # written resources remembered (bounded: a soak test writes without end)


class Versions:
    def __init__(self) -> None:
        self._stamps: dict[tuple[str, str], tuple[str, str]] = {}
        self._last = 0
        self.serial = 0  # moves on with every change: what was rendered with the stamps is then stale

    def stamp(self, kind: str, id_: str, now: float) -> tuple[str, str]:
        """(versionId, lastUpdated) of a new version of `kind/id_`."""
        nanos = max(int(now * 1_000_000) * 1_000, self._last + 1_000)  # microsecond steps, as lastUpdated shows
        self._last = nanos
        version = base64.b64encode(str(nanos).encode()).decode().rstrip("=")
        updated = datetime.fromtimestamp(nanos / 1e9, UTC).isoformat(timespec="microseconds")
        if len(self._stamps) >= MAX_STAMPS:
            self._stamps.clear()
        self._stamps[(kind, id_)] = (version, updated)
        self.serial += 1
        return version, updated

    def overlay(self, resource: dict[str, Any]) -> dict[str, Any]:
        """`resource` with its meta version, if a writeback wrote it (a new dict: rendered ones are shared)."""
        if not self._stamps:
            return resource
        found = self._stamps.get((resource.get("resourceType", ""), resource.get("id", "")))
        if found is None:
            return resource
        return {**resource, "meta": {**(resource.get("meta") or {}), "versionId": found[0], "lastUpdated": found[1]}}

    def clear(self) -> None:
        self._stamps.clear()
        self.serial += 1
