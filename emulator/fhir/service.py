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
from typing import Any

import orjson

from emulator.clock import iso
from emulator.ehr import SyntheticEHR
from emulator.ehr.state import Record, State
from emulator.errors import FhirError
from emulator.fhir import capability, match, paging, search, writeback, writes
from emulator.fhir.inbound import Unresolvable
from emulator.fhir.paging import Page, Pages, Template
from emulator.fhir.resources import Cache, Resources
from emulator.fhir.search import Query
from emulator.fhir.values import reference_of
from emulator.fhir.versions import STAMP, Versions

MAX_KEYS = 20  # as the log writer keeps per log
MAX_QUERIES = 1_000  # parsed searches remembered
MAX_KEPT_BYTES = 8 << 20  # encoded searchsets kept per EHR generation, in all
MAX_KEPT_BUNDLE = 512 << 10  # a larger searchset is encoded per answer


class Answer:
    """What the API answers: a body and the patient identifiers it is about. A kept searchset comes
    encoded (`json()` is then free); `body` decodes it on demand."""

    __slots__ = ("_body", "_encoded", "keys")

    def __init__(self, body: dict[str, Any] | None, keys: list[str] | None = None,
                 encoded: bytes | None = None) -> None:
        self._body, self._encoded, self.keys = body, encoded, keys if keys is not None else []

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            assert self._encoded is not None
            self._body = orjson.loads(self._encoded)
        return self._body

    def json(self) -> bytes:
        if self._encoded is None:
            self._encoded = orjson.dumps(self._body)
        return self._encoded


class _Kept:
    """Searchsets of one EHR generation and one set of version stamps, encoded (`paging.Template`), by
    the page they answer: a client that repeats a search (a feed polling by identifier) pays for it once.
    Used under the EHR's lock; bounded in bytes."""

    def __init__(self) -> None:
        self.stamp: tuple[int, int] = (-1, -1)
        self._items: dict[Page, tuple[Template, int, list[str]]] = {}
        self._bytes = 0

    def at(self, stamp: tuple[int, int]) -> _Kept:
        if stamp != self.stamp:
            self.clear()
            self.stamp = stamp
        return self

    def get(self, page: Page) -> tuple[Template, int, list[str]] | None:
        return self._items.get(page)

    def put(self, page: Page, found: tuple[Template, int, list[str]]) -> None:
        size = found[0].size
        if size > MAX_KEPT_BUNDLE:
            return
        if self._bytes + size > MAX_KEPT_BYTES:
            self._items.clear()
            self._bytes = 0
        self._items[page] = found
        self._bytes += size

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
        self.stamp = (-1, -1)


class FhirService:
    def __init__(self, ehr: SyntheticEHR) -> None:
        self.ehr = ehr
        self.pages = Pages()
        self.versions = Versions(ehr.kept)  # the stamps a store kept across a restart
        self._cache = Cache()
        self._kept = _Kept()
        self._queries: dict[tuple[str, tuple[tuple[str, str], ...]], Query] = {}

    def reset(self) -> None:
        self.pages.clear()
        with self.ehr.lock:
            self.versions.clear()
            self._cache.clear()
            self._kept.clear()

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
        """The page's searchset: from the kept ones while the EHR's state and the version stamps are those
        it was encoded from, else searched (and kept); a new token either way."""
        def reader(state: State, generation: int) -> tuple[Template | None, int, list[dict[str, Any]],
                                                             list[dict[str, Any]], list[str]]:
            kept = self._kept.at((generation, self.versions.serial))
            found = kept.get(page)
            if found is not None:
                return found[0], found[1], [], [], found[2]
            resources = self._resources(state, generation)
            matches = search.run(resources, query)
            window = matches[page.offset:page.offset + page.count]
            included = search.include(resources, query, window)
            keys = _keys(resources, window, query)
            stamped = self.versions.overlay  # under the lock: the stamps are those of this generation
            window = [search.subset(stamped(r), query.elements) for r in window]
            included = [search.subset(stamped(r), query.elements) for r in included]
            made = paging.template(page, len(matches), window, included)
            if made is not None:
                kept.put(page, (made, len(matches), keys))
            return made, len(matches), window, included, keys

        made, total, window, included, keys = self.ehr.view(reader)
        token = self.pages.remember(page)
        if made is not None:
            return Answer(None, keys, made.fill(token))
        return Answer(paging.bundle(token, page, total, window, included), keys)

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
