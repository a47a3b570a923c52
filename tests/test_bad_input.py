"""Hostile input on every route, against the real server on a real socket (SPEC 5.1, 5.2, 5.5).

Arbitrary bytes, wrong methods, huge or deeply nested JSON, invalid UTF-8, odd or missing headers:
every answer is a clear 4xx in the shape of the surface it hit, never a 5xx or a traceback, and the
server keeps serving. Shapes:

- Redox routes: `{"Meta": {..., "Errors": [{"ID", "Text", "Type", "Module"}]}}`;
- legacy auth routes and bearer failures: 401 `text/html; charset=utf-8` `Invalid request`;
- /v2/auth/token: `{"error", "error_description", "error_uri"}`;
- the control plane /__emulator/*: `{"error": "..."}`.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from emulator import catalog
from emulator.server import Server
from emulator.settings import Settings
from emulator.web import control_routes, redox_routes
from tests.conftest import DEV_TOOLS, REDOX_EMR, event

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_FEW = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
LEGACY = ("/auth/authenticate", "/auth/refreshToken")
OAUTH = "/v2/auth/token"
LIMIT = 10 * 1024 * 1024
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")


# ---- the answers' shapes ---------------------------------------------------------------------

def assert_redox_error(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.headers, r.text[:500])
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("Meta"), dict), r.text[:500]
    errors = body["Meta"].get("Errors")
    assert isinstance(errors, list) and errors, r.text[:500]
    for error in errors:
        assert isinstance(error, dict) and set(error) >= {"ID", "Text", "Type", "Module"}, error
        assert isinstance(error["ID"], int) and not isinstance(error["ID"], bool), error
        assert isinstance(error["Text"], str) and error["Text"], error
        assert error["Type"] in ("message", "transmission"), error
        assert isinstance(error["Module"], str) and error["Module"], error
    return errors


def assert_invalid_request(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text[:500]
    assert r.headers["content-type"] == "text/html; charset=utf-8", r.headers
    assert r.text == "Invalid request"


def assert_oauth_error(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error", "error_description", "error_uri"}, body
    assert all(isinstance(v, str) and v for v in body.values()), body


def assert_control_error(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("application/json"), (r.headers, r.text[:500])
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], r.text[:500]


def assert_sane(r: httpx.Response) -> None:
    """Never a 5xx or a traceback; JSON parses; a 4xx has the shape of the surface it hit."""
    path, method = r.request.url.path, r.request.method
    where = f"{method} {r.request.url}"
    assert r.status_code < 500, f"{where} -> {r.status_code} {r.text[:500]}"
    assert r.status_code >= 200, f"{where} -> {r.status_code}"
    if method == "HEAD":
        return
    assert not TRACEBACK.search(r.text), f"{where}: traceback in the body: {r.text[:2000]}"
    if r.headers.get("content-type", "").startswith("application/json"):
        try:
            r.json()
        except ValueError as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"{where}: unparseable JSON answer {r.text[:500]!r}") from exc
    if r.status_code < 400:
        return
    if path.startswith(control_routes.PREFIX):
        assert_control_error(r)
    elif r.status_code == 401:
        if path == OAUTH and method == "POST":
            assert_oauth_error(r)
        else:
            assert_invalid_request(r)
    elif path == OAUTH and method == "POST" and r.status_code == 400:
        assert_oauth_error(r)
    else:
        assert r.status_code in (400, 404, 405, 413, 429), f"{where} -> {r.status_code} {r.text[:500]}"
        assert_redox_error(r)


# ---- routes ------------------------------------------------------------------------------------

ALL_ROUTES: list[Route] = [*redox_routes.routes, *control_routes.routes]
assert all(isinstance(route, Route) for route in ALL_ROUTES)
PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
PARAM_VALUES = st.one_of(
    st.sampled_from(["sandbox-client", "nobody", str(uuid.uuid4()), "%", "..", "a b", "\u00e9", "0" * 300]),
    st.text(min_size=1, max_size=30),
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    route = draw(st.sampled_from(ALL_ROUTES))
    return PARAM.sub(lambda _m: quote(draw(PARAM_VALUES), safe=""), route.path)


ANY_PATH = st.one_of(
    paths(),
    st.sampled_from(["/", "/endpoint/", "/ENDPOINT", "/nope", "/__emulator", "/__emulator/", "/__emulator/nope",
                     "/upload/", "/v2/auth", "/auth", "/%ff%fe", "/endpoint%00", "/__emulator/logs/%ff"]),
)

# ---- bodies ------------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=15,
)
PAIRS = [(model, event_type) for model, events in catalog.DATA_MODELS.items() for event_type in events]
ALL_EVENTS = sorted({event_type for _, event_type in PAIRS})
MODELS = st.one_of(st.sampled_from(list(catalog.DATA_MODELS)), st.sampled_from(["clinical summary", "", " "]),
                   JSON_VALUES)
EVENTS = st.one_of(st.sampled_from(ALL_EVENTS), JSON_VALUES)
DESTINATION_IDS = st.one_of(st.sampled_from([REDOX_EMR, DEV_TOOLS, REDOX_EMR.upper(), ""]), JSON_VALUES)
DESTINATION_ENTRIES = st.one_of(
    st.fixed_dictionaries({"ID": DESTINATION_IDS}, optional={"Name": JSON_VALUES}),
    st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3),
    st.text(max_size=40), st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(),
    st.lists(JSON_VALUES, max_size=3),
)
DESTINATIONS = st.one_of(st.lists(DESTINATION_ENTRIES, max_size=4), JSON_VALUES)
META_FIELDS = {
    "EventDateTime": st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), JSON_VALUES),
    "Test": JSON_VALUES,
    "Source": st.one_of(st.fixed_dictionaries({}, optional={"ID": JSON_VALUES, "Name": JSON_VALUES}), JSON_VALUES),
    "Destinations": DESTINATIONS,
    "FacilityCode": JSON_VALUES,
    "Logs": st.one_of(st.lists(st.fixed_dictionaries({}, optional={"ID": JSON_VALUES, "AttemptID": JSON_VALUES})),
                      JSON_VALUES),
    "Message": st.one_of(st.fixed_dictionaries({"ID": JSON_VALUES}), JSON_VALUES),
    "Transmission": st.one_of(st.fixed_dictionaries({"ID": JSON_VALUES}), JSON_VALUES),
    "Errors": JSON_VALUES,
}


@st.composite
def metas(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_VALUES)  # Meta that is not an object
    meta: dict[str, Any] = draw(st.fixed_dictionaries({}, optional=META_FIELDS))
    if draw(st.booleans()):
        meta["DataModel"], meta["EventType"] = draw(st.sampled_from(PAIRS))  # a real pair: past the checks
    else:
        for key, values in (("DataModel", MODELS), ("EventType", EVENTS)):
            if draw(st.integers(0, 4)):
                meta[key] = draw(values)
    if draw(st.booleans()):
        meta["Destinations"] = draw(st.one_of(st.just([{"ID": REDOX_EMR}]), DESTINATIONS))
    meta.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2)))
    return meta


TEXTS = st.one_of(st.sampled_from(["Timothy", "Bixby", "0000000001", "MR", "2008-01-06", "", " "]), JSON_VALUES)
IDENTIFIERS = st.one_of(
    st.lists(st.one_of(st.fixed_dictionaries({}, optional={"ID": TEXTS, "IDType": TEXTS}), JSON_VALUES),
             max_size=3),
    JSON_VALUES,
)
DEMOGRAPHICS = st.one_of(
    st.fixed_dictionaries({}, optional={
        "FirstName": TEXTS, "LastName": TEXTS, "Sex": TEXTS, "EmailAddresses": JSON_VALUES,
        "DOB": st.one_of(st.dates().map(str), st.text(max_size=30), TEXTS),
        "Address": st.one_of(st.fixed_dictionaries({}, optional={"ZIP": TEXTS, "StreetAddress": TEXTS}),
                             JSON_VALUES),
    }),
    JSON_VALUES,
)
PATIENTS = st.one_of(
    st.fixed_dictionaries({}, optional={"Identifiers": IDENTIFIERS, "Demographics": DEMOGRAPHICS,
                                        "Notes": JSON_VALUES}),
    JSON_VALUES,
)
PAYLOAD_FIELDS = {
    "Patient": PATIENTS, "Visit": JSON_VALUES, "Order": JSON_VALUES, "Orders": JSON_VALUES,
    "Note": JSON_VALUES, "Media": JSON_VALUES, "Results": JSON_VALUES, "AppointmentInfo": JSON_VALUES,
    "PotentialMatches": JSON_VALUES, "Location": JSON_VALUES, "StartDateTime": TEXTS, "EndDateTime": TEXTS,
}


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    """Redox-ish payloads: Meta with random fields, a Patient of random types, random siblings."""
    body: dict[str, Any] = draw(st.fixed_dictionaries({}, optional=PAYLOAD_FIELDS))
    if draw(st.integers(0, 9)):
        body["Meta"] = draw(metas())
    body.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2)))
    return body


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=512),
    st.text(max_size=200).map(str.encode),
    JSON_VALUES.map(_dumps),
    payloads().map(_dumps),
    st.sampled_from([b"null", b"[]", b"{}", b'"str"', b"42", b"1e999", b"{", b'{"Meta":', b"\xff\xfe{}",
                     b'{"a": "\xff"}', b'"\\ud800"', b"grant_type=client_credentials&client_id=%ff",
                     b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n", b"\x00" * 64]),
)

# ---- headers -----------------------------------------------------------------------------------

# What h11 lets a client send in a header value: visible ASCII and obs-text, inner spaces.
HEADER_TEXT = st.text(
    alphabet=st.characters(codec="latin-1", exclude_categories=["Cc"], exclude_characters="\x7f"),
    max_size=60,
).map(str.strip)
CONTENT_TYPES = st.one_of(
    st.sampled_from([
        "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/fhir+json",
        "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=xyz",
        "multipart/form-data; boundary=", "text/plain", "text/html", "application/octet-stream", "",
        ";", "application/json;;;;", "application/json; charset=latin-1", "*/*", "+json",
    ]),
    HEADER_TEXT,
)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


AUTHORIZATIONS = st.one_of(
    st.sampled_from(["", "Bearer", "Bearer ", "bearer x", "Bearer " + "x" * 2000, "Basic", "Basic !!!",
                     "Basic " + _b64(b"nocolon"), "Basic " + _b64(b"sandbox-client:sandbox-client-secret"),
                     "Basic " + _b64(b"\xff\xfe:\xff"), "Basic " + _b64(b"%zz:%"), "Digest x", "Negotiate"]),
    st.binary(max_size=40).map(lambda raw: "Basic " + _b64(raw)),
    st.builds(lambda scheme, rest: f"{scheme} {rest}".strip(), st.sampled_from(["Bearer", "Basic", "x"]),
              HEADER_TEXT),
    HEADER_TEXT,
).map(str.strip)  # h11 refuses to send leading or trailing whitespace in a value
EXTRA_HEADERS = st.dictionaries(
    st.sampled_from(["accept", "x-emulator-admin-token", "application-name", "verification-token",
                     "content-encoding", "expect", "x-forwarded-for", "cookie", "origin", "range"]),
    HEADER_TEXT, max_size=3,
)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, str | bytes]:
    found: dict[str, str | bytes] = {}
    content_type = draw(st.none() | CONTENT_TYPES)
    if content_type is not None:
        found["content-type"] = content_type.encode("latin-1")
    authorization = draw(st.none() | AUTHORIZATIONS)
    if authorization is not None:
        found["authorization"] = authorization.encode("latin-1")
    for key, value in draw(EXTRA_HEADERS).items():
        found[key] = value.encode("latin-1")
    return found


QUERY = st.dictionaries(
    st.one_of(st.sampled_from(["dataModel", "eventType", "status", "type", "createdAfter", "createdBefore",
                               "limit", "cursor", "challenge"]), st.text(max_size=8)),
    st.one_of(st.sampled_from(["-1", "0", "1", "501", "9" * 30, "1e999", "nan", "inf", "0001-01-01T00:00:00+14:00",
                               "9999-12-31T23:59:59-14:00", "2024-13-45", "SEND", "failed", "\u00e9"]),
              st.text(max_size=20)),
    max_size=3,
)


def send(client: httpx.Client, method: str, path: str, body: bytes, hdrs: dict[str, str | bytes],
         *, chunked: bool = False, params: dict[str, str] | None = None) -> httpx.Response:
    content: bytes | Iterator[bytes] = iter([body[:7], body[7:]]) if chunked else body
    return client.request(method, path, content=content, headers=hdrs, params=params)


# ---- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def still_serving(emulator: Server) -> Iterator[None]:
    """After every test here: the shared server still answers (on a new connection: after a 500 the
    server drops the keep-alive connection it answered on, which the test that caused it reports)."""
    yield
    with httpx.Client(base_url=emulator.url, timeout=10) as fresh:
        r = fresh.get("/__emulator/health")
        assert r.status_code == 200, r.text
        assert r.json()["payload"]["status"] == "ok"


@pytest.fixture
def store_readable(client: httpx.Client) -> Iterator[None]:
    """After the test: the control plane can still show every log and exchange the abuse left behind."""
    yield
    assert_store_readable(client)


def assert_store_readable(client: httpx.Client) -> None:
    for path in ("/__emulator/logs?limit=500", "/__emulator/exchanges"):
        r = client.get(path)
        assert r.status_code == 200, f"GET {path} -> {r.status_code} {r.text[:500]}"
    for log in client.get("/__emulator/logs?limit=5").json()["payload"]["logs"]:
        r = client.get(f"/__emulator/logs/{log['id']}")  # with each attempt's request and response bodies
        assert r.status_code == 200, f"GET log {log['id']} -> {r.status_code} {r.text[:500]}"


# ---- 1. property tests -------------------------------------------------------------------------

@pytest.mark.usefixtures("store_readable")
@FUZZ
@given(method=st.sampled_from([*METHODS, "HEAD", "OPTIONS"]), path=ANY_PATH, body=BODIES, hdrs=headers(),
       chunked=st.booleans(), params=st.none() | QUERY)
def test_fuzz_every_route_without_credentials(client: httpx.Client, method: str, path: str, body: bytes,
                                              hdrs: dict[str, str | bytes], chunked: bool,
                                              params: dict[str, str] | None) -> None:
    assert_sane(send(client, method, path, body, hdrs, chunked=chunked, params=params))


@pytest.mark.usefixtures("store_readable")
@FUZZ
@given(method=st.sampled_from(METHODS), body=BODIES, hdrs=headers(), chunked=st.booleans(), data=st.data())
def test_fuzz_every_route_and_method(client: httpx.Client, method: str, body: bytes,
                                     hdrs: dict[str, str | bytes], chunked: bool, data: st.DataObject) -> None:
    """Each declared route, each method: the route is drawn uniformly so none is starved."""
    path = data.draw(paths())
    assert_sane(send(client, method, path, body, hdrs, chunked=chunked))


@pytest.mark.usefixtures("store_readable")
@FUZZ
@given(path=st.sampled_from(["/endpoint", "/query"]), payload=payloads(), chunked=st.booleans(),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                     "application/fhir+json"]))
def test_fuzz_endpoint_past_auth(authed: httpx.Client, path: str, payload: Any, chunked: bool,
                                 content_type: str) -> None:
    """With a valid bearer token the routing code (Meta checks, Destinations, the EHR) gets the fuzz."""
    r = send(authed, "POST", path, _dumps(payload), {"content-type": content_type}, chunked=chunked)
    assert_sane(r)
    assert r.status_code in (200, 400), r.text[:500]
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("Meta"), dict), r.text[:500]
    if r.status_code == 400:
        assert_redox_error(r)


@pytest.mark.usefixtures("store_readable")
@FUZZ_FEW
@given(path=st.sampled_from(["/endpoint", "/query", "/upload", "/upload/" + str(uuid.uuid4())]),
       method=st.sampled_from(METHODS), body=BODIES, hdrs=headers(), chunked=st.booleans())
def test_fuzz_bodies_and_headers_past_auth(authed: httpx.Client, token: str, path: str, method: str, body: bytes,
                                           hdrs: dict[str, str | bytes], chunked: bool) -> None:
    """Arbitrary bytes and content types with a good token (the fuzzed Authorization replaced by it)."""
    hdrs = {**hdrs, "authorization": f"Bearer {token}"}
    assert_sane(send(authed, method, path, body, hdrs, chunked=chunked))


@pytest.mark.usefixtures("store_readable")
@FUZZ_FEW
@given(path=st.sampled_from(["/endpoint", "/query"]), pair=st.sampled_from(PAIRS), patient=PATIENTS,
       extra=st.dictionaries(st.sampled_from(sorted(set(PAYLOAD_FIELDS) - {"Patient"})), JSON_VALUES,
                             max_size=3))
def test_fuzz_every_data_model_with_random_fields(authed: httpx.Client, path: str, pair: tuple[str, str],
                                                  patient: Any, extra: dict[str, Any]) -> None:
    """Every real DataModel/EventType routed to the Redox EMR, with a Patient and siblings of random types."""
    payload = event(*pair, Patient=patient, **extra)
    r = authed.post(path, content=_dumps(payload), headers={"content-type": "application/json"})
    assert_sane(r)
    assert r.status_code in (200, 400), r.text[:500]
    if r.status_code == 400:
        assert_redox_error(r)
    else:
        meta = r.json()["Meta"]  # a query's answer may be retyped (Order.Query -> QueryResponse)
        assert meta["DataModel"] == pair[0] and catalog.is_known(pair[0], meta["EventType"]), meta


# ---- 2. targeted cases -------------------------------------------------------------------------

JSON_HEADERS = {"content-type": "application/json"}


def _texts(r: httpx.Response) -> str:
    return " ".join(e["Text"] for e in assert_redox_error(r))


@pytest.mark.parametrize("raw", [b'{"Meta": {"DataModel": "\xff\xfe"}}', b"\xff", b"\xc3\x28", b"\xed\xa0\x80",
                                 b'{"\x80": 1}'])
def test_invalid_utf8_json_body(authed: httpx.Client, raw: bytes) -> None:
    r = authed.post("/endpoint", content=raw, headers=JSON_HEADERS)
    assert r.status_code == 400, r.text
    assert "Malformed JSON" in _texts(r)


def test_invalid_utf8_on_auth_routes(client: httpx.Client) -> None:
    r = client.post("/auth/authenticate", content=b'{"apiKey": "\xff"}', headers=JSON_HEADERS)
    assert_invalid_request(r)
    r = client.post(OAUTH, content=b"grant_type=\xff\xfe",
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    assert_oauth_error(r)
    r = client.put("/__emulator/clients/sandbox-client/jwks", content=b'{"keys": "\xff"}', headers=JSON_HEADERS)
    assert r.status_code == 400
    assert_control_error(r)


def _eleven_megabytes() -> bytes:
    return b'{"Meta": {"DataModel": "PatientAdmin", "x": "' + b"a" * (11 * 1024 * 1024) + b'"}}'


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/endpoint", "/query", "/upload", "/auth/authenticate", OAUTH])
def test_body_over_the_payload_limit_is_413(authed: httpx.Client, path: str, chunked: bool) -> None:
    big = _eleven_megabytes()
    assert len(big) > LIMIT
    if chunked:
        content: bytes | Iterator[bytes] = (big[i:i + 65536] for i in range(0, len(big), 65536))
    else:
        content = big
    content_type = {"/upload": "multipart/form-data; boundary=xyz",
                    OAUTH: "application/x-www-form-urlencoded"}.get(path, "application/json")
    try:
        r = authed.post(path, content=content, headers={"content-type": content_type})
    except httpx.TransportError as exc:  # the server may close before reading it all; that is not a 413
        pytest.fail(f"{path}: the connection broke instead of a 413: {exc!r}")
    assert r.status_code == 413, r.text[:500]
    assert "Payload too large" in _texts(r)
    assert authed.get("/__emulator/health").status_code == 200


def test_declared_content_length_over_the_limit_is_413_before_the_body(emulator: Server) -> None:
    """A raw request announcing 11 MB: 413 without waiting for bytes that never come."""
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock:
        sock.sendall(b"POST /endpoint HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 11534336\r\n\r\n{")
        sock.settimeout(5)
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 401") or head.startswith(b"HTTP/1.1 413"), head[:200]


def test_deeply_nested_json_is_400(authed: httpx.Client) -> None:
    for raw in (b"[" * 100_000, b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        r = authed.post("/endpoint", content=raw, headers=JSON_HEADERS)
        assert r.status_code == 400, r.text[:500]
        assert "Malformed JSON" in _texts(r)


@pytest.mark.parametrize("depth", [190, 250, 300, 1000])
def test_nested_json_the_parser_accepts_but_cannot_echo(authed: httpx.Client, depth: int) -> None:
    """Nesting under orjson's parse limit (1024), around or over its dump limit (254), in an event.

    The emulator echoes the payload (200) or its Meta (400): either works, a 500 does not.
    """
    deep = b"[" * depth + b"1" + b"]" * depth
    marker = b'"__DEEP__"'
    for template in (event("PatientAdmin", "NewPatient", Patient={"Notes": "__DEEP__"}),
                     {"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Deep": "__DEEP__"}},
                     {"Meta": {"DataModel": "Nope", "EventType": "Nope", "Deep": "__DEEP__"}}):
        raw = _dumps(template).replace(marker, deep)
        r = authed.post("/endpoint", content=raw, headers=JSON_HEADERS)
        assert r.status_code in (200, 400, 413), f"depth {depth}: {r.status_code} {r.text[:300]}"
        assert_sane(r)


def test_nested_json_stored_then_listed(authed: httpx.Client) -> None:
    """A deep body the emulator refuses (Meta is not an object) is still journaled; listing it must work."""
    deep = b"[" * 300 + b"]" * 300
    r = authed.post("/endpoint", content=b'{"Meta": 1, "Deep": ' + deep + b"}", headers=JSON_HEADERS)
    assert r.status_code == 400, r.text[:300]
    assert_redox_error(r)
    assert_store_readable(authed)


@pytest.mark.parametrize("path", LEGACY)
def test_nested_json_on_legacy_auth_is_401(client: httpx.Client, path: str) -> None:
    deep = b"[" * 300 + b"]" * 300
    r = client.post(path, content=deep, headers=JSON_HEADERS)
    assert_invalid_request(r)
    r = client.post(path, content=b'{"apiKey": "sandbox-api-key", "x": ' + deep + b"}", headers=JSON_HEADERS)
    assert_invalid_request(r)


def test_nested_json_on_control_plane_is_400(client: httpx.Client) -> None:
    deep = b"[" * 300 + b"1" + b"]" * 300
    for method, path in (("POST", "/__emulator/clock"), ("PUT", "/__emulator/clients/sandbox-client/jwks")):
        r = client.request(method, path, content=deep, headers=JSON_HEADERS)
        assert r.status_code == 400, r.text[:300]
        assert_control_error(r)
        r = client.request(method, path, content=b'{"keys": [], "advance": ' + deep + b"}", headers=JSON_HEADERS)
        assert_sane(r)


@pytest.mark.parametrize("literal", [b"1" * 5000, b"-" + b"9" * 400, b"1e999", b"1" * 30, b"0." + b"0" * 10000 + b"1"])
def test_huge_number_literal(authed: httpx.Client, literal: bytes) -> None:
    r = authed.post("/endpoint", content=literal, headers=JSON_HEADERS)
    assert r.status_code == 400, r.text[:300]
    assert_redox_error(r)
    payload = b'{"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": ' + literal + \
        b', "Destinations": [{"ID": "' + REDOX_EMR.encode() + b'"}]}, "Patient": {"Identifiers": [{"ID": ' + \
        literal + b"}]}}"
    r = authed.post("/endpoint", content=payload, headers=JSON_HEADERS)
    assert r.status_code in (200, 400), r.text[:300]
    assert_sane(r)


@pytest.mark.parametrize("raw", [b"null", b"[]", b'"str"', b"42", b"true", b"[{}]", b"4.2"])
@pytest.mark.parametrize("path", ["/endpoint", "/query"])
def test_json_that_is_not_an_object_is_400(authed: httpx.Client, path: str, raw: bytes) -> None:
    r = authed.post(path, content=raw, headers=JSON_HEADERS)
    assert r.status_code == 400, r.text
    assert "JSON object" in _texts(r)


@pytest.mark.parametrize("raw", [b"", b"   ", b"\r\n\t"])
def test_empty_body_is_400(authed: httpx.Client, raw: bytes) -> None:
    r = authed.post("/endpoint", content=raw, headers=JSON_HEADERS)
    assert r.status_code == 400, r.text
    assert "empty" in _texts(r)
    r = authed.post("/endpoint", content=raw)  # no Content-Type either
    assert r.status_code == 400, r.text
    assert_redox_error(r)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", "text/json", "application/jsonx", None])
def test_wrong_content_type_on_endpoint_is_400(authed: httpx.Client, content_type: str | None) -> None:
    hdrs = {} if content_type is None else {"content-type": content_type}
    r = authed.post("/endpoint", content=_dumps(event("PatientAdmin", "NewPatient")), headers=hdrs)
    assert r.status_code == 400, r.text
    assert "Content-Type must be application/json" in _texts(r)


def test_form_body_on_endpoint_is_400(authed: httpx.Client) -> None:
    r = authed.post("/endpoint", data={"Meta": "x"})
    assert r.status_code == 400, r.text
    assert_redox_error(r)


def test_missing_headers(client: httpx.Client, token: str) -> None:
    r = client.post("/endpoint", json=event("PatientAdmin", "NewPatient"))  # no Authorization
    assert_invalid_request(r)
    r = client.post("/upload", files={"file": ("a.txt", b"x")})
    assert_invalid_request(r)
    r = client.get("/upload/" + str(uuid.uuid4()))
    assert_invalid_request(r)
    r = client.post(OAUTH)  # no Content-Type, no body
    assert r.status_code == 400
    assert_oauth_error(r)
    assert r.json()["error_description"] == "x-www-form-urlencoded content-type required"
    r = client.post(OAUTH, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.json()["error_description"] == "Missing grant_type parameter"
    r = client.post("/auth/authenticate")
    assert_invalid_request(r)
    r = client.post("/__emulator/clock")
    assert r.status_code == 400
    assert_control_error(r)


@pytest.mark.parametrize("path", ["/", "/nope", "/endpoint/extra", "/v1/endpoint", "/%ff", "/auth/authenticate/x"])
def test_unknown_paths_are_404_redox_shaped(client: httpx.Client, path: str) -> None:
    for method in METHODS:
        r = client.request(method, path, content=b"\xff")
        assert r.status_code == 404, r.text
        assert "No route" in _texts(r)


@pytest.mark.parametrize("path", ["/__emulator/nope", "/__emulator/logs/a/b", "/__emulator/"])
def test_unknown_control_paths_are_404_control_shaped(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404, r.text
    assert_control_error(r)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/endpoint", "/query", "/upload", *LEGACY, OAUTH])
def test_wrong_method_is_405(authed: httpx.Client, path: str, method: str) -> None:
    r = authed.request(method, path, content=b"{}", headers=JSON_HEADERS)
    assert r.status_code == 405, r.text
    assert "not allowed" in _texts(r)


@pytest.mark.parametrize(("method", "path"), [("POST", "/__emulator/health"), ("GET", "/__emulator/reset"),
                                              ("DELETE", "/__emulator/clock"),
                                              ("POST", "/__emulator/clients/sandbox-client/jwks")])
def test_wrong_method_on_control_plane_is_405(client: httpx.Client, method: str, path: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert_control_error(r)


def test_upload_accepts_a_file_field(authed: httpx.Client) -> None:
    """The baseline for the cases below: a well-formed upload is 201 (so their 4xx is for the input)."""
    r = authed.post("/upload", files={"file": ("scan.pdf", b"%PDF-1.4 hello", "application/pdf")})
    assert r.status_code == 201, r.text
    assert isinstance(r.json()["URI"], str)


@pytest.mark.parametrize("filename", ["r\u00e9sum\u00e9.pdf", "\u20ac\u4e2d.txt", 'quote".txt', "a;b=c.txt",
                                      "..\\..\\x"])
def test_upload_with_an_odd_filename_downloads(authed: httpx.Client, filename: str) -> None:
    """The filename is the client's text; the download's Content-Disposition must still be a valid header."""
    r = authed.post("/upload", files={"file": (filename, b"hello", "text/plain")})
    assert r.status_code == 201, r.text
    r = authed.get(r.json()["URI"])
    assert r.status_code == 200, f"{filename!r}: {r.status_code} {r.text[:300]}"
    assert r.content == b"hello"


@pytest.mark.parametrize(("content_type", "raw"), [
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="other"\r\n\r\nvalue\r\n--xyz--\r\n'),  # no file field
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nnot a file part\r\n--xyz--\r\n'),
    ("multipart/form-data; boundary=xyz", b"complete garbage \xff\xfe\x00"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\""),
    ("multipart/form-data", b"--xyz\r\n\r\n--xyz--\r\n"),  # no boundary
    ("multipart/form-data; boundary=", b"----\r\n"),
    ("multipart/form-data; boundary=xyz", b""),
    ("multipart/form-data; boundary=xyz",
     b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n1\r\n'
     b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="b"\r\n\r\n2\r\n--xyz--\r\n'),  # 2 files
    ("application/json", b'{"file": "x"}'),
    ("text/plain", b"x"),
])
def test_bad_multipart_upload_is_4xx(authed: httpx.Client, content_type: str, raw: bytes) -> None:
    r = authed.post("/upload", content=raw, headers={"content-type": content_type})
    assert r.status_code == 400, r.text
    assert_redox_error(r)


def test_control_plane_query_and_path_garbage(client: httpx.Client) -> None:
    for query in ("limit=abc", "limit=0", "limit=" + "9" * 5000, "cursor=-1", "cursor=x", "status=nope",
                  "type=%ff", "createdAfter=nope", "createdAfter=0001-01-01T00:00:00%2B14:00",
                  "createdBefore=9999-12-31T23:59:59-14:00", "createdAfter=nan", "createdAfter=1e999",
                  "bogus=1", "dataModel=%00"):
        r = client.get("/__emulator/logs?" + query)
        assert_sane(r)
        assert r.status_code in (200, 400), (query, r.text)
    for query in ("limit=abc", "limit=-5", "limit=" + "9" * 5000):
        r = client.get("/__emulator/exchanges?" + query)
        assert r.status_code == 400, (query, r.text)
        assert_control_error(r)
    for log_id in ("nope", "%ff", "%00", "x" * 5000):
        r = client.get("/__emulator/logs/" + log_id)
        assert r.status_code == 404, r.text
        assert_control_error(r)
    r = client.get("/__emulator/clients/nobody/jwks")
    assert r.status_code == 404
    assert_control_error(r)


@pytest.mark.parametrize("body", [
    {"keys": [{"kty": "RSA", "kid": "k", "n": "!!!", "e": "AQAB"}]},
    {"keys": [{"kty": "RSA", "kid": "k", "n": 1, "e": 2}]},
    {"keys": [{"kty": "RSA", "kid": "k"}]},
    {"keys": [{"kty": "EC", "kid": "k", "crv": "P-384", "x": "AA", "y": "AA"}]},
    {"keys": [{"kty": "EC", "kid": "k", "crv": "P-999", "x": "AA", "y": "AA"}]},
    {"keys": [{"kty": "EC", "kid": "k"}]},
    {"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB", "alg": "none"}]},
    {"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB", "use": 5, "key_ops": "x"}]},
    {"keys": [{"kty": "RSA", "kid": "k", "n": "A" * 10000, "e": "A" * 100}]},
    {"keys": [{"kty": "oct", "kid": "k", "k": "AA"}]},
    {"keys": [{"kty": "RSA", "kid": ["k"]}]},
    {"keys": [None, 1, "x"]},
    {"keys": {}},
    [],
])
def test_bad_jwks_is_400(client: httpx.Client, body: Any) -> None:
    r = client.put("/__emulator/clients/sandbox-client/jwks", json=body)
    assert r.status_code == 400, r.text
    assert_control_error(r)


@pytest.mark.parametrize("body", [{"advance": -1}, {"advance": "1"}, {"advance": True}, {"advance": None},
                                  {"advance": 1e10}, {}, [], {"advance": [1]}])
def test_bad_clock_advance_is_400(client: httpx.Client, body: Any) -> None:
    r = client.post("/__emulator/clock", json=body)
    assert r.status_code == 400, r.text
    assert_control_error(r)


def test_clock_cannot_be_advanced_out_of_range(client: httpx.Client) -> None:
    """Advancing by a large step, repeatedly: the clock must refuse at some point, never crash; with a
    409, since each step alone is valid and only the clock's state (a century gone) is in the way."""
    for _ in range(300):
        r = client.post("/__emulator/clock", json={"advance": 10**9})
        assert_sane(r)
        if r.status_code == 409:
            assert_control_error(r)
            break
    else:
        pytest.fail("the clock accepted 300 advances of 10**9 s")
    for path in ("/__emulator/health", "/__emulator/clock"):
        r = client.get(path)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
    r = client.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
    assert_sane(r)


def test_oauth_garbage(client: httpx.Client) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    for raw in (b"grant_type=client_credentials&client_assertion_type=x&client_assertion=y",
                b"grant_type=client_credentials&client_assertion_type="
                b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c",
                b"grant_type=client_credentials&client_assertion_type="
                b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion="
                + base64.urlsafe_b64encode(b'{"alg":"HS384"}').rstrip(b"=") + b"."
                + base64.urlsafe_b64encode(b"[1]").rstrip(b"=") + b".sig",
                b"grant_type=client_credentials&client_assertion_type="
                b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion="
                + base64.urlsafe_b64encode(b"[]").rstrip(b"=") + b"."
                + base64.urlsafe_b64encode(b"{}").rstrip(b"=") + b".sig",
                b"grant_type=client_credentials&client_assertion_type="
                b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion="
                + base64.urlsafe_b64encode(b'{"alg":"RS384","kid":[1]}').rstrip(b"=") + b"."
                + base64.urlsafe_b64encode(b'{"iss":"sandbox-client"}').rstrip(b"=") + b".sig",
                b"grant_type=client_credentials&client_assertion_type="
                b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion="
                + base64.urlsafe_b64encode(b'{"alg":"HS384"}').rstrip(b"=") + b"."
                + base64.urlsafe_b64encode(b'{"iss":["sandbox-client"]}').rstrip(b"=") + b".sig",
                b"grant_type=client_credentials&client_id=sandbox-client&client_secret=%ff%fe",
                b"grant_type=%ff", b"&&&===&&&", b"grant_type=client_credentials&" * 10000):
        r = client.post(OAUTH, content=raw, headers=form)
        assert_sane(r)
        assert r.status_code in (400, 401), (raw[:80], r.text)


@pytest.mark.parametrize("host", ["[", "a b", "x:99999", "[::1", "@", "%ff", "h\u00e9", "x" * 3000])
def test_odd_host_header(authed: httpx.Client, token: str, host: str) -> None:
    """The Host header feeds request.url (the OAuth `aud` check, upload URIs, 404 texts)."""
    hdrs = {"host": host.encode("latin-1")}
    form = {"grant_type": "client_credentials", "client_id": "sandbox-client",
            "client_secret": "sandbox-client-secret"}
    for r in (authed.post(OAUTH, data=form, headers=hdrs),
              authed.post("/upload", files={"file": ("a.txt", b"x")}, headers=hdrs),
              authed.post("/endpoint", json=event("PatientAdmin", "NewPatient"), headers=hdrs),
              authed.get("/nope", headers=hdrs), authed.get("/__emulator/health", headers=hdrs)):
        assert_sane(r)


# ---- rate limit --------------------------------------------------------------------------------

def test_rate_limit_429_then_passes_after_the_window() -> None:
    with Server(Settings(db=":memory:", port=0, rate_limit=5, rate_window=60)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as c:
        for _ in range(5):
            r = c.post("/endpoint", json=event("PatientAdmin", "NewPatient"))
            assert r.status_code == 401, r.text  # counted, then refused for want of a token
        for path in ("/endpoint", "/auth/authenticate", OAUTH, "/upload"):
            r = c.post(path, content=b"\xff garbage")
            assert r.status_code == 429, f"{path}: {r.status_code} {r.text[:300]}"
            assert r.headers["x-ratelimit-limit"] == "5"
            assert "Rate limit" in _texts(r)
        assert c.get("/__emulator/health").status_code == 200  # the control plane is not limited
        r = c.post("/__emulator/clock", json={"advance": 61})
        assert r.status_code == 200, r.text
        r = c.post("/auth/authenticate", json={"apiKey": "sandbox-api-key", "secret": "sandbox-secret"})
        assert r.status_code == 200, r.text
        r = c.post("/endpoint", json=event("PatientAdmin", "NewPatient"),
                   headers={"authorization": "Bearer " + r.json()["accessToken"]})
        assert r.status_code == 200, r.text


def test_rate_limit_is_not_bypassed_by_a_forwarded_for_header() -> None:
    with Server(Settings(db=":memory:", port=0, rate_limit=2, rate_window=60)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as c:
        statuses = [c.post("/endpoint", json={}, headers={"x-forwarded-for": f"10.0.0.{i}"}).status_code
                    for i in range(4)]
        assert statuses == [401, 401, 429, 429]
        journal = c.get("/__emulator/exchanges").json()["payload"]["exchanges"]
        assert {e["client"] for e in journal} == {"127.0.0.1"}


# ---- 3. still serving --------------------------------------------------------------------------

def test_server_still_serves_after_the_abuse(client: httpx.Client, token: str) -> None:
    """Run last in file order (and `still_serving` checks after every test, on every worker)."""
    assert client.get("/__emulator/health").status_code == 200
    r = client.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient={"Identifiers": []}),
                    headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/endpoint", "/__emulator/clock"])
def test_405_names_the_allowed_methods(emulator: Server, path: str) -> None:
    r = httpx.request("TRACE", emulator.url + path)
    assert r.status_code == 405
    assert "POST" in r.headers["allow"].split(", ")
