"""The synthetic EHR behind the "Redox EMR" destination: one facade over population, index and diary.

`consume()` applies async events (`events.HANDLERS`), `answer()` answers queries
(`queries.ANSWERS`), both under one lock because requests arrive on several threads. `answer()`
raises nothing but QueryRejected, whatever the payload; `consume()` raises nothing at all.

Write-through: `consume()` returns the records the event changed, (kind, key, version, JSON), for
the caller to commit with the request's log; `SyntheticEHR(saved=...)` lays what the store kept over
the seeded population. The in-memory state stays the read model every query reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from emulator import catalog
from emulator.clock import Clock
from emulator.ehr import events, queries
from emulator.ehr.payload import QueryRejected, obj, text
from emulator.ehr.population import build
from emulator.ehr.state import APPOINTMENT, CHART_ITEM, PATIENT, Record, State

log = logging.getLogger(__name__)

__all__ = ["QueryRejected", "SyntheticEHR"]

T = TypeVar("T")


def _kind(payload: dict[str, Any]) -> tuple[str, str]:
    meta = obj(payload.get("Meta"), "Meta")
    model = text(meta.get("DataModel"), "Meta.DataModel")
    event = text(meta.get("EventType"), "Meta.EventType")
    if model is None or event is None:
        raise QueryRejected("Meta.DataModel and Meta.EventType are required")
    return model, event


class SyntheticEHR:
    """A seeded population (see `population`) whose state the events sent to it change."""

    def __init__(self, *, seed: int = 1, population: int = 200, clock: Clock | None = None,
                 saved: Sequence[Record] = ()) -> None:
        """`saved`: the records a store kept (`LogStore.ehr_records`), restored over the seeded population."""
        self.seed, self.population = seed, population
        self.clock = clock or Clock()
        self._lock = self.lock = threading.RLock()  # `lock`: for readers that keep derived state (FHIR)
        self._pristine = build(seed, population)  # cached per process: every sandbox shares it
        self._state: State | None = State.load(self._pristine, self.clock.now(), saved)
        self._day = self._today()
        self._touched = bool(saved)  # something may have changed the state since it was seeded
        self._version = max((r[2] for r in saved), default=0)  # the change counter the store orders records by
        # Saved records of kinds the EHR does not read itself (FHIR's version stamps), for their owners.
        self.kept: list[Record] = [r for r in saved if r[0] not in (PATIENT, CHART_ITEM, APPOINTMENT)]
        # Moves on whenever the state may have changed (an event, a query, a caller given the state, a
        # reset): readers that keep what they derived from the state (the FHIR API) compare it.
        self.generation = 0

    @property
    def state(self) -> State:
        """The live state, for tests and the control plane; hold no reference across requests."""
        with self._lock:
            self._touched = True  # the caller may change it
            self.generation += 1
            return self._live()

    def view(self, reader: Callable[[State, int], T]) -> T:
        """`reader(state, generation)` under the lock, for readers that change nothing (the FHIR API)."""
        with self._lock:
            state = self._live()
            return reader(state, self.generation)

    def _today(self) -> int:
        return int(self.clock.now() // 86400)

    def _live(self) -> State:
        """The state, loaded again first if a reset asked for it (under the lock)."""
        if self._state is None:
            self._state = State.load(self._pristine, self.clock.now())
            self._day = self._today()
        return self._state

    def reset(self) -> None:
        """Back to the seeded population, appointments laid out again from the clock's today.

        Costs nothing when nothing changed the state since it was loaded on the same day (a test that
        never touched the EHR); otherwise the population is loaded again on first use, so a reset
        between tests stays under a millisecond."""
        with self._lock:
            if self._touched or self._state is None or self._day != self._today():
                self._state = None
                self.generation += 1
                self._touched = False
            self.kept = []

    def consume(self, payload: dict[str, Any], kind: tuple[str, str] | None = None) -> tuple[Record, ...]:
        """Apply an async event; events the EHR keeps no state for, or cannot read, are dropped.

        `kind`: (DataModel, EventType) when the caller has already read and checked them from Meta.
        Returns the records the event changed, for the store (empty when it changed nothing).
        """
        if not isinstance(payload, dict):
            return ()
        if kind is None:
            try:
                kind = _kind(payload)
            except QueryRejected:
                return ()
        model, event = kind
        handler = events.HANDLERS.get(catalog.canonical(model, event))
        if handler is None:
            return ()
        with self._lock:
            self._touched = True
            self.generation += 1
            state = self._live()
            try:
                handler(state, payload)
            except QueryRejected as unreadable:
                log.info("synthetic EHR ignored %s.%s: %s", model, event, unreadable.text)
            return self._changes(state)

    def keep(self, kind: str, key: str, data: bytes) -> Record:
        """A record for the store that the EHR does not read (FHIR's version stamps), numbered on the EHR's
        change counter, so the newest wins in the store as the EHR's own records do."""
        with self._lock:
            self._version += 1
            return (kind, key, self._version, data)

    def _changes(self, state: State) -> tuple[Record, ...]:
        """What changed since the last call, each record with the next version (under the lock)."""
        found = state.changes()
        if not found:
            return ()
        records = []
        for kind, key, data in found:
            self._version += 1
            records.append((kind, key, self._version, data))
        return tuple(records)

    def apply(self, payload: dict[str, Any], kind: tuple[str, str], after: Callable[[State], T]
              ) -> tuple[T, tuple[Record, ...]]:
        """`consume` an event, then `after(state)` under the same hold of the lock: a writer that must
        find what its event changed (the FHIR writebacks: the id of what they wrote) sees no one else's.
        Returns what `after` found and the records the event changed, for the store, as `consume` does."""
        with self._lock:
            records = self.consume(payload, kind)
            return after(self._live()), records

    def answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The response body of a query, Meta carrying DataModel and the response EventType."""
        if not isinstance(payload, dict):
            raise QueryRejected("A query must be a JSON object")
        model, event = _kind(payload)
        if not catalog.is_query(model, event):
            raise QueryRejected(f"{model}.{event} is not a query; the EHR answers only "
                                "synchronous event types")
        handler = queries.ANSWERS.get(catalog.canonical(model, event))
        now = self.clock.now()
        with self._lock:
            self._touched = True  # a query may book or change what it reads
            self.generation += 1
            body = handler(self._live(), payload, now) if handler is not None else {}
        # Meta keeps the client's spelling of the model (Redox's "Clinical Decisions" is accepted too).
        return {"Meta": {"DataModel": model, "EventType": queries.response_event(*catalog.canonical(model, event))},
                **body}
