"""From a parsed `/endpoint` payload to Redox's answer: Meta checks, routing, logs (SPEC 5.2).

Plain Python: the HTTP layer hands in the JSON body and the authenticated source; this module
raises `RedoxError` for what Redox rejects and returns an `Outcome` for what it accepts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from emulator import catalog
from emulator.clock import Clock
from emulator.contracts.validator import ContractValidator, identify, to_error
from emulator.destinations import Destinations
from emulator.ehr import QueryRejected, SyntheticEHR
from emulator.errors import RedoxError
from emulator.fhir import notifications
from emulator.ids import new_id
from emulator.settings import FHIR, Destination, Source
from emulator.store import Log, LogStatus, LogType

NO_SUBSCRIPTIONS = ("No subscriptions. Meta.Destinations needs to contain a destination "
                    "from existing subscriptions")
_ids = itertools.count(10_000_000)  # Redox's error and message IDs are integers


def next_id() -> int:
    return next(_ids)


class RoutingError(RedoxError):
    """A Meta that named a destination which cannot take this event: logged against that destination."""

    def __init__(self, text: str, destination: Destination, meta: dict[str, Any]) -> None:
        super().__init__(text, module="Subscriptions", meta=meta)
        self.destination = destination


@dataclass(slots=True)
class Outcome:
    status: int
    body: dict[str, Any]
    logs: list[Log] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    # Events bound for webhook destinations: the caller queues them once the logs are recorded.
    deliveries: list[tuple[Destination, dict[str, Any], Log]] = field(default_factory=list)
    # The synthetic EHR's records the event changed: the caller records them with the logs, in one commit.
    ehr: tuple[tuple[str, str, int, bytes | None], ...] = ()


@dataclass(slots=True)
class Routed:
    """A payload whose Meta checked out, with the destinations it goes to."""

    data_model: str
    event_type: str
    meta: dict[str, Any]
    destinations: list[Destination]
    query: bool


class Router:
    def __init__(self, destinations: Destinations, clock: Clock, ehr: SyntheticEHR,
                 contracts: ContractValidator | None = None) -> None:
        self._clock = clock
        self._ehr = ehr
        self._contracts = contracts  # None: payloads are not checked against their data model
        self._destinations = destinations
        self._key_for = notifications.key_finder(ehr)

    def handle(self, payload: Any, source: Source, exchange_id: int,
               answer: dict[str, Any] | None = None) -> Outcome:
        """Route one request; failures come back as an Outcome too, so that they are logged.

        `answer`: a query's answer scripted by a scenario, in place of the synthetic EHR's.
        """
        meta = payload.get("Meta") if isinstance(payload, dict) else None
        meta = dict(meta) if isinstance(meta, dict) else {}
        try:
            routed = self.check(payload, meta)
        except RedoxError as error:
            return self.failure(error, meta, source, exchange_id)
        try:
            if routed.query:
                return self._query(payload, routed, source, exchange_id, answer)
            return self._send(payload, routed, source, exchange_id)
        except RedoxError as error:
            return self.failure(error, meta, source, exchange_id, routed)

    def check(self, payload: Any, meta: dict[str, Any]) -> Routed:
        if not isinstance(payload, dict):
            raise RedoxError(f"The request body must be a JSON object, found {_json_type(payload)}",
                             module="Request")
        model, event = identify(payload, meta)
        if self._contracts is not None:
            problems = self._contracts.problems(payload, model, event)
            if problems:
                raise to_error(problems, meta)
        key = catalog.canonical(model, event)
        query = key in catalog.QUERIES
        destinations = self._route(meta, model, event, key, query)
        return Routed(model, event, meta, destinations, query)

    def _route(self, meta: dict[str, Any], model: str, event: str, key: tuple[str, str],
               query: bool) -> list[Destination]:
        wanted = meta.get("Destinations")
        if not isinstance(wanted, list) or not wanted:
            raise RedoxError(NO_SUBSCRIPTIONS, module="Subscriptions", meta=meta)
        found: list[Destination] = []
        for entry in wanted:
            id_ = entry.get("ID") if isinstance(entry, dict) else None
            destination = self._destinations.get(id_) if isinstance(id_, str) else None
            if destination is None:
                raise RedoxError(f"{NO_SUBSCRIPTIONS}. Unknown destination ID: {id_!r}",
                                 module="Subscriptions", meta=meta)
            if not destination.subscribes(*key):
                fhir = (f" (it takes FHIR notifications; {model}.{event} has none)" if destination.format == FHIR
                        and key not in catalog.FHIR_FOR else "")
                raise RoutingError(f"{NO_SUBSCRIPTIONS}. Destination {destination.name} ({destination.id}) "
                                   f"is not subscribed to {model}.{event}{fhir}", destination, meta)
            if destination not in found:
                found.append(destination)
        if query and len(found) != 1:
            raise RedoxError(f"A query must name exactly one destination in Meta.Destinations; "
                             f"{model}.{event} named {len(found)}", module="Subscriptions", meta=meta)
        return found

    def _send(self, payload: dict[str, Any], routed: Routed, source: Source, exchange_id: int) -> Outcome:
        now = self._clock.now()
        logs = [self._log(LogType.SEND, LogStatus.SUCCEEDED, routed, source, d, exchange_id, now)
                for d in routed.destinations]
        body = {**payload, "Meta": self._complete(routed.meta, source, routed.destinations, logs)}
        outcome = Outcome(200, body, logs)
        to_ehr = False
        for i, destination in enumerate(routed.destinations):  # zip(strict=True) costs more than all this
            entry = logs[i]
            if destination.url is None:
                to_ehr = True
            elif destination.format == FHIR:  # subscribed, so the event has a notification
                made = notifications.for_destination(payload, routed.data_model, routed.event_type,
                                                     destination.notifications, (source.id, source.name), now,
                                                     self._key_for)
                assert made is not None
                (entry.data_model, entry.event_type), bundle = made  # logged as Redox names the notification
                entry.status = LogStatus.PENDING
                outcome.deliveries.append((destination, bundle, entry))
            else:
                entry.status = LogStatus.PENDING  # until the webhook acknowledges it
                outcome.deliveries.append((destination, body, entry))
        if to_ehr:  # once: destinations without a webhook all stand for the one EHR
            outcome.ehr = self._ehr.consume(payload, (routed.data_model, routed.event_type))
        return outcome

    def _query(self, payload: dict[str, Any], routed: Routed, source: Source, exchange_id: int,
               scripted: dict[str, Any] | None = None) -> Outcome:
        destination = routed.destinations[0]
        entry = self._log(LogType.REQUEST, LogStatus.SUCCEEDED, routed, source, destination, exchange_id,
                          self._clock.now())
        if destination.url is not None:
            raise RedoxError(f"Destination {destination.name} has a webhook URL; synchronous queries are "
                             "answered only by the synthetic EHR in this emulator", type="transmission",
                             module="Send")
        try:
            answer = scripted if scripted is not None else self._ehr.answer(payload)
        except QueryRejected as rejected:
            raise RedoxError(rejected.text, type="transmission", module="Send") from None
        meta = {**routed.meta, **answer.get("Meta", {})}
        body = {**answer, "Meta": self._complete(meta, source, routed.destinations, [entry])}
        return Outcome(200, body, [entry])

    def failure(self, error: RedoxError, meta: dict[str, Any], source: Source, exchange_id: int,
                routed: Routed | None = None) -> Outcome:
        """Redox's error answer, with one FAILED log per destination (one UNKNOWN log if untyped)."""
        now = self._clock.now()
        errors = error.entries(next_id)
        targets: list[Destination | None]
        if isinstance(error, RoutingError):
            model, event = meta["DataModel"], meta["EventType"]
            kind = LogType.REQUEST if catalog.is_query(model, event) else LogType.SEND
            targets = [error.destination]
        elif routed is None:
            kind = LogType.UNKNOWN
            model = meta.get("DataModel") if isinstance(meta.get("DataModel"), str) else None
            event = meta.get("EventType") if isinstance(meta.get("EventType"), str) else None
            targets = [None]
        else:
            kind = LogType.REQUEST if routed.query else LogType.SEND
            model, event = routed.data_model, routed.event_type
            targets = list(routed.destinations)
        logs = [Log(new_id(), now, kind, LogStatus.FAILED, model, event, source.id, source.name,
                    d.id if d else None, d.name if d else None, _test(meta), errors,
                    [(new_id(), exchange_id, now, error.status)])
                for d in targets]
        named = [d for d in targets if d is not None]
        body_meta = self._complete(meta, source, named, logs)
        if not named and isinstance(meta.get("Destinations"), list):
            body_meta["Destinations"] = meta["Destinations"]
        body_meta["Errors"] = errors
        return Outcome(error.status, {"Meta": body_meta}, logs, error.headers)

    def _log(self, kind: LogType, status: LogStatus, routed: Routed, source: Source, destination: Destination,
             exchange_id: int, now: float) -> Log:
        return Log(new_id(), now, kind, status, routed.data_model, routed.event_type, source.id,
                   source.name, destination.id, destination.name, _test(routed.meta), [],
                   [(new_id(), exchange_id, now, 200)])

    @staticmethod
    def _complete(meta: dict[str, Any], source: Source, destinations: list[Destination],
                  logs: list[Log]) -> dict[str, Any]:
        """Meta as Redox echoes it: Source, destination Names, one Logs entry per destination."""
        return {**meta, "Source": {"ID": source.id, "Name": source.name},
                "Destinations": [{"ID": d.id, "Name": d.name} for d in destinations],
                "Logs": [{"ID": entry.id, "AttemptID": entry.attempts[0][0]} for entry in logs],
                "Message": {"ID": next_id()}}


def _test(meta: dict[str, Any]) -> bool | None:
    test = meta.get("Test")
    return test if isinstance(test, bool) else None


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
