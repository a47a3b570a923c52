"""The OpenAPI 3.1 document of the whole emulator: Redox's surface and the control plane.

Written by hand (the routes are plain Starlette, with no schema of their own) and kept true by
tests/test_openapi.py, which runs schemathesis against the app: every answer must have a documented
status, content type and shape. A new route gets its entry here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from emulator import __version__, catalog, log_filters
from emulator.auth import ASSERTION_TYPE
from emulator.clock import MAX_FACTOR, MAX_OFFSET
from emulator.contracts import schemas
from emulator.contracts.schemas import Contract
from emulator.delivery.push import MAX_COUNT
from emulator.fhir.resources import TYPES
from emulator.fhir.writeback import OPERATIONS
from emulator.scenarios import library
from emulator.settings import HEADER_VALUE, Destination, Settings, destination_config
from emulator.store import MAX_PAGE, LogStatus, LogType
from emulator.web import openapi_fhir
from emulator.web.delivery_routes import FAULT_COUNT_MAX
from emulator.web.log_routes import MAX_CURSOR, MAX_SEARCH

JSON = "application/json"
FHIR_JSON = "application/fhir+json"
_REF = "#/components/schemas/"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": _REF + name}


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _envelope(payload: Schema) -> Schema:
    return {"type": "object", "required": ["meta", "payload"],
            "properties": {"meta": {"type": "object"}, "payload": payload}}


def _control(summary: str, payload: Schema | None = None, *, params: list[dict[str, Any]] | None = None,
             body: Schema | None = None, body_required: bool = True, media: str = JSON) -> dict[str, Any]:
    """A control-plane operation: 200 with the {"meta", "payload"} envelope, else {"error": text}."""
    operation: dict[str, Any] = {
        "summary": summary, "tags": ["control plane"],
        "responses": {"200": _json(_envelope(payload or {"type": "object"}), "OK"),
                      "default": _json(_ref("ControlError"), "An error, said in one sentence")},
    }
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {media: {"schema": body}}}
    return operation


def _health() -> dict[str, Any]:
    status = {"type": "object", "required": ["status", "store"], "properties": {
        "status": {"enum": ["ok", "unavailable"]}, "reason": {"type": "string"},
        "store": {"type": "object", "required": ["available", "writerPid"]}}}
    operation = _control("Health, version, the emulator's clock, the log store's writer", status)
    operation["responses"]["503"] = _json(_envelope(status), "No request can be logged now (the log store's writer "
                                                             "is down or restarting): payload.reason says why")
    return operation


def _query(name: str, schema: Schema, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def _redox(summary: str, ok: dict[str, Any], *, body: dict[str, Any] | None = None, bearer: bool = True,
           ok_status: str = "200") -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary, "tags": ["Redox"],
        "responses": {ok_status: ok, "default": {
            "description": "Redox's error answers: Meta.Errors, an OAuth error, or 401 'Invalid request'",
            "content": {JSON: {"schema": {"anyOf": [_ref("RedoxErrors"), _ref("OAuthError"), _ref("RedoxEvent")]}},
                        "text/html": {"schema": {"type": "string"}}}}},
    }
    if bearer:
        operation["security"] = [{"bearer": []}]
    if body is not None:
        operation["requestBody"] = body
    return operation


# A search term holds something besides whitespace (Python's str.strip, which the server applies).
_BLANKS = "".join(f"\\u{ord(c):04x}" for c in map(chr, range(0x3001)) if c.isspace())  # U+3000 is the last
_SEARCH = {"type": "string", "pattern": f"[^{_BLANKS}]", "maxLength": MAX_SEARCH}
_TIME = {"anyOf": [{"type": "string", "format": "date-time"},
                   {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,6})?$"}]}


def _fhir(summary: str, *, params: list[dict[str, Any]], body: bool = False, bearer: bool = True,
          empty_404: bool = False) -> dict[str, Any]:
    """A FHIR operation: a resource or Bundle, else an OperationOutcome (or Redox's Meta.Errors)."""
    errors: dict[str, Any] = {FHIR_JSON: {"schema": _ref("OperationOutcome")}, JSON: {"schema": _ref("RedoxErrors")}}
    responses: dict[str, Any] = {
        "200": {"description": "A FHIR resource (a searchset Bundle for a search)",
                "content": {FHIR_JSON: {"schema": _ref("FhirResource")}}},
        "default": {"description": "An OperationOutcome; Redox's Meta.Errors for a known resource's unknown "
                                   "operation", "content": errors},
    }
    if empty_404:
        # No content documented: the body is empty (the live sandbox's answer to a POST with no interaction)
        # or, for an unknown slug or resource, an OperationOutcome.
        responses["404"] = {"description": "POST with no interaction (a create or an update): no body, as the live "
                                           "sandbox answers; an unknown slug or resource: an OperationOutcome"}
    operation: dict[str, Any] = {"summary": summary, "tags": ["FHIR"], "parameters": params, "responses": responses}
    if bearer:
        operation["security"] = [{"bearer": []}]
    if body:
        form = {"type": "object", "additionalProperties": {"type": "string"}}
        operation["requestBody"] = {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": form}, JSON: {"schema": {"type": "object"}},
            FHIR_JSON: {"schema": {"type": "object"}}}}
    return operation


_FHIR_BASE = [{**_path("slug", "the destination's FHIR slug"), "schema": {"type": "string",
                                                                          "examples": ["redox-fhir-sandbox"]}},
              {**_path("environment"), "schema": {"enum": ["Development", "Staging", "Production"]}}]
_FHIR_RESOURCE = {**_path("resource", "a resource type, case-sensitive"), "schema": {"enum": list(TYPES)}}
_FHIR_SEARCH = "/fhir/R4/{slug}/{environment}"
# The writebacks have paths of their own (their bodies are message Bundles): here, _search, $match or an id.
_FHIR_POST_ID = {**_path("id", "_search, $match or an id (a POST to an id: 404 with no body)"),
                 "schema": {"type": "string", "pattern": r"^(_search|\$match|[A-Za-z0-9\-.]{1,64})$"}}

_LOG_FILTER_PARAMS = [
    _query("logId", _SEARCH),
    _query("dataModel", _SEARCH, "e.g. PatientAdmin"),
    _query("eventType", _SEARCH, "e.g. NewPatient"),
    _query("status", {"type": "string", "enum": [s.value for s in LogStatus]}),
    _query("type", {"type": "string", "enum": [t.value for t in LogType]}),
    _query("sourceId", _SEARCH),
    _query("destinationId", _SEARCH),
    _query("mrn", _SEARCH, "a patient identifier: an MRN or any ID of an Identifiers list"),
    _query("q", _SEARCH, "a log ID, a patient identifier, or text in the request body or errors"),
    _query("createdAfter", _TIME, "ISO-8601 time or epoch seconds"),
    _query("createdBefore", _TIME, "ISO-8601 time or epoch seconds"),
]
assert {p["name"] for p in _LOG_FILTER_PARAMS} == set(log_filters.NAMES)

SCHEMAS: dict[str, Schema] = {
    "ControlError": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "RedoxErrors": {"type": "object", "required": ["Meta"], "properties": {"Meta": {
        "type": "object", "required": ["Errors"], "properties": {"Errors": {"type": "array", "items": {
            "type": "object", "properties": {"ID": {"type": "integer"}, "Text": {"type": "string"},
                                             "Type": {"type": "string"}, "Module": {"type": "string"}}}}}}}},
    "OAuthError": {"type": "object", "required": ["error"],
                   "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}},
    "RedoxEvent": {"type": "object", "required": ["Meta"], "properties": {"Meta": {
        "type": "object", "properties": {"DataModel": {}, "EventType": {},
                                         "Destinations": {}, "Logs": {},
                                         "Errors": {"type": ["array", "null"]}}}},  # an echo keeps a sent null
                   "description": "A Redox event: Meta (DataModel, EventType, Destinations...) and the data model's "
                                  "sections"},
    "Log": {"type": "object", "required": ["id", "createdAt", "type", "status", "attemptCount", "errors"],
            "properties": {
                "id": {"type": "string"}, "createdAt": {"type": "string"},
                "type": {"enum": [t.value for t in LogType]}, "status": {"enum": [s.value for s in LogStatus]},
                "dataModel": {"type": ["string", "null"]}, "eventType": {"type": ["string", "null"]},
                "source": {"type": ["object", "null"]}, "destination": {"type": ["object", "null"]},
                "test": {"type": ["boolean", "null"]}, "errors": {"type": "array"},
                "attemptCount": {"type": "integer"},
                "attempts": {"type": "array", "items": _ref("Attempt")}}},
    "Attempt": {"type": "object", "required": ["id", "createdAt", "httpStatus"], "properties": {
        "id": {"type": "string"}, "createdAt": {"type": "string"}, "httpStatus": {"type": "integer"},
        "method": {"type": ["string", "null"]}, "url": {"type": ["string", "null"]},
        "latencyMs": {"type": ["number", "null"]}, "request": {}, "response": {}, "scenario": {}}},
    "OperationOutcome": {"type": "object", "required": ["resourceType", "issue"], "properties": {
        "resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["severity", "code"], "properties": {
                "severity": {"enum": ["fatal", "error", "warning", "information"]}, "code": {"type": "string"},
                "details": {"type": "object"}, "diagnostics": {"type": "string"}}}}}},
    # A writeback's answer (FHIR.md 4); the bodies: web/openapi_fhir.py.
    "TransactionResponse": {"type": "object", "required": ["resourceType", "type", "entry"], "properties": {
        "resourceType": {"const": "Bundle"}, "type": {"const": "transaction-response"},
        "entry": {"type": "array", "items": {"type": "object", "required": ["response"], "properties": {
            "response": {"type": "object", "required": ["status", "location", "etag", "lastModified"], "properties": {
                "status": {"enum": ["201 Created", "200 OK"]}, "location": {"type": "string"},
                "etag": {"type": "string"}, "lastModified": {"type": "string"}}}}}}}},
    "FhirResource": {"type": "object", "required": ["resourceType"], "properties": {
        "resourceType": {"type": "string"}, "id": {"type": "string"}}},
    "Destination": {"type": "object", "required": ["id", "name", "queue"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "url": {"type": ["string", "null"]},
        "format": {"enum": ["json", "fhir"]}, "notifications": {"enum": ["detailed", "lightweight"]},
        "queue": {"type": "object"}}},
}


_CLOCK: Schema = {"oneOf": [  # what POST /__emulator/clock accepts, as three shapes that cannot overlap
    {"type": "object", "required": ["advance"], "additionalProperties": False,
     "properties": {"advance": {"type": "number", "minimum": 0, "maximum": MAX_OFFSET}}},
    {"type": "object", "required": ["mode"], "additionalProperties": False,
     "properties": {"mode": {"enum": ["real", "manual"]}, "advance": {"type": "number", "minimum": 0,
                                                                       "maximum": MAX_OFFSET}}},
    {"type": "object", "required": ["mode", "factor"], "additionalProperties": False,
     "properties": {"mode": {"const": "accelerated"},
                    "factor": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_FACTOR},
                    "advance": {"type": "number", "minimum": 0, "maximum": MAX_OFFSET}}},
]}
_TEXT = {"type": "string", "minLength": 1}
_FAULT_COUNT = {"type": "integer", "minimum": 0, "maximum": FAULT_COUNT_MAX}
_TOKEN_FORM: Schema = {"oneOf": [  # RFC 6749 client secret, or an RFC 7523 assertion (Basic: the header)
    {"type": "object", "required": ["grant_type", "client_id", "client_secret"], "additionalProperties": False,
     "properties": {"grant_type": {"const": "client_credentials"}, "client_id": _TEXT, "client_secret": _TEXT}},
    {"type": "object", "required": ["grant_type", "client_assertion_type", "client_assertion"],
     "additionalProperties": False,
     "properties": {"grant_type": {"const": "client_credentials"}, "client_id": _TEXT,
                    "client_assertion_type": {"const": ASSERTION_TYPE}, "client_assertion": _TEXT}},
]}
_SUBSCRIPTIONS: Schema = {"anyOf": [
    {"const": "all"},
    {"type": "object", "additionalProperties": False, "properties": {
        model: {"anyOf": [{"const": "all"}, {"type": "array", "items": {"enum": list(events)}}]}
        for model, events in catalog.DATA_MODELS.items()}},
]}
_FHIR_SUBSCRIPTIONS: Schema = {"anyOf": [  # a FHIR destination's: Redox's FHIR notification names
    {"const": "all"},
    {"type": "object", "additionalProperties": False, "properties": {
        model: {"anyOf": [{"const": "all"}, {"type": "array", "items": {"enum": list(events)}}]}
        for model, events in catalog.FHIR_MODELS.items()}},
]}
_WEBHOOK_URL: Schema = {"type": "string",
                        "pattern": r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[1-9][0-9]{0,3})?(/[!-~]*)?$",
                        "description": "its webhook: registering it sends Redox's verification handshake there"}
_DESTINATION_COMMON: dict[str, Schema] = {
    "id": _TEXT, "name": _TEXT, "verification_token": {"type": "string", "pattern": HEADER_VALUE},
    "handshake": {"enum": ["post", "get"]}}
_DESTINATION: Schema = {"oneOf": [  # the data model's events (format json, the default), or FHIR notifications
    {"type": "object", "required": ["id", "name"], "additionalProperties": False, "properties": {
        **_DESTINATION_COMMON, "subscriptions": _SUBSCRIPTIONS, "url": _WEBHOOK_URL,
        "format": {"const": "json"}, "notifications": {"const": "detailed"}}},
    {"type": "object", "required": ["id", "name", "url", "format"], "additionalProperties": False, "properties": {
        **_DESTINATION_COMMON, "url": _WEBHOOK_URL, "subscriptions": _FHIR_SUBSCRIPTIONS,
        "format": {"const": "fhir", "description": "FHIR notification message Bundles (application/fhir+json) "
                                                   "in place of the data model's events"},
        "notifications": {"enum": ["detailed", "lightweight"],
                          "description": "detailed (default): the resources; lightweight: focus references"}}},
]}
_PUSH: Schema = {"oneOf": [  # per DataModel, so that EventType is one of its own
    {"type": "object", "required": ["DataModel", "EventType"], "additionalProperties": False,
     "not": {"required": ["payload", "patient"]},
     "properties": {
         "DataModel": {"const": model}, "EventType": {"enum": list(events)},
         "payload": {"type": "object", "description": "the event to push; without it the EHR builds one"},
         "patient": {"type": "string", "description": "an MRN of the EHR, for an event it builds"},
         "count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
         "set": {"type": "object", "description": "path -> value overrides, e.g. Patient.Demographics.FirstName; "
                                                  "a path through a list needs its index ([0])",
                 "propertyNames": {"pattern": r"^(Meta|Patient|Visit)\.[A-Z][A-Za-z]*$"}},
         "destinations": {"type": "array", "items": {"type": "string"}},
         "format": {"const": "json"}}}
    for model, events in catalog.DATA_MODELS.items()] + [
    {"type": "object", "required": ["format", "DataModel", "EventType"], "additionalProperties": False,
     "not": {"required": ["payload", "patient"]},
     "properties": {
         "format": {"const": "fhir", "description": "a FHIR notification, to destinations with format fhir"},
         "DataModel": {"const": model}, "EventType": {"enum": list(events)},
         "payload": {"type": "object", "description": "the data-model event the notification is made from "
                                                      "(catalog: its source event); without it the EHR builds one"},
         "patient": {"type": "string", "description": "an MRN of the EHR, for an event it builds"},
         "count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT},
         "set": {"type": "object", "description": "overrides of the source event, as for a data-model push",
                 "propertyNames": {"pattern": r"^(Meta|Patient|Visit)\.[A-Z][A-Za-z]*$"}},
         "destinations": {"type": "array", "items": {"type": "string"},
                          "description": "FHIR destinations only (400 for another)"}}}
    for model, events in catalog.FHIR_MODELS.items()]}


def _scenario_by_name(names: Iterable[str]) -> Schema:
    return {"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"enum": sorted(names)}}}


def _event_name(data_model: str, event_type: str) -> str:
    # No spaces, and no dot: generators read a dot as a module path.
    return f"{data_model.replace(' ', '')}_{event_type.replace('-', '')}"


def _event_schema(contract: Contract, destination_ids: list[str]) -> Schema:
    """The contract as `redox` mode enforces it, with what routing adds: this DataModel and EventType,
    and Meta.Destinations naming at least one destination subscribed to them."""
    schema = copy.deepcopy(contract.schema)
    for noise in ("$schema", "title", "x-permissive"):
        schema.pop(noise, None)
    meta = schema.setdefault("properties", {}).setdefault("Meta", {"type": "object"})
    meta.setdefault("properties", {}).update({
        "DataModel": {"const": contract.data_model}, "EventType": {"const": contract.event_type},
        "Destinations": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["ID"], "properties": {"ID": {"enum": destination_ids}}}}})
    meta["type"] = "object"
    meta["required"] = sorted({*meta.get("required", ()), "DataModel", "EventType", "Destinations"})
    schema["required"] = sorted({*schema.get("required", ()), "Meta"})
    schema["type"] = "object"
    return schema


def event_schemas(contracts: Mapping[tuple[str, str], Contract],
                  destinations: Iterable[Destination]) -> dict[str, Schema]:
    """One component per event type that some destination takes (else routing refuses every payload)."""
    takers = list(destinations)
    found = {}
    for (model, event), contract in sorted(contracts.items()):
        ids = [d.id for d in takers if d.subscribes(model, event)]
        if ids:
            found[_event_name(model, event)] = _event_schema(contract, ids)
    return found


_DOCUMENTS: dict[tuple[int, str], tuple[Mapping[tuple[str, str], Contract], dict[str, Any]]] = {}  # a few, newest last


def document(contracts: Mapping[tuple[str, str], Contract] | None = None,
             destinations: Iterable[Destination] | None = None, scenarios_dir: str | None = None) -> dict[str, Any]:
    """The document for these contracts, destinations and scenario library (default: the bundled
    contracts, the embedded destinations, ./scenarios and the library); built once per distinct
    combination, since the event schemas make it over a megabyte."""
    contracts = schemas.load() if contracts is None else contracts
    takers = list(Settings().all_destinations() if destinations is None else destinations)
    names = library.names(Settings().scenarios_dir if scenarios_dir is None else scenarios_dir)
    key = (id(contracts), json.dumps([[destination_config(d) for d in takers], names], sort_keys=True, default=str))
    cached = _DOCUMENTS.get(key)
    if cached is None or cached[0] is not contracts:  # an id is reused once its object is gone: check it is ours
        if len(_DOCUMENTS) > 8:  # destinations come and go at run time: keep the recent few
            _DOCUMENTS.pop(next(iter(_DOCUMENTS)))
        cached = _DOCUMENTS[key] = (contracts, _build(event_schemas(contracts, takers), names))
    return cached[1]


def _build(events: dict[str, Schema], scenario_names: list[str]) -> dict[str, Any]:
    queries = [name for name in events if any(_event_name(*q) == name for q in catalog.QUERIES)]
    redox_event_body = {"required": True, "content": {JSON: {"schema": {
        "oneOf": [_ref(name) for name in events],
        "description": "A Redox event or query: Meta.DataModel and Meta.EventType pick the contract the "
                       "payload is validated against (`redox` mode), and Meta.Destinations must name a "
                       "destination subscribed to that event type"}}}}
    query_body = {"required": True, "content": {JSON: {"schema": {"oneOf": [_ref(name) for name in queries]}}}}
    token_answer = _json({"type": "object", "required": ["accessToken"]}, "A token")
    paths: dict[str, Any] = {
        "/auth/authenticate": {"post": _redox(
            "Legacy token from apiKey and secret", token_answer, bearer=False,
            body={"required": True, "content": {JSON: {"schema": {
                "type": "object", "required": ["apiKey", "secret"],
                "properties": {"apiKey": {"type": "string", "examples": ["sandbox-api-key"]},
                               "secret": {"type": "string", "examples": ["sandbox-secret"]}}}}}})},
        "/auth/refreshToken": {"post": _redox(
            "Refresh a legacy token", token_answer, bearer=False,
            body={"required": True, "content": {JSON: {"schema": {
                "type": "object", "required": ["apiKey", "refreshToken"],
                "properties": {"apiKey": {"type": "string"}, "refreshToken": {"type": "string"}}}}}})},
        "/v2/auth/token": {"post": _redox(
            "OAuth 2.0 client credentials: client secret, HTTP Basic or a signed JWT assertion",
            _json({"type": "object", "required": ["access_token", "token_type", "expires_in"]}, "An access token"),
            bearer=False, body={"required": True, "content": {"application/x-www-form-urlencoded": {
                "schema": _TOKEN_FORM}}})},
        "/endpoint": {"post": _redox("Send an event or a query (every data model)",
                                     _json(_ref("RedoxEvent"), "Meta with Logs; a query's answer"),
                                     body=redox_event_body)},
        "/query": {"post": _redox("Send a query (same as /endpoint)", _json(_ref("RedoxEvent"), "The answer"),
                                  body=query_body)},
        "/upload": {"post": _redox(
            "Upload a file (multipart field `file`) to reference in Media.FileContents",
            _json({"type": "object", "required": ["URI"]}, "The file's URI"), ok_status="201",
            body={"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}}}}}})},
        "/upload/{upload_id}": {"get": {**_redox(
            "Download an uploaded file", {"description": "The file as uploaded", "content": {"*/*": {}}}),
            "parameters": [_path("upload_id")]}},
        _FHIR_SEARCH + "/metadata": {"get": _fhir(
            "The CapabilityStatement (no token needed; the token URL in SMART's oauth-uris extension)",
            params=_FHIR_BASE, bearer=False)},
        _FHIR_SEARCH + "/page/{resource}/search/{page}": {"get": _fhir(
            "A page of a search: the link Redox gives, {uuid}.search|next|previous|first|self",
            params=[*_FHIR_BASE, _FHIR_RESOURCE, _path("page", "{uuid}.{relation}")])},
        _FHIR_SEARCH + "/{resource}": {
            "get": _fhir("Search (HL7's GET form); parameters in the query string",
                         params=[*_FHIR_BASE, _FHIR_RESOURCE]),
            "post": _fhir("Not served (a create): 404 with no body, as the live sandbox answers",
                          params=[*_FHIR_BASE, _FHIR_RESOURCE], body=True, empty_404=True)},
        _FHIR_SEARCH + "/{resource}/{id}": {
            "get": _fhir("Read a resource by id", params=[*_FHIR_BASE, _FHIR_RESOURCE, _path("id")]),
            "post": _fhir("{id} = _search: search (form, JSON or no body); $match on Patient; a writeback "
                          f"({', '.join(f'{k}/{op}' for op, (k, _, _) in OPERATIONS.items())}: their own paths "
                          "below); another $operation: Redox's Meta.Errors; any other id: 404 with no body",
                          params=[*_FHIR_BASE, _FHIR_RESOURCE, _FHIR_POST_ID], body=True, empty_404=True)},
        **openapi_fhir.paths(_FHIR_SEARCH, _FHIR_BASE, {
            "200": {"description": "The live sandbox's transaction-response: per written resource its status "
                                   "(201 Created, 200 OK), location (.../{Type}/{id}/_history/{versionId}), etag "
                                   "and lastModified", "content": {FHIR_JSON: {"schema": _ref("TransactionResponse")}}},
            "default": {"description": "An OperationOutcome naming each bad element (issue[].expression)",
                        "content": {FHIR_JSON: {"schema": _ref("OperationOutcome")}}}}),
        "/__emulator/health": {"get": _health()},
        "/__emulator/reset": {"post": _control("Back to the start state")},
        "/__emulator/logs": {"get": _control(
            "Redox logs, newest first", {"type": "object", "required": ["logs"], "properties": {
                "logs": {"type": "array", "items": _ref("Log")}}},
            params=[*_LOG_FILTER_PARAMS,
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                    _query("cursor", {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
                           "meta.nextCursor of the previous page"),
                    _query("full", {"type": "boolean"}, "each log with its attempts and bodies")])},
        "/__emulator/logs/stream": {"get": {
            "summary": "New logs as Server-Sent Events: log, update (a pending log changed), reset, hello, bye",
            "tags": ["control plane"],
            "parameters": [*_LOG_FILTER_PARAMS,
                           _query("after", {"type": "integer", "minimum": 0}, "send logs newer than this seq"),
                           _query("seconds", {"type": "integer", "minimum": 1, "maximum": 86400},
                                  "end the stream after this long (default: when the client goes)")],
            "responses": {"200": {"description": "An event stream", "content": {"text/event-stream": {
                "schema": {"type": "string"}}}},
                "default": _json(_ref("ControlError"), "An error")}}},
        "/__emulator/logs/{log_id}": {"get": _control(
            "One log with its attempts and their request and response bodies",
            {"type": "object", "required": ["log"], "properties": {"log": _ref("Log")}},
            params=[_path("log_id")])},
        "/__emulator/exchanges": {"get": _control(
            "The journal: every HTTP exchange, secrets redacted", {"type": "object", "required": ["exchanges"]},
            params=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 100_000})])},
        "/__emulator/clock": {
            "get": _control("Read the clock"),
            "post": _control("Advance the clock or change its mode (both: the mode first); 409 when the clock "
                             "would move more than a century in all", body=_CLOCK)},
        "/__emulator/scenarios": {
            "get": _control("The scenario library and the active scenarios"),
            "post": {**_control("Activate a scenario by name (the user's scenarios_dir, then the library)",
                                body=_scenario_by_name(scenario_names)),
                     "description": "A scenario file can be the body too (YAML, or JSON, which is YAML; "
                                    "scenarios/README.md): its cross-references (push and rule names, states) go "
                                    "beyond what a JSON Schema says, so it is not described here. 422 names "
                                    "each problem as file:line:column."},
            "delete": _control("Deactivate one scenario (?name=) or all", params=[_query("name", {"type": "string"})])},
        "/__emulator/clients/{client_id}/jwks": {
            "get": _control("A client's public keys", params=[_path("client_id")]),
            "put": _control("Replace a client's public keys (a JWK Set)", params=[_path("client_id")],
                            body={"type": "object", "required": ["keys"], "properties": {"keys": {
                                "type": "array", "items": {"type": "object", "required": ["kty"]}}}})},
        "/__emulator/destinations": {
            "get": _control("Destinations with their queues", {"type": "object", "required": ["destinations"],
                                                               "properties": {"destinations": {
                                                                   "type": "array", "items": _ref("Destination")}}}),
            "post": _control("Register (or replace) a destination; a webhook is verified at once",
                             body=_DESTINATION)},
        "/__emulator/destinations/{destination_id}": {
            "get": _control("One destination", params=[_path("destination_id")]),
            "delete": _control("Remove a destination (its queued messages are purged)",
                               params=[_path("destination_id")])},
        "/__emulator/destinations/{destination_id}/verify": {"post": _control(
            "Redox's verification handshake again (409 for a destination with no webhook URL)",
            params=[_path("destination_id")], body={"type": "object", "additionalProperties": False,
                                                    "properties": {"form": {"enum": ["post", "get"]}}},
            body_required=False)},
        "/__emulator/destinations/{destination_id}/queue": {"get": _control(
            "Pending messages, oldest first", params=[_path("destination_id")])},
        "/__emulator/destinations/{destination_id}/queue/{action}": {"post": _control(
            "pause, resume, retry or purge the queue",
            params=[_path("destination_id"), {**_path("action"), "schema": {
                "enum": ["pause", "resume", "retry", "purge"]}}])},
        "/__emulator/destinations/{destination_id}/faults": {"post": _control(
            "Scripted faults for a destination", params=[_path("destination_id")],
            body={"type": "object", "additionalProperties": False, "properties": {
                "redeliver": _FAULT_COUNT, "outOfOrder": _FAULT_COUNT, "wrongToken": _FAULT_COUNT,
                "outageSeconds": {"type": "number", "minimum": 0, "maximum": MAX_OFFSET}}})},
        "/__emulator/push": {"post": _control(
            "Events from the synthetic EHR to subscribed webhooks (format fhir: FHIR notifications)",
            {"type": "object", "required": ["logs"]},
            body=_PUSH)},
        "/__emulator/ui": {"get": {
            "summary": "The logs page (HTML; its scripts and styles are served under /__emulator/ui/static/)",
            "tags": ["control plane"],
            "responses": {"200": {"description": "The page",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/__emulator/openapi.json": {"get": {
            "summary": "This document", "tags": ["control plane"],
            "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]}, "OpenAPI 3.1")}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Redox sandbox emulator", "version": __version__,
                 "description": "A local stand-in for api.redoxengine.com (Redox's surface) and its control plane "
                                "under /__emulator/ (open on loopback; elsewhere it needs the admin token)."},
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **events},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "adminToken": {"type": "apiKey", "in": "header", "name": "X-Emulator-Admin-Token"},
            },
        },
    }
