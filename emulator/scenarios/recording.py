"""Recorded HTTP exchanges -> a scenario document that answers the same requests the same way.

Plain Python, no HTTP: the recording proxy (`web/record_routes.py`) and the cassette importer
(`scenarios/cassettes.py`) both hand their exchanges to `convert()`.

- A request is identified by its method, path, `Meta.DataModel` / `Meta.EventType` and the
  identifiers and codes in its body (`identifying()`: IDs, codes, names and birth dates, FHIR
  `resourceType`/`id`/`identifier`), never by timestamps, log IDs or tokens.
- Requests that identify alike form one group. When every answer of a group is the same (volatile
  fields aside: `Meta.Logs`, `Meta.Message`, ...), the group is one rule; when the answers change
  (a 401 then a 200, 429 then 200), each run of equal answers is a rule with `nth: "P+"`, the later
  runs listed first, so the engine's per-rule counts are the request's position in the group.
- Groups with more matchers come first: a request whose identifiers include another's is answered
  by its own rule.
- Auth is answered by the emulator on replay (its own tokens), so it makes no rules; a 401 on a
  bearer route becomes `expire_token` (the emulator's own 401); an /upload that succeeded is the
  emulator's own upload (its own URI), one that failed answers the recorded failure.
- Secrets (client secrets, assertions, API keys, bearer, access and refresh tokens) are gathered
  from every exchange and scrubbed from everything written (`Secrets`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from emulator import catalog

REDACTED = "[REDACTED]"
AUTH_PATHS = frozenset({"/auth/authenticate", "/auth/refreshToken", "/v2/auth/token"})
REDOX_PATHS = AUTH_PATHS | {"/endpoint", "/query", "/upload"}
MAX_MATCHERS = 16  # identifying values a rule is matched on, at most (document order)
MAX_TEXT = 200  # longer strings are content, not identifiers
# Keys whose values identify what a request is about (Redox data models; FHIR resources).
IDENTIFYING = frozenset({"ID", "IDType", "Code", "Codeset", "VisitNumber", "AccountNumber", "DocumentID",
                         "FirstName", "LastName", "DOB", "ZIP", "NPI", "FacilityCode",
                         "resourceType", "id", "system", "code"})
VOLATILE_META = ("Logs", "Message", "Transmission", "EventDateTime")  # differ on every answer
# Keys whose values are secret wherever they appear (compared lower-case).
SECRET_KEYS = frozenset({"secret", "apikey", "api_key", "client_secret", "client_assertion", "assertion",
                         "accesstoken", "access_token", "refreshtoken", "refresh_token", "id_token",
                         "password", "token", "verification-token"})
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie",
                            "set-cookie", "verification-token", "x-emulator-admin-token"})
KEPT_HEADERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_SLUG = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One exchange as the client saw it. Header names lower-case."""

    method: str
    path: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    status: int
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""
    at: float = 0.0  # seconds from the start of the session

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.response_headers if k == name), None)


@dataclass(frozen=True, slots=True)
class RecordedPush:
    """A delivery the upstream made to the client's webhook, and the receiver's answer."""

    method: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int
    at: float = 0.0


@dataclass(slots=True)
class Conversion:
    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def yaml(self) -> str:
        import yaml

        head = "# yaml-language-server: $schema=../emulator/scenarios/schema.json\n"
        return head + yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True, width=100)


def json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        return None


# ---- secrets -------------------------------------------------------------------------------------

class Secrets:
    """Every secret seen in a session; `scrub()` takes each out of what is written."""

    def __init__(self) -> None:
        self.found: set[str] = set()

    def add(self, value: Any) -> None:
        if isinstance(value, str) and value.strip() and value != REDACTED:
            self.found.add(value.strip())

    def harvest(self, exchange: Recorded | RecordedPush) -> None:
        if isinstance(exchange, Recorded):
            headers, bodies = [*exchange.request_headers, *exchange.response_headers], \
                [exchange.request_body, exchange.response_body]
            if exchange.path in AUTH_PATHS:  # every value of an auth request but its public fields
                for key, value in _fields(exchange.request_body):
                    if key not in ("grant_type", "client_assertion_type", "scope", "client_id"):
                        self.add(value)
        else:
            headers, bodies = list(exchange.headers), [exchange.body]
        for name, value in headers:
            if name in SECRET_HEADERS:
                self._header(value)
        for raw in bodies:
            self._walk(json_or_none(raw))

    def _header(self, value: str) -> None:
        scheme, _, credential = value.partition(" ")
        self.add(value)
        if credential:
            self.add(credential)
            if scheme.lower() == "basic":
                try:
                    _, _, password = base64.b64decode(credential.strip(), validate=True).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    return
                self.add(password)

    def _walk(self, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if str(key).lower() in SECRET_KEYS:
                    self.add(item)
                self._walk(item)
        elif isinstance(value, list):
            for item in value:
                self._walk(item)

    def scrub(self, value: Any) -> Any:
        """`value` with secret keys' values and every secret (as a substring too) replaced."""
        ordered = sorted(self.found, key=len, reverse=True)
        return _scrub(value, ordered)


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in SECRET_KEYS and isinstance(v, str) else _scrub(v, secrets)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            if value == secret or (len(secret) >= 4 and secret in value):
                value = value.replace(secret, REDACTED)
        return value
    return value


def _fields(raw: bytes) -> list[tuple[str, str]]:
    data = json_or_none(raw)
    if isinstance(data, dict):
        return [(str(k), v) for k, v in data.items() if isinstance(v, str)]
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return []


# ---- what identifies a request -----------------------------------------------------------------------

def identifying(payload: Any) -> list[tuple[str, Any]]:
    """(JSON path, value) of the identifiers and codes in a body, in document order, at most MAX_MATCHERS.
    Meta contributes only its destinations (DataModel and EventType are matched on their own)."""
    found: list[tuple[str, Any]] = []

    def walk(value: Any, path: str, parent: str) -> None:
        if len(found) >= MAX_MATCHERS:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                key = str(key)
                if path == "$" and key == "Meta":
                    for i, dest in enumerate((item.get("Destinations") or []) if isinstance(item, dict) else []):
                        if isinstance(dest, dict) and _scalar(dest.get("ID")):
                            found.append((f"$.Meta.Destinations[{i}].ID", dest["ID"]))
                    continue
                walk(item, _step(path, key), key)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", parent)
        elif _scalar(value) and (parent in IDENTIFYING or (parent == "value" and "identifier" in path)):
            found.append((path, value))

    walk(payload, "$", "")
    return found[:MAX_MATCHERS]


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return 0 < len(value) <= MAX_TEXT and not _TIMESTAMP.match(value)
    return isinstance(value, bool | int | float)


def _step(path: str, key: str) -> str:
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}['{key}']"


def _normal(payload: Any) -> Any:
    """An answer without what differs on every answer (log and message IDs, timestamps, error IDs)."""
    if not isinstance(payload, dict):
        return payload
    meta = payload.get("Meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in VOLATILE_META}
        if isinstance(meta.get("Errors"), list):
            meta["Errors"] = [{k: v for k, v in e.items() if k != "ID"} if isinstance(e, dict) else e
                              for e in meta["Errors"]]
        return {**payload, "Meta": meta}
    return payload


# ---- exchanges -> rules -------------------------------------------------------------------------------

@dataclass(slots=True)
class _Group:
    when: dict[str, Any]
    name: str
    exchanges: list[Recorded] = field(default_factory=list)


def answered_by_emulator(path: str) -> bool:
    """Auth (the emulator's own tokens) and downloads of uploads (its own URIs); /upload's failures are rules."""
    return path in AUTH_PATHS or path.startswith("/upload/")


def convert(exchanges: Iterable[Recorded], pushes: Iterable[RecordedPush] = (), *, description: str,
            secrets: Secrets | None = None) -> Conversion:
    """A scenario document (as `redox-emulator check` reads it) for `exchanges` and `pushes`."""
    exchanges, pushes = list(exchanges), list(pushes)
    secrets = secrets or Secrets()
    for exchange in exchanges:
        secrets.harvest(exchange)
    for push in pushes:
        secrets.harvest(push)
    notes: list[str] = []
    groups: dict[str, _Group] = {}
    for exchange in exchanges:
        if answered_by_emulator(exchange.path):
            notes.append(f"{exchange.method} {exchange.path} ({exchange.status}): answered by the emulator "
                         "on replay (its own tokens and URIs), no rule")
            continue
        when = _when(exchange)
        key = orjson.dumps(when, option=orjson.OPT_SORT_KEYS).decode()
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(when, f"{_slug(when)}-{len(groups) + 1}")
        group.exchanges.append(exchange)
    ordered = sorted(groups.values(), key=lambda g: -len(g.when.get("json", {})))  # stable: first seen first
    rules = [rule for group in ordered for rule in _rules(group)]
    document: dict[str, Any] = {"description": description}
    setup, recorded_pushes = _pushes(pushes, notes)
    if setup:
        document["setup"] = setup
    document["rules"] = rules
    if recorded_pushes:
        document["pushes"] = recorded_pushes
    return Conversion(secrets.scrub(document), [secrets.scrub(n) for n in notes])


def _when(exchange: Recorded) -> dict[str, Any]:
    when: dict[str, Any] = {"method": exchange.method, "path": exchange.path}
    if exchange.path == "/upload":  # a multipart file: told apart by position alone
        return when
    payload = json_or_none(exchange.request_body)
    if payload is None and exchange.request_body.strip():
        when["malformed_json"] = True
        return when
    json: dict[str, Any] = {}
    meta = payload.get("Meta") if isinstance(payload, dict) else None
    if isinstance(meta, dict):
        model, event = meta.get("DataModel"), meta.get("EventType")
        if isinstance(model, str) and isinstance(event, str) and catalog.is_known(model, event):
            when["data_model"], when["event_type"] = catalog.canonical(model, event)
        else:  # not in Redox's list: matched as JSON, so that the file still checks
            for key in ("DataModel", "EventType"):
                if _scalar(meta.get(key)):
                    json[f"$.Meta.{key}"] = meta[key]
    for path, value in identifying(payload):
        json.setdefault(path, value)
    if json:
        when["json"] = json
    return when


def _slug(when: Mapping[str, Any]) -> str:
    text = f"{when['data_model']}-{when['event_type']}" if "data_model" in when else f"{when['method']}-{when['path']}"
    return _SLUG.sub("-", text).strip("-").lower() or "request"


def _rules(group: _Group) -> list[dict[str, Any]]:
    """One rule per run of equal answers; later runs first, each from its position on (`nth: "P+"`)."""
    runs: list[tuple[int, Recorded, int]] = []  # (first position, exchange, count)
    last: Any = object()
    for position, exchange in enumerate(group.exchanges, 1):
        signature = (exchange.status, _normal(json_or_none(exchange.response_body)) if
                     json_or_none(exchange.response_body) is not None else exchange.response_body)
        if signature == last:
            start, first, count = runs[-1]
            runs[-1] = (start, first, count + 1)
        else:
            runs.append((position, exchange, 1))
            last = signature
    total = len(group.exchanges)
    rules = []
    for start, exchange, count in reversed(runs):
        name = group.name if len(runs) == 1 else f"{group.name}.{start}"
        seen = "every time" if total == 1 or len(runs) == 1 else \
            f"request {start}" + (f" to {start + count - 1}" if count > 1 else "") + f" of {total}"
        when = dict(group.when)
        if start > 1:
            when["nth"] = f"{start}+"
        rules.append({"name": name, "description": f"recorded: {exchange.status} ({seen})", "when": when,
                      "then": _then(exchange)})
    return rules


def _then(exchange: Recorded) -> dict[str, Any]:
    if exchange.status == 401:  # the token was refused: on replay the emulator's own 401, for its own token
        return {"expire_token": True}
    respond: dict[str, Any] = {"status": exchange.status}
    if exchange.path == "/upload" and exchange.status < 400:  # the emulator's own upload and URI
        return {"respond": respond}
    body = json_or_none(exchange.response_body)
    text = exchange.response_body.decode("utf-8", "replace").strip()
    if body is not None:
        respond["body"] = body
    elif exchange.status >= 400:
        respond["error"] = {"text": text[:500] or f"HTTP {exchange.status} with no body", "type": "transmission",
                            "module": "Send"}
    else:
        respond["body"] = text
    headers = {name: value for name in KEPT_HEADERS if (value := exchange.header(name)) is not None}
    if headers:
        respond["headers"] = headers
    return {"respond": respond}


# ---- webhook traffic -> pushes -----------------------------------------------------------------------

WEBHOOK_DESTINATION = {"id": "5e3c1d2b-7a4f-4e8b-9c6d-2f1a0b9c8d7e", "name": "Recorded Webhook", "url": "{receiver}"}


def _pushes(pushes: Sequence[RecordedPush], notes: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Deliveries of data-model events become pushes at their recorded times; one the receiver had already
    acknowledged (same log ID) is a `redeliver` of the first; retries after a failure are the delivery's own."""
    out: list[dict[str, Any]] = []
    by_log: dict[str, tuple[dict[str, Any], float, bool]] = {}  # log ID -> (push, first time, acknowledged)
    for push in pushes:
        body = json_or_none(push.body)
        meta = body.get("Meta") if isinstance(body, dict) else None
        if push.method != "POST" or not isinstance(meta, dict):
            notes.append(f"webhook {push.method} ({push.status}): a verification handshake or not an event, "
                         "not a push")
            continue
        model, event = meta.get("DataModel"), meta.get("EventType")
        if not (isinstance(model, str) and isinstance(event, str) and catalog.is_known(model, event)):
            notes.append(f"webhook event {model}.{event}: not a Redox data model and event type, not a push")
            continue
        logs = meta.get("Logs")
        log_id = logs[0].get("ID") if isinstance(logs, list) and logs and isinstance(logs[0], dict) else None
        ok = 200 <= push.status < 300
        if isinstance(log_id, str) and log_id in by_log:
            first, at, acknowledged = by_log[log_id]
            if acknowledged:
                redeliver = first.setdefault("redeliver", {"times": 0, "after": round(max(push.at - at, 0), 3)})
                redeliver["times"] += 1
            by_log[log_id] = (first, at, acknowledged or ok)
            continue
        model, event = catalog.canonical(model, event)
        clean = {**body, "Meta": {k: v for k, v in meta.items() if k not in ("Logs", "Message", "Transmission")}}
        entry = {"name": f"push-{len(out) + 1}-{_SLUG.sub('-', f'{model}-{event}').lower()}",
                 "description": f"recorded: delivered {push.at:.3f} s into the session, answered {push.status}",
                 "destination": WEBHOOK_DESTINATION["name"], "when": {"at": round(push.at, 3)}, "body": clean}
        out.append(entry)
        if isinstance(log_id, str):
            by_log[log_id] = (entry, push.at, ok)
    if not out:
        return {}, []
    return {"destinations": [dict(WEBHOOK_DESTINATION)]}, out
