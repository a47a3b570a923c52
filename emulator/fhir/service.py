"""The FHIR API as plain Python: read, search, paging, $match and metadata on the one EHR state.

    fhir = FhirService(ehr)
    fhir.read("Patient", id_)                     -> Answer(body, keys)   FhirError 404 if unknown
    fhir.search("Patient", [(name, value)], base) -> Answer(searchset Bundle, keys)
    fhir.page(base, "Patient", token, "next")     -> Answer(the page that link leads to)
    fhir.match(body, base)                        -> Answer(searchset with scores and match grades)
    fhir.capabilities(base, token_url)            -> CapabilityStatement
    fhir.write("Patient", "$patient-create", body, base, mode, changed) -> Answer(transaction-response Bundle)

`base` is the FHIR base URL as the client called it (`.../fhir/R4/{slug}/{environment}`): fullUrls and
paging links are made from it. `keys` are the patient identifiers the answer is about, for the logs'
search by MRN. Every read of the EHR runs under its lock (`SyntheticEHR.view`) and changes nothing;
a writeback changes it only through the EHR's own event handlers (`SyntheticEHR.apply`, see `writes`),
and hands the records they changed to `changed`, for the caller to commit with the request's log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import iso
from emulator.ehr import SyntheticEHR
from emulator.ehr.state import Record, State
from emulator.errors import FhirError
from emulator.fhir import capability, match, paging, search, writeback, writes
from emulator.fhir.inbound import Unresolvable
from emulator.fhir.paging import Page, Pages
from emulator.fhir.resources import Cache, Resources
from emulator.fhir.search import Query
from emulator.fhir.values import reference_of
from emulator.fhir.versions import STAMP, Versions

MAX_KEYS = 20  # as the log writer keeps per log
MAX_QUERIES = 1_000  # parsed searches remembered


@dataclass(slots=True)
class Answer:
    body: dict[str, Any]
    keys: list[str] = field(default_factory=list)


class FhirService:
    def __init__(self, ehr: SyntheticEHR) -> None:
        self.ehr = ehr
        self.pages = Pages()
        self.versions = Versions(ehr.kept)  # the stamps a store kept across a restart
        self._cache = Cache()
        self._queries: dict[tuple[str, tuple[tuple[str, str], ...]], Query] = {}

    def reset(self) -> None:
        self.pages.clear()
        with self.ehr.lock:
            self.versions.clear()
            self._cache.clear()

    def _resources(self, state: State, generation: int) -> Resources:
        return Resources(state, self._cache.at(generation))

    def capabilities(self, base: str, token_url: str) -> dict[str, Any]:
        return capability.statement(base, token_url)

    def read(self, kind: str, id_: str) -> Answer:
        def reader(state: State, generation: int) -> Answer | None:
            resources = self._resources(state, generation)
            found = resources.read(kind, id_)
            return None if found is None else Answer(self.versions.overlay(found), _keys(resources, [found]))

        answer = self.ehr.view(reader)
        if answer is None:
            raise FhirError(f"Resource {kind}/{id_} is not known", status=404, code="not-found",
                            diagnostics=f"No {kind} with id {id_!r} in the synthetic EHR; search for one with "
                                        f"POST {kind}/_search")
        return answer

    def search(self, kind: str, pairs: Sequence[tuple[str, str]], base: str) -> Answer:
        query = self._parse(kind, tuple(pairs))
        return self._page(Page(kind, tuple(pairs), 0, query.count, base), query)

    def _parse(self, kind: str, pairs: tuple[tuple[str, str], ...]) -> Query:
        """`search.parse`, remembered: clients repeat the same searches, and a Query never changes."""
        key = (kind, pairs)
        query = self._queries.get(key)
        if query is None:
            query = search.parse(kind, pairs)
            if len(self._queries) >= MAX_QUERIES:
                self._queries.clear()
            self._queries[key] = query
        return query

    def page(self, base: str, kind: str, token: str, relation: str) -> Answer:
        page = self.pages.get(token)
        if page is None or page.kind != kind or page.base != base:
            raise FhirError(f"Unknown or expired page {kind}/search/{token}.{relation}", status=404,
                            code="not-found", diagnostics="Paging links are kept for the most recent "
                                                          f"{paging.MAX_TOKENS} pages and forgotten on reset; "
                                                          "run the search again")
        return self._page(paging.follow(page, relation), self._parse(kind, page.pairs))

    def _page(self, page: Page, query: Query) -> Answer:
        def reader(state: State, generation: int) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]], list[str]]:
            resources = self._resources(state, generation)
            matches = search.run(resources, query)
            window = matches[page.offset:page.offset + page.count]
            included = search.include(resources, query, window)
            return len(matches), window, included, _keys(resources, window, query)

        total, window, included, keys = self.ehr.view(reader)
        token = self.pages.remember(page)
        stamped = self.versions.overlay
        body = paging.bundle(token, page, total, [search.subset(stamped(r), query.elements) for r in window],
                             [search.subset(stamped(r), query.elements) for r in included])
        return Answer(body, keys)

    def match(self, body: Any, base: str) -> Answer:
        request = match.parse(body)

        def reader(state: State, generation: int) -> Answer:
            resources = self._resources(state, generation)
            found = match.run(resources, request)
            return Answer(match.bundle(base, found), _keys(resources, [r for r, _, _ in found]))

        return self.ehr.view(reader)


    def write(self, kind: str, operation: str, body: Any, base: str, mode: str, changed: list[Record]) -> Answer:
        """A writeback: the Bundle checked (`writeback.parse`), each focus resource filed by its data-model
        event, answered with the live sandbox's transaction-response. All or nothing: every resource is
        planned (and may be refused) before the first is filed. `changed` gets the EHR records each
        filing changed as it goes, so they reach the store even when a later filing fails."""
        message = writeback.parse(kind, operation, body, mode)
        clock = self.ehr.clock
        entries: list[dict[str, Any]] = []
        keys: dict[str, None] = {}
        with self.ehr.lock:
            state = self.ehr.state
            now = iso(clock.now())
            try:
                planned = [writes.plan(state, message, i, resource, now) for i, resource in message.focus]
            except Unresolvable as problem:
                refused = writeback.Invalid([("not-found", problem.text, problem.expression)])
                refused.status = problem.status
                raise refused from None
            for write in planned:
                id_, records = self.ehr.apply(write.payload, write.kind, write.locate)
                changed.extend(records)
                if id_ is None:
                    raise FhirError(f"The EHR did not keep the {kind} (it could not read it)", status=422,
                                    code="processing")
                version, updated = self.versions.stamp(kind, id_, clock.now())
                changed.append(self.ehr.keep(STAMP, f"{kind}/{id_}", Versions.record_data(version, updated)))
                entries.append({"response": {"etag": f'W/"{version}"', "lastModified": updated,
                                             "location": f"{base}/{kind}/{id_}/_history/{version}",
                                             "status": "200 OK" if write.existed else "201 Created"}})
                patient = write.patient or (state.patients.get(id_) if kind == "Patient" else None)
                if patient is not None:
                    keys.update((str(i.get("ID")), None) for i in patient.identifiers if i.get("ID"))
        return Answer({"entry": entries, "resourceType": "Bundle", "type": "transaction-response"},
                      list(keys)[:MAX_KEYS])


def _keys(resources: Resources, found: list[dict[str, Any]], query: Query | None = None) -> list[str]:
    """Identifier values of the patients an answer is about (and the ones a search named)."""
    keys: dict[str, None] = {}
    if query is not None:
        for c in query.criteria:
            for sub in (c, *(c.chain.criteria if c.chain else ())):
                if sub.param.name == "identifier":
                    keys.update((alt.code, None) for alt in sub.alternatives if getattr(alt, "code", None))
    for resource in found:
        if len(keys) >= MAX_KEYS:
            break
        if resource.get("resourceType") == "Patient":
            owner = resources.patient_record(resource["id"])
        else:
            owner = None
            for element in ("subject", "patient", "beneficiary"):
                ref = reference_of(resource.get(element))
                if ref is not None and ref.startswith("Patient/"):
                    owner = resources.patient_record(ref[8:])
                    break
        if owner is not None:
            keys.update((str(i.get("ID")), None) for i in owner.identifiers if isinstance(i, dict) and i.get("ID"))
    return list(keys)[:MAX_KEYS]
