"""The OpenAPI 3.1 document of the whole emulator: Redox's surface and the control plane.

Written by hand (the routes are plain Starlette, with no schema of their own) and kept true by
tests/test_openapi.py, which runs schemathesis against the app: every answer must have a documented
status, content type and shape. A new route gets its entry here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from emulator import __version__, log_filters
from emulator.store import MAX_PAGE, LogStatus, LogType

JSON = "application/json"
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


_LOG_FILTER_PARAMS = [
    _query("logId", {"type": "string"}),
    _query("dataModel", {"type": "string"}, "e.g. PatientAdmin"),
    _query("eventType", {"type": "string"}, "e.g. NewPatient"),
    _query("status", {"type": "string", "enum": [s.value for s in LogStatus]}),
    _query("type", {"type": "string", "enum": [t.value for t in LogType]}),
    _query("sourceId", {"type": "string"}),
    _query("destinationId", {"type": "string"}),
    _query("mrn", {"type": "string"}, "a patient identifier: an MRN or any ID of an Identifiers list"),
    _query("q", {"type": "string"}, "a log ID, a patient identifier, or text in the request body or errors"),
    _query("createdAfter", {"type": "string"}, "ISO-8601 time or epoch seconds"),
    _query("createdBefore", {"type": "string"}, "ISO-8601 time or epoch seconds"),
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
                                         "Destinations": {}, "Logs": {}, "Errors": {"type": "array"}}}},
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
    "Destination": {"type": "object", "required": ["id", "name", "queue"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "url": {"type": ["string", "null"]},
        "queue": {"type": "object"}}},
}


@cache
def document() -> dict[str, Any]:
    redox_event_body = {"required": True, "content": {JSON: {"schema": _ref("RedoxEvent")}}}
    token_answer = _json({"type": "object", "required": ["accessToken"]}, "A token")
    paths: dict[str, Any] = {
        "/auth/authenticate": {"post": _redox(
            "Legacy token from apiKey and secret", token_answer, bearer=False,
            body={"required": True, "content": {JSON: {"schema": {
                "type": "object", "properties": {"apiKey": {"type": "string"}, "secret": {"type": "string"}}}}}})},
        "/auth/refreshToken": {"post": _redox(
            "Refresh a legacy token", token_answer, bearer=False,
            body={"required": True, "content": {JSON: {"schema": {
                "type": "object",
                "properties": {"apiKey": {"type": "string"}, "refreshToken": {"type": "string"}}}}}})},
        "/v2/auth/token": {"post": _redox(
            "OAuth 2.0 client credentials: client secret, HTTP Basic or a signed JWT assertion",
            _json({"type": "object", "required": ["access_token", "token_type", "expires_in"]}, "An access token"),
            bearer=False, body={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "properties": {
                    "grant_type": {"type": "string", "enum": ["client_credentials"]},
                    "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                    "client_assertion_type": {"type": "string"}, "client_assertion": {"type": "string"}}}}}})},
        "/endpoint": {"post": _redox("Send an event or a query (every data model)",
                                     _json(_ref("RedoxEvent"), "Meta with Logs; a query's answer"),
                                     body=redox_event_body)},
        "/query": {"post": _redox("Send a query (same as /endpoint)", _json(_ref("RedoxEvent"), "The answer"),
                                  body=redox_event_body)},
        "/upload": {"post": _redox(
            "Upload a file (multipart field `file`) to reference in Media.FileContents",
            _json({"type": "object", "required": ["URI"]}, "The file's URI"), ok_status="201",
            body={"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}})},
        "/upload/{upload_id}": {"get": {**_redox(
            "Download an uploaded file", {"description": "The file as uploaded", "content": {"*/*": {}}}),
            "parameters": [_path("upload_id")]}},
        "/__emulator/health": {"get": _health()},
        "/__emulator/reset": {"post": _control("Back to the start state")},
        "/__emulator/logs": {"get": _control(
            "Redox logs, newest first", {"type": "object", "required": ["logs"], "properties": {
                "logs": {"type": "array", "items": _ref("Log")}}},
            params=[*_LOG_FILTER_PARAMS,
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
                    _query("cursor", {"type": "integer", "minimum": 0}, "meta.nextCursor of the previous page"),
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
            "post": _control("Advance the clock or change its mode", body={"type": "object", "properties": {
                "advance": {"type": "number", "minimum": 0},
                "mode": {"enum": ["real", "accelerated", "manual"]}, "factor": {"type": "number"}}})},
        "/__emulator/scenarios": {
            "get": _control("The scenario library and the active scenarios"),
            "post": _control("Activate a scenario: {\"name\": ...} or a scenario body (YAML or JSON)",
                             body={"type": "object"}),
            "delete": _control("Deactivate one scenario (?name=) or all", params=[_query("name", {"type": "string"})])},
        "/__emulator/clients/{client_id}/jwks": {
            "get": _control("A client's public keys", params=[_path("client_id")]),
            "put": _control("Replace a client's public keys (a JWK Set)", params=[_path("client_id")],
                            body={"type": "object", "properties": {"keys": {"type": "array"}}})},
        "/__emulator/destinations": {
            "get": _control("Destinations with their queues", {"type": "object", "required": ["destinations"],
                                                               "properties": {"destinations": {
                                                                   "type": "array", "items": _ref("Destination")}}}),
            "post": _control("Register (or replace) a destination; a webhook is verified at once",
                             body={"type": "object", "required": ["id", "name"], "properties": {
                                 "id": {"type": "string"}, "name": {"type": "string"}, "url": {"type": "string"},
                                 "verification_token": {"type": "string"}, "subscriptions": {},
                                 "handshake": {"enum": ["post", "get"]}}})},
        "/__emulator/destinations/{destination_id}": {
            "get": _control("One destination", params=[_path("destination_id")]),
            "delete": _control("Remove a destination (its queued messages are purged)",
                               params=[_path("destination_id")])},
        "/__emulator/destinations/{destination_id}/verify": {"post": _control(
            "Redox's verification handshake again", params=[_path("destination_id")],
            body={"type": "object", "properties": {"form": {"enum": ["post", "get"]}}}, body_required=False)},
        "/__emulator/destinations/{destination_id}/queue": {"get": _control(
            "Pending messages, oldest first", params=[_path("destination_id")])},
        "/__emulator/destinations/{destination_id}/queue/{action}": {"post": _control(
            "pause, resume, retry or purge the queue",
            params=[_path("destination_id"), {**_path("action"), "schema": {
                "enum": ["pause", "resume", "retry", "purge"]}}])},
        "/__emulator/destinations/{destination_id}/faults": {"post": _control(
            "Scripted faults for a destination", params=[_path("destination_id")],
            body={"type": "object", "properties": {
                "redeliver": {"type": "integer", "minimum": 0}, "outOfOrder": {"type": "integer", "minimum": 0},
                "wrongToken": {"type": "integer", "minimum": 0}, "outageSeconds": {"type": "number", "minimum": 0}}})},
        "/__emulator/push": {"post": _control(
            "Events from the synthetic EHR to subscribed webhooks", {"type": "object", "required": ["logs"]},
            body={"type": "object", "required": ["DataModel", "EventType"], "properties": {
                "DataModel": {"type": "string"}, "EventType": {"type": "string"}, "payload": {"type": "object"},
                "patient": {"type": "string"}, "count": {"type": "integer", "minimum": 1, "maximum": 100_000},
                "set": {"type": "object"}, "destinations": {"type": "array", "items": {"type": "string"}}}})},
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
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "adminToken": {"type": "apiKey", "in": "header", "name": "X-Emulator-Admin-Token"},
            },
        },
    }
