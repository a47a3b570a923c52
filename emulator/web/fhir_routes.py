"""Redox's FHIR R4 API: /fhir/R4/{slug}/{Development|Staging|Production}/... on the synthetic EHR.

    GET  metadata                                  the CapabilityStatement (no token needed, as HL7/SMART)
    GET  {Resource}/{id}                           read
    POST {Resource}/_search                        search: form, JSON, or no body; query string too
    GET  {Resource}?params                         search, as HL7 defines it
    GET  page/{Resource}/search/{uuid}.{relation}  a page of a search (Redox's paging links)
    POST Patient/$match                            Redox's body or HL7 Parameters
    POST {Resource}/$<resource>-<verb>             a writeback: a message Bundle in, a transaction-response out

Parsing and rendering only: `emulator.fhir.FhirService` does the work. Every exchange is journaled
and is a Redox log (data model `FHIR.{Resource}`, event type `read`, `search`, `$match` or the
writeback's operation, e.g. `$patient-create`), with the
patients' identifiers as its keys for the logs' MRN search. Errors are OperationOutcomes (Redox's
MSG_NO_MODULE for an unknown resource), but a known resource's unknown operation gets Redox's
Meta.Errors body, and POST to a resource or an id (no interaction) a 404 with no body: what the
live sandbox answered (FHIR.md 6).

While a scenario is active, `_serve` asks its rules first (`_consult`): a FHIR request is seen as its
log will be (resource, interaction, search parameters, the JSON body), and a matching rule's token
actions, delay (504 past `sync_timeout`), dropped connection or scripted answer (OperationOutcomes for
errors) come before the FHIR API's own work; the journal notes the rule, or the near misses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from emulator.ehr.state import Record
from emulator.errors import AuthError, FhirError, RedoxError, RequestError
from emulator.fhir.resources import TYPES
from emulator.fhir.writeback import OPERATIONS, operation_for
from emulator.ids import new_id
from emulator.routing import next_id
from emulator.sandbox import Sandbox
from emulator.scenarios.engine import Decision
from emulator.scenarios.matching import Seen
from emulator.settings import Destination, Source
from emulator.store import Log, LogStatus, LogType
from emulator.web.journal import Journal
from emulator.web.redox_routes import _admit_scope, _source
from emulator.web.requests import header, receive_body
from emulator.web.responses import REDOX_HEADERS, RedoxJSONResponse, unavailable
from emulator.web.scenario_routes import DroppedConnection

PREFIX = "/fhir/R4"
FHIR_JSON = "application/fhir+json; charset=utf-8"
ENVIRONMENTS = ("Development", "Staging", "Production")
SERVED = frozenset(TYPES)
_RAW_HEADERS = [(k.encode(), v.encode()) for k, v in {**REDOX_HEADERS, "content-type": FHIR_JSON}.items()]
_JSON_TYPES = ("application/json", "application/fhir+json")


Handler = Callable[[Request, Sandbox, "_Exchange"], Awaitable[Response]]


class FhirResponse(Response):
    """FHIR JSON with Redox's headers (encoded once, as `RedoxJSONResponse` does; bytes are taken as the
    JSON already encoded)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.body = body if isinstance(body, bytes) else orjson.dumps(body)
        self.background = None
        self.raw_headers = [*_RAW_HEADERS, (b"content-length", str(len(self.body)).encode())]
        if headers:
            self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def no_module(slug: str, what: str) -> FhirError:
    """What the live sandbox answers an unknown resource or operation with (its text names the slug)."""
    return FhirError(f"Unknown slug {slug}", status=404, code="not-found", severity="fatal", coding="MSG_NO_MODULE",
                     diagnostics=what)


def render(error: RequestError) -> Response:
    if isinstance(error, FhirError):
        return FhirResponse(error.status, error.outcome(), error.headers)
    return FhirResponse(error.status, fhir_error(error).outcome(), getattr(error, "headers", None))


def fhir_error(error: RequestError) -> FhirError:
    """A non-FHIR error of the shared machinery (auth, rate limit, body size) as an OperationOutcome."""
    if isinstance(error, FhirError):
        return error
    if isinstance(error, AuthError):
        return FhirError("Invalid request: the bearer token is missing, unknown, expired or revoked; get one "
                         "from POST /v2/auth/token", status=401, code="login")
    text = error.errors[0][0] if isinstance(error, RedoxError) else str(error)
    code = {405: "not-supported", 413: "too-costly", 429: "throttled"}.get(error.status, "invalid")
    return FhirError(text, status=error.status, code=code, headers=getattr(error, "headers", None))


class _Exchange:
    """One FHIR request: what its log says, filled in as the request is understood."""

    __slots__ = ("attempt_id", "data_model", "destination", "ehr", "event", "keys", "log_id", "raw", "read",
                 "source")

    def __init__(self) -> None:
        self.log_id, self.attempt_id = new_id(), new_id()
        self.raw = b""  # the request body, once read
        self.read = False  # whether it was (a scenario's rules read it before the handler)
        self.destination: Destination | None = None
        self.source: Source | None = None
        self.data_model: str | None = None
        self.event: str | None = None
        self.keys: list[str] = []
        self.ehr: list[Record] = []  # the EHR records a writeback changed: committed with the log


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def _destination(sandbox: Sandbox, slug: str, environment: str) -> Destination:
    for destination in sandbox.destinations.all():
        if destination.slug == slug:
            break
    else:
        served = sorted(d.slug for d in sandbox.destinations.all() if d.slug)
        raise no_module(slug, f"No destination has the FHIR slug {slug!r} (slugs are case-sensitive); served: "
                              f"{', '.join(served) or 'none'}")
    if environment not in ENVIRONMENTS:
        raise FhirError(f"Unknown environment {environment!r}: use {', '.join(ENVIRONMENTS)} (case-sensitive)",
                        status=404, code="not-found", severity="fatal", coding="MSG_NO_MODULE")
    return destination


def _pick_source(sandbox: Sandbox, request: Request, token_source: str) -> Source:
    """Redox-Source-Id picks the source when the environment has several (Redox: required only then)."""
    sources = sandbox.settings.sources
    given = header(request.scope, b"redox-source-id")
    if given is not None:
        given = given.strip()
        for source in sources:
            if source.id == given:
                return source
        raise FhirError(f"Redox-Source-Id {given!r} is not a source of this environment; its sources: "
                        f"{', '.join(s.id for s in sources)}", code="invalid")
    if len(sources) > 1:
        raise FhirError(f"Redox-Source-Id is required: this environment has {len(sources)} sources "
                        f"({', '.join(s.id for s in sources)})", code="required")
    return _source(sandbox, token_source)


def _origin(request: Request) -> str:
    """scheme://host[root_path] as the client called it (Starlette's base_url, without building a URL)."""
    scope = request.scope
    host = header(scope, b"host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}"


def _base(request: Request) -> str:
    p = request.path_params
    return f"{_origin(request)}{PREFIX}/{p['slug']}/{p['environment']}"


def _token_url(request: Request) -> str:
    return f"{_origin(request)}/v2/auth/token"


async def _serve(request: Request, handler: Handler, sandbox: Sandbox | None = None) -> Response:
    sandbox = sandbox or _sandbox(request)
    if not sandbox.store.available:  # no writer to log it: nothing is done, as on /endpoint
        return unavailable(sandbox.store.problem)
    journal = Journal(sandbox, _journaled(request.scope))
    ex = _Exchange()
    errors: list[dict[str, Any]] = []
    response: Response
    decision: Decision | None = None
    try:
        params = request.path_params
        ex.destination = _destination(sandbox, params["slug"], params["environment"])
        scripted: Response | int | None = None
        if sandbox.scenarios.active:  # one attribute check when no scenario is
            decision = await _decide(request, sandbox, ex)
            scripted = await _consult(request, sandbox, ex, decision, errors)
            if isinstance(scripted, DroppedConnection):
                journal.finish(scripted, ex.raw, scenario=decision.note)
                await sandbox.store.committed()  # no answer either way: the connection just closes
                return scripted
        if isinstance(scripted, Response):
            response = scripted
        else:
            response = await handler(request, sandbox, ex)
            if scripted is not None:  # a rule's 2xx status on the FHIR API's own answer
                response.status_code = scripted
    except _MetaErrors as error:
        response = RedoxJSONResponse(400, error.body)
        errors = error.body["Meta"]["Errors"]
    except RequestError as error:
        problem = fhir_error(error)
        response = render(problem)
        errors = [{"ID": next_id(), "Text": problem.text, "Type": "message", "Module": "FHIR"}]
    log = _log(sandbox, journal, ex, response.status_code, errors)
    # Durable as /endpoint: the answer (a writeback's 200 above all) waits for its log's commit.
    return await journal.answer(response, ex.raw, logs=[log], source_id=ex.source.id if ex.source else None,
                                keys=ex.keys, ehr=ex.ehr, scenario=decision.note if decision else None)


# -- scenarios -------------------------------------------------------------------------------------
def _interaction(request: Request) -> tuple[str, str]:
    """(resource, interaction) as the request's log will name them: read, search, $match, $observation-create..."""
    p, method = request.path_params, request.method
    if "resource" not in p:
        return "CapabilityStatement", "capabilities"
    kind: str = p["resource"]
    id_: str | None = p.get("id")
    if "page" in p:
        return kind, "search"
    if id_ is None:
        return kind, "create" if method == "POST" else "search"
    if method == "POST":
        return kind, "search" if id_ == "_search" else id_ if id_.startswith("$") else "write"
    return kind, "read"


async def _decide(request: Request, sandbox: Sandbox, ex: _Exchange) -> Decision:
    """The rule that matches the request (reads its body first), its FHIR view kept in the journal's note."""
    kind, interaction = _interaction(request)
    raw = await _body(request, sandbox, ex) if request.method == "POST" else b""
    pairs: list[tuple[str, str]] = []
    try:
        pairs = _query_pairs(request)
        if interaction == "search" and request.method == "POST":
            pairs += _body_pairs(request, raw)
    except FhirError:
        pass  # the handler refuses it in its own words; the rules see no parameters
    payload: Any = None
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}
    decision = sandbox.scenarios.decide(Seen.fhir(request.method, request.url.path, headers, payload, kind,
                                                  interaction, params))
    decision.note["fhir"] = {"resource": kind, "interaction": interaction, "params": params}
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    sandbox.scenarios.before(decision, bearer.strip() if scheme.lower() == "bearer" else None, payload)
    return decision


async def _consult(request: Request, sandbox: Sandbox, ex: _Exchange, decision: Decision,
                   errors: list[dict[str, Any]]) -> Response | int | None:
    """What the rule does to the request: a Response (its answer), a status for the FHIR API's own answer,
    or None (the FHIR API answers as usual; the rule's token actions are done)."""
    actions = decision.actions
    if decision.rule is None or not (actions.delay > 0 or actions.drop_connection or decision.failing
                                     or actions.rate_limit or actions.respond is not None):
        return None
    kind, interaction = decision.note["fhir"]["resource"], decision.note["fhir"]["interaction"]
    if kind in SERVED or kind == "CapabilityStatement":
        ex.data_model, ex.event = f"FHIR.{kind}", interaction
    if interaction != "capabilities" or header(request.scope, b"authorization"):
        _admit(sandbox, request, ex)  # the token is checked on arrival, as Redox does; a rule may have killed it
    if actions.delay > 0:  # the EHR taking its time, on the emulator's clock; Redox gives up at sync_timeout
        clock, limit = sandbox.clock, sandbox.settings.sync_timeout
        started = clock.now()
        if limit is not None and actions.delay >= limit:
            await clock.sleep_until(started + limit)
            raise FhirError(f"Request timed out: the EHR did not respond within {limit:g} seconds", status=504,
                            code="timeout")
        await clock.sleep_until(started + actions.delay)
    if actions.drop_connection:
        return DroppedConnection()
    answer = sandbox.scenarios.fhir_answer(decision)
    if answer is None:
        return None
    if answer.body is None:
        return answer.status
    errors.extend({"ID": next_id(), "Text": text, "Type": "message", "Module": "FHIR"} for text in answer.errors)
    return FhirResponse(answer.status, answer.body, dict(answer.headers))


def _journaled(scope: Scope) -> Scope:
    """The scope as the journal records it: the path with its query string (the request target as sent),
    so the parameters of a `GET {Resource}?params` search are kept with the exchange and its log's
    attempt (`url`), which has no field of its own for them."""
    query: bytes = scope.get("query_string", b"")
    if not query:
        return scope
    return {**scope, "path": f"{scope['path']}?{query.decode('latin-1')}"}


def _log(sandbox: Sandbox, journal: Journal, ex: _Exchange, status: int, errors: list[dict[str, Any]]) -> Log:
    now = sandbox.clock.now()
    kind = LogType.REQUEST if ex.data_model is not None else LogType.UNKNOWN
    d, s = ex.destination, ex.source
    return Log(ex.log_id, now, kind, LogStatus.SUCCEEDED if status < 400 else LogStatus.FAILED, ex.data_model,
               ex.event, s.id if s else None, s.name if s else None, d.id if d else None, d.name if d else None,
               None, errors, [(ex.attempt_id, journal.id, now, status)])


def _admit(sandbox: Sandbox, request: Request, ex: _Exchange) -> None:
    grant = _admit_scope(sandbox, request.scope, header(request.scope, b"authorization"))
    ex.source = _pick_source(sandbox, request, grant.source_id)


def _resource(request: Request, ex: _Exchange) -> str:
    kind: str = request.path_params["resource"]
    if kind not in SERVED:
        raise no_module(request.path_params["slug"], f"No FHIR resource type {kind!r} here (names are "
                                                     f"case-sensitive); served: {', '.join(TYPES)}")
    ex.data_model = f"FHIR.{kind}"
    return kind


# -- handlers: (request, sandbox, exchange) -> (response, request body to journal) -------------------
async def _metadata(request: Request, sandbox: Sandbox, ex: _Exchange) -> Response:
    ex.data_model, ex.event = "FHIR.CapabilityStatement", "capabilities"
    if header(request.scope, b"authorization"):  # a token is not needed here; one that is sent must be good
        _admit(sandbox, request, ex)
    return FhirResponse(200, sandbox.fhir.capabilities(_base(request), _token_url(request)))


async def _read_or_operation(request: Request, sandbox: Sandbox, ex: _Exchange) -> Response:
    kind = _resource(request, ex)
    id_: str = request.path_params["id"]
    if request.method == "POST":
        if id_ == "_search":
            return await _search(request, sandbox, ex)
        if id_.startswith("$"):
            return await _operation(request, sandbox, ex, kind, id_)
        ex.event = "write"
        _admit(sandbox, request, ex)
        await _body(request, sandbox, ex)
        return Response(b"", 404, REDOX_HEADERS)  # the live sandbox's answer to POST Appointment/{id}
    ex.event = "read"
    if id_ == "_search" or id_.startswith("$"):
        raise FhirError(f"{kind}/{id_} takes POST, not {request.method}", status=405, code="not-supported",
                        headers={"Allow": "POST"})
    _admit(sandbox, request, ex)
    answer = sandbox.fhir.read(kind, id_)
    ex.keys = answer.keys
    return FhirResponse(200, answer.json())


async def _operation(request: Request, sandbox: Sandbox, ex: _Exchange, kind: str, operation: str
                     ) -> Response:
    ex.event = operation
    _admit(sandbox, request, ex)
    raw = await _body(request, sandbox, ex)
    if operation_for(kind, operation) is not None:
        answer = sandbox.fhir.write(kind, operation, _json(raw), _base(request), sandbox.contracts.mode, ex.ehr)
        ex.keys = answer.keys
        return FhirResponse(200, answer.json())
    if (kind, operation) != ("Patient", "$match"):
        assert ex.source is not None
        environment = request.path_params["environment"]
        body = {"Meta": {"Logs": [{"ID": ex.log_id, "AttemptID": ex.attempt_id}],
                         "Source": {"ID": ex.source.id, "Name": f"Redox Request Ingress ({environment})"},
                         "Errors": [{"Text": "Invalid data model and/or event type.", "Type": "message",
                                     "Module": "Parser"}]}}
        served = ", ".join(f"{k}/{op}" for op, (k, _, _) in OPERATIONS.items())
        raise _MetaErrors(body, f"{kind}/{operation} is not an operation this emulator serves (Patient/$match "
                                f"and the writebacks {served} are)")
    answer = sandbox.fhir.match(_json(raw), _base(request))
    ex.keys = answer.keys
    return FhirResponse(200, answer.json())


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(f"The request body is not JSON: {exc}", code="structure") from None


class _MetaErrors(FhirError):
    """Redox's legacy Data-Model error body, which the live sandbox gives a wrong operation (FHIR.md 6)."""

    def __init__(self, body: dict[str, Any], text: str) -> None:
        super().__init__(text, status=400)
        self.body = body


async def _search_type(request: Request, sandbox: Sandbox, ex: _Exchange) -> Response:
    """GET {Resource}?params is a search; POST {Resource} (a create) is not served (404, no body)."""
    _resource(request, ex)
    if request.method == "POST":
        ex.event = "create"
        _admit(sandbox, request, ex)
        await _body(request, sandbox, ex)
        return Response(b"", 404, REDOX_HEADERS)
    return await _search(request, sandbox, ex)


async def _search(request: Request, sandbox: Sandbox, ex: _Exchange) -> Response:
    kind = _resource(request, ex)
    ex.event = "search"
    _admit(sandbox, request, ex)
    pairs = _query_pairs(request)
    if request.method == "POST":
        pairs += _body_pairs(request, await _body(request, sandbox, ex))
    answer = sandbox.fhir.search(kind, pairs, _base(request))
    ex.keys = answer.keys
    return FhirResponse(200, answer.json())


async def _page(request: Request, sandbox: Sandbox, ex: _Exchange) -> Response:
    kind = _resource(request, ex)
    ex.event = "search"
    _admit(sandbox, request, ex)
    token, _, relation = request.path_params["page"].partition(".")
    if relation not in ("search", "next", "previous", "first", "self"):
        raise FhirError(f"Unknown page link {request.path_params['page']!r}: a paging link ends in .search, .next, "
                        ".previous, .first or .self", status=404, code="not-found")
    answer = sandbox.fhir.page(_base(request), kind, token, relation)
    ex.keys = answer.keys
    return FhirResponse(200, answer.json())


# -- request parsing -----------------------------------------------------------------------------
async def _body(request: Request, sandbox: Sandbox, ex: _Exchange) -> bytes:
    if not ex.read:
        ex.raw = await receive_body(request.scope, request.receive, sandbox.settings.payload_limit)
        ex.read = True
    return ex.raw


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FhirError(f"The {what} is not valid UTF-8", code="structure") from None


_FORMS: dict[str, tuple[tuple[str, str], ...]] = {}  # form text -> its pairs: clients repeat their searches
MAX_FORMS, MAX_FORM_TEXT = 1_000, 2_000


def _form(text: str, what: str) -> list[tuple[str, str]]:
    found = _FORMS.get(text)
    if found is not None:
        return list(found)  # a new list: callers add to it
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise FhirError(f"The {what} is not valid form encoding (UTF-8, percent-escaped)", code="structure") from None
    if len(text) <= MAX_FORM_TEXT:
        if len(_FORMS) >= MAX_FORMS:
            _FORMS.clear()
        _FORMS[text] = tuple(pairs)
    return pairs


def _query_pairs(request: Request) -> list[tuple[str, str]]:
    query: bytes = request.scope.get("query_string", b"")
    return _form(_decode(query, "query string"), "query string") if query else []


def _body_pairs(request: Request, raw: bytes) -> list[tuple[str, str]]:
    """Search parameters from a POST body: form-encoded, JSON (Redox accepts it), or none at all."""
    media = (header(request.scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if not raw.strip():
        return []
    if media in _JSON_TYPES or (not media and raw.lstrip()[:1] == b"{"):
        return _json_pairs(raw)
    if media in ("", "application/x-www-form-urlencoded", "text/plain"):
        return _form(_decode(raw, "request body"), "request body")
    raise FhirError(f"A search body is form-encoded (application/x-www-form-urlencoded) or JSON, not {media}",
                    status=415, code="not-supported")


def _json_pairs(raw: bytes) -> list[tuple[str, str]]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(f"The request body is not JSON: {exc}", code="structure") from None
    if not isinstance(data, dict):
        raise FhirError("A JSON search body is an object of parameters, as in {\"identifier\": \"system|value\"}",
                        code="structure")
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool):
                pairs.append((name, "true" if item else "false"))
            elif isinstance(item, str | int | float):
                pairs.append((name, str(item)))
            else:
                raise FhirError(f"The search parameter {name!r} must be a string, a number or a list of them",
                                code="structure")
    return pairs


# -- routes ---------------------------------------------------------------------------------------
def _route(handler: Handler) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _serve(request, handler)

    return endpoint


async def direct(sandbox: Sandbox, scope: Scope, receive: Receive) -> Response:
    """The routes below, matched here rather than by Starlette's router (app.py calls this for every
    /fhir/R4/ path): the router's walk through every route and its middleware cost more than a read."""
    parts = scope["path"][len(PREFIX) + 1:].split("/")
    method = scope["method"]
    handler: Handler | None = None
    allowed: tuple[str, ...] = ("GET", "POST")
    if len(parts) >= 3 and all(parts):
        slug, environment, rest = parts[0], parts[1], parts[2:]
        params: dict[str, str] = {"slug": slug, "environment": environment}
        if rest == ["metadata"]:
            handler, allowed = _metadata, ("GET",)
        elif len(rest) == 4 and rest[0] == "page" and rest[2] == "search":
            handler, allowed = _page, ("GET",)
            params.update(resource=rest[1], page=rest[3])
        elif len(rest) == 1:
            handler = _search_type
            params["resource"] = rest[0]
        elif len(rest) == 2:
            handler = _read_or_operation
            params.update(resource=rest[0], id=rest[1])
    if handler is None:
        return render(no_module(parts[0] if parts else "", f"No route for {method} {scope['path']}"))
    if method not in allowed and not (method == "HEAD" and "GET" in allowed):
        return render(FhirError(f"Method {method} is not allowed on {scope['path']}", status=405,
                                code="not-supported", headers={"Allow": ", ".join(allowed)}))
    scope["path_params"] = params
    return await _serve(Request(scope, receive), handler, sandbox)


def _writeback_route(kind: str, operation: str) -> Any:
    async def endpoint(request: Request) -> Response:
        request.scope["path_params"] = {**request.path_params, "resource": kind, "id": operation}
        return await _serve(request, _read_or_operation)

    return endpoint


BASE = PREFIX + "/{slug}/{environment}"
routes = [
    Route(BASE + "/metadata", _route(_metadata), methods=["GET"]),
    *(Route(f"{BASE}/{kind}/{operation}", _writeback_route(kind, operation), methods=["POST"])
      for operation, (kind, _, _) in OPERATIONS.items()),
    Route(BASE + "/page/{resource}/search/{page}", _route(_page), methods=["GET"]),
    Route(BASE + "/{resource}", _route(_search_type), methods=["GET", "POST"]),
    Route(BASE + "/{resource}/{id}", _route(_read_or_operation), methods=["GET", "POST"]),
]
