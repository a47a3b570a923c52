"""Placeholder until the synthetic EHR lands: answers every query with an empty result."""

from __future__ import annotations

from typing import Any

from emulator.clock import Clock
from emulator.errors import RequestError


class QueryRejected(RequestError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class SyntheticEHR:
    def __init__(self, *, seed: int, population: int, clock: Clock) -> None:
        self.seed, self.population, self.clock = seed, population, clock

    def reset(self) -> None:
        pass

    def consume(self, payload: dict[str, Any]) -> None:
        pass

    def answer(self, payload: dict[str, Any]) -> dict[str, Any]:
        meta = payload.get("Meta", {})
        return {"Meta": {"DataModel": meta.get("DataModel"), "EventType": meta.get("EventType")}}
