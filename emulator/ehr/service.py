"""The synthetic EHR behind the "Redox EMR" destination: one facade over population, index and diary.

`consume()` applies async events (`events.HANDLERS`), `answer()` answers queries
(`queries.ANSWERS`), both under one lock because requests arrive on several threads. `answer()`
raises nothing but QueryRejected, whatever the payload; `consume()` raises nothing at all.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from emulator import catalog
from emulator.clock import Clock
from emulator.ehr import events, queries
from emulator.ehr.payload import QueryRejected, obj, text
from emulator.ehr.population import build
from emulator.ehr.state import State

log = logging.getLogger(__name__)

__all__ = ["QueryRejected", "SyntheticEHR"]


def _kind(payload: dict[str, Any]) -> tuple[str, str]:
    meta = obj(payload.get("Meta"), "Meta")
    model = text(meta.get("DataModel"), "Meta.DataModel")
    event = text(meta.get("EventType"), "Meta.EventType")
    if model is None or event is None:
        raise QueryRejected("Meta.DataModel and Meta.EventType are required")
    return model, event


class SyntheticEHR:
    """A seeded population (see `population`) whose state the events sent to it change."""

    def __init__(self, *, seed: int = 1, population: int = 200, clock: Clock | None = None) -> None:
        self.seed, self.population = seed, population
        self.clock = clock or Clock()
        self._lock = threading.Lock()
        self._pristine = build(seed, population)
        self._state = State.load(self._pristine, self.clock.now())

    @property
    def state(self) -> State:
        """The live state, for tests and the control plane; hold no reference across requests."""
        return self._state

    def reset(self) -> None:
        """Back to the seeded population, appointments laid out again from the clock's today."""
        fresh = State.load(self._pristine, self.clock.now())
        with self._lock:
            self._state = fresh

    def consume(self, payload: dict[str, Any]) -> None:
        """Apply an async event; events the EHR keeps no state for, or cannot read, are dropped."""
        if not isinstance(payload, dict):
            return
        try:
            model, event = _kind(payload)
        except QueryRejected:
            return
        handler = events.HANDLERS.get(catalog.canonical(model, event))
        if handler is None:
            return
        with self._lock:
            try:
                handler(self._state, payload)
            except QueryRejected as unreadable:
                log.info("synthetic EHR ignored %s.%s: %s", model, event, unreadable.text)

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
            body = handler(self._state, payload, now) if handler is not None else {}
        # Meta keeps the client's spelling of the model (Redox's "Clinical Decisions" is accepted too).
        return {"Meta": {"DataModel": model, "EventType": queries.response_event(*catalog.canonical(model, event))},
                **body}
