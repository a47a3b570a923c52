"""`meta.versionId` and `meta.lastUpdated` of what writebacks wrote, moving on every write.

The live sandbox's versionId is the unpadded base64 of the write's epoch-nanoseconds, its etag
`W/"<versionId>"`, its lastModified an ISO instant with microseconds and `+00:00` (FHIR.md 4): the
same here, on the emulator's clock, strictly increasing even when two writes share a clock reading.
Resources no writeback touched carry no versionId (as part 1 served them).

Each stamp is also an EHR record of kind `fhir-version` (key `{Type}/{id}`, data the JSON
`[versionId, lastUpdated]`), committed with the writeback's log (appended to the store's ehr_appended):
after a restart on the same store, a resource keeps the version its last write gave it, and new versions
still move forward.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import orjson

from emulator.ehr.state import Record

MAX_STAMPS = 100_000  # written resources remembered (bounded: a soak test writes without end)
STAMP = "fhir-version"  # the kind of the EHR records that keep the stamps in the store


class Versions:
    def __init__(self, saved: Iterable[Record] = ()) -> None:
        """`saved`: the `fhir-version` records the store kept (any others are skipped), oldest first."""
        # In the order of writes; an OrderedDict because a dict's first key, after many taken from the
        # front, is found by walking past the gaps they left (30 us a write at 100,000 stamps).
        self._stamps: OrderedDict[tuple[str, str], tuple[str, str]] = OrderedDict()
        self._last = 0
        self._second: tuple[int, str] = (-1, "")  # the last second formatted: writes come many a second
        self.serial = 0  # moves on with every change: what was rendered with the stamps is then stale
        for kind, key, _, data in sorted(saved, key=lambda r: r[2]):
            if kind != STAMP or data is None:
                continue
            try:
                version, updated = orjson.loads(data)
                nanos = int(base64.b64decode(version + "=" * (-len(version) % 4)))
                type_, _, id_ = key.partition("/")
            except (ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
                continue  # a record this layout cannot read: the resource then shows no version
            self._stamps[(type_, id_)] = (str(version), str(updated))
            self._last = max(self._last, nanos)
        while len(self._stamps) > MAX_STAMPS:  # the newest are kept
            self._stamps.popitem(last=False)

    @staticmethod
    def record_data(version: str, updated: str) -> bytes:
        """What the store keeps of a stamp (see the module's docstring)."""
        return orjson.dumps([version, updated])

    def stamp(self, kind: str, id_: str, now: float) -> tuple[str, str]:
        """(versionId, lastUpdated) of a new version of `kind/id_`."""
        nanos = max(int(now * 1_000_000) * 1_000, self._last + 1_000)  # microsecond steps, as lastUpdated shows
        self._last = nanos
        version = base64.b64encode(str(nanos).encode()).decode().rstrip("=")
        updated = self._instant(nanos)
        key = (kind, id_)
        if self._stamps.pop(key, None) is None and len(self._stamps) >= MAX_STAMPS:
            self._stamps.popitem(last=False)  # the longest unwritten is forgotten, not every one
        self._stamps[key] = (version, updated)  # last in order: the order is of writes
        self.serial += 1
        return version, updated

    def _instant(self, nanos: int) -> str:
        """`nanos` as lastUpdated shows it: 2031-06-02T15:00:00.123456+00:00 (whole microseconds)."""
        second, micros = divmod(nanos // 1_000, 1_000_000)
        if self._second[0] != second:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{micros:06d}+00:00"

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
