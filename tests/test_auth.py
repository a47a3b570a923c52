"""Every authentication flow of SPEC 5.1 and every way it can fail, over a real socket.

Legacy API key and refresh, OAuth 2.0 by client secret (form and HTTP Basic) and by signed-JWT client
assertion (RS384, ES384, HS384), the JWK Set control routes, bearer tokens on /endpoint on the emulator's
clock, and the promise that no secret reaches the journal, the logs or the SQLite store.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import re
import sqlite3
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.keys import new_key_pair
from emulator.server import Server
from emulator.settings import Settings, Source
from emulator.web.responses import REDOX_HEADERS
from tests.conftest import event

API_KEY, SECRET = "sandbox-api-key", "sandbox-secret"
CLIENT_ID, CLIENT_SECRET = "sandbox-client", "sandbox-client-secret"
LEGACY = {"apiKey": API_KEY, "secret": SECRET}
TOKEN_PATH = "/v2/auth/token"
JWKS_PATH = f"/__emulator/clients/{CLIENT_ID}/jwks"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
NO_KEY = "Public key not found, check client_id, kid and Redox dashboard settings"
BAD_SIGNATURE = "Invalid client assertion: signature verification failed"
BAD_IAT = "Invalid client assertion: iat must be within the last 5 minutes"
BAD_CREDENTIALS = "Invalid client credentials, check client_id and client_secret"
ISO_MS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
DROP = object()  # a claim or header to leave out


# ---- helpers ----------------------------------------------------------------------------------

def assert_invalid_request(r: httpx.Response) -> None:
    """Redox's terse legacy / bearer failure: 401, text/html, `Invalid request`, its usual headers."""
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.content == b"Invalid request"
    assert {k: r.headers.get(k) for k in REDOX_HEADERS} == REDOX_HEADERS


def assert_oauth_error(r: httpx.Response, status: int, description: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    body = r.json()
    assert set(body) == {"error", "error_description", "error_uri"}
    assert body["error"] == "invalid_request"
    assert body["error_description"] == description
    assert body["error_uri"].startswith("https://docs.redoxengine.com/")


def assert_oauth_token(r: httpx.Response, lifetime: int = 300) -> str:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert {k: r.headers.get(k) for k in REDOX_HEADERS} == REDOX_HEADERS
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh token
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == lifetime
    assert isinstance(body["access_token"], str) and len(body["access_token"]) >= 32
    return str(body["access_token"])


def send(client: httpx.Client, token: str | None, *, authorization: str | None = None) -> httpx.Response:
    """POST a valid event to /endpoint with the token (or a raw Authorization value)."""
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/endpoint", json=event("PatientAdmin", "NewPatient", Patient={"Identifiers": []}),
                       headers=headers)


def assert_works(client: httpx.Client, token: str) -> None:
    r = send(client, token)
    assert r.status_code == 200, r.text


def emulator_now(client: httpx.Client) -> float:
    return float(client.get("/__emulator/clock").json()["payload"]["epoch"])


def advance(client: httpx.Client, seconds: float) -> None:
    r = client.post("/__emulator/clock", json={"advance": seconds})
    assert r.status_code == 200, r.text


def parse_iso(value: str) -> float:
    assert ISO_MS_Z.fullmatch(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def token_url(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/") + TOKEN_PATH


def legacy_login(client: httpx.Client) -> dict[str, str]:
    r = client.post("/auth/authenticate", json=LEGACY)
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


def oauth_by_secret(client: httpx.Client) -> str:
    return assert_oauth_token(client.post(TOKEN_PATH, data={
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))


@functools.cache
def key_pair(alg: str, which: int = 0) -> tuple[bytes, dict[str, Any]]:
    """A private PEM and its public JWK; cached, `which` tells distinct keys apart."""
    return new_key_pair(alg)


def register(client: httpx.Client, *jwks: dict[str, Any]) -> httpx.Response:
    r = client.put(JWKS_PATH, json={"keys": list(jwks)})
    assert r.status_code == 200, r.text
    return r


def claims(client: httpx.Client, **changes: Any) -> dict[str, Any]:
    """A valid claim set on the emulator's clock; `name=DROP` leaves a claim out."""
    now = int(emulator_now(client))
    base: dict[str, Any] = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_url(client), "iat": now,
                            "exp": now + 300, "jti": str(uuid.uuid4())}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def sign(payload: dict[str, Any], key: bytes | str, alg: str, kid: str | None = None) -> str:
    headers = {"kid": kid} if kid is not None else None
    with warnings.catch_warnings():  # the sandbox's client secret is shorter than RFC 7518 recommends
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(payload, key, algorithm=alg, headers=headers)


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part(header)}.{part(payload)}."


def post_assertion(client: httpx.Client, assertion: str, headers: dict[str, str] | None = None,
                   **fields: str) -> httpx.Response:
    return client.post(TOKEN_PATH, headers=headers, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
        **fields})


def rs384(client: httpx.Client, **changes: Any) -> str:
    """An RS384 assertion signed with the (registered) first RSA key."""
    pem, jwk = key_pair("RS384")
    return sign(claims(client, **changes), pem, "RS384", jwk["kid"])


@pytest.fixture
def rsa_registered(client: httpx.Client) -> dict[str, Any]:
    jwk = key_pair("RS384")[1]
    register(client, jwk)
    return jwk


# ---- legacy: POST /auth/authenticate ----------------------------------------------------------

def test_legacy_authenticate_answers_tokens_and_a_24h_expiry_on_the_emulator_clock(client: httpx.Client) -> None:
    advance(client, 7 * 86400)  # the expiry follows the emulator's clock, not the wall clock
    before = emulator_now(client)
    r = client.post("/auth/authenticate", json=LEGACY)
    after = emulator_now(client)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert {k: r.headers.get(k) for k in REDOX_HEADERS} == REDOX_HEADERS
    body = r.json()
    assert list(body) == ["accessToken", "expires", "refreshToken"]
    assert all(isinstance(v, str) and v for v in body.values())
    assert body["accessToken"] != body["refreshToken"]
    expires = parse_iso(body["expires"])
    assert before + 86400 - 0.002 <= expires <= after + 86400
    assert_works(client, body["accessToken"])


def test_legacy_authenticate_issues_fresh_tokens_each_time(client: httpx.Client) -> None:
    first, second = legacy_login(client), legacy_login(client)
    assert first["accessToken"] != second["accessToken"]
    assert first["refreshToken"] != second["refreshToken"]
    assert_works(client, first["accessToken"])
    assert_works(client, second["accessToken"])


def test_legacy_authenticate_ignores_extra_fields(client: httpx.Client) -> None:
    r = client.post("/auth/authenticate", json={**LEGACY, "extra": 1, "nested": {"secret": "x"}, "grant_type": None})
    assert r.status_code == 200, r.text
    assert_works(client, r.json()["accessToken"])


@pytest.mark.parametrize("body", [
    {"apiKey": API_KEY, "secret": "wrong-secret"},
    {"apiKey": API_KEY, "secret": SECRET.upper()},
    {"apiKey": API_KEY, "secret": ""},
    {"apiKey": API_KEY, "secret": CLIENT_SECRET},  # the OAuth client's secret is not the API secret
    {"apiKey": "unknown-api-key", "secret": SECRET},
    {"apiKey": CLIENT_ID, "secret": CLIENT_SECRET},  # OAuth credentials on the legacy route
    {"apiKey": API_KEY},
    {"secret": SECRET},
    {"apiKey": API_KEY, "secret": None},
    {"apiKey": API_KEY, "secret": 12345},
    {"apiKey": [API_KEY], "secret": SECRET},
    {"apiKey": {"value": API_KEY}, "secret": SECRET},
    {"ApiKey": API_KEY, "Secret": SECRET},  # field names are case-sensitive
    {},
], ids=lambda b: json.dumps(b))
def test_legacy_authenticate_rejects_bad_credentials(client: httpx.Client, body: dict[str, Any]) -> None:
    assert_invalid_request(client.post("/auth/authenticate", json=body))


@pytest.mark.parametrize(("content", "content_type"), [
    (b"not json", "application/json"),
    (b"", "application/json"),
    (b"   ", "application/json"),
    (b'{"apiKey": "sandbox-api-key", "secret": "sandbox-secret"', "application/json"),  # truncated
    (b"[]", "application/json"),
    (b'["sandbox-api-key", "sandbox-secret"]', "application/json"),
    (b'"sandbox-secret"', "application/json"),
    (b"null", "application/json"),
    (b"42", "application/json"),
    (b"\xff\xfe{}", "application/json"),
    (b"apiKey=sandbox-api-key&secret=sandbox-secret", "application/x-www-form-urlencoded"),
])
def test_legacy_authenticate_rejects_bodies_that_are_not_a_json_object(
        client: httpx.Client, content: bytes, content_type: str) -> None:
    assert_invalid_request(client.post("/auth/authenticate", content=content,
                                       headers={"content-type": content_type}))


def test_legacy_authenticate_only_answers_post(client: httpx.Client) -> None:
    assert client.get("/auth/authenticate").status_code == 405


# ---- legacy: POST /auth/refreshToken ----------------------------------------------------------

def test_refresh_token_gives_new_tokens_that_work(client: httpx.Client) -> None:
    login = legacy_login(client)
    before = emulator_now(client)
    r = client.post("/auth/refreshToken", json={"apiKey": API_KEY, "refreshToken": login["refreshToken"]})
    assert r.status_code == 200, r.text
    assert {k: r.headers.get(k) for k in REDOX_HEADERS} == REDOX_HEADERS
    body = r.json()
    assert list(body) == ["accessToken", "expires", "refreshToken"]
    assert body["accessToken"] != login["accessToken"]
    assert body["refreshToken"] != login["refreshToken"]
    assert parse_iso(body["expires"]) >= before + 86400 - 0.002
    assert_works(client, body["accessToken"])
    # the new refresh token refreshes in its turn
    again = client.post("/auth/refreshToken", json={"apiKey": API_KEY, "refreshToken": body["refreshToken"],
                                                    "extra": True})
    assert again.status_code == 200, again.text
    assert_works(client, again.json()["accessToken"])


def test_refresh_token_is_single_use(client: httpx.Client) -> None:
    refresh = legacy_login(client)["refreshToken"]
    assert client.post("/auth/refreshToken", json={"apiKey": API_KEY, "refreshToken": refresh}).status_code == 200
    assert_invalid_request(client.post("/auth/refreshToken", json={"apiKey": API_KEY, "refreshToken": refresh}))


@pytest.mark.parametrize("make_body", [
    pytest.param(lambda login: {"apiKey": "another-api-key", "refreshToken": login["refreshToken"]}, id="wrong-apiKey"),
    pytest.param(lambda login: {"apiKey": API_KEY, "refreshToken": login["accessToken"]}, id="access-token"),
    pytest.param(lambda login: {"apiKey": API_KEY, "refreshToken": str(uuid.uuid4())}, id="unknown-token"),
    pytest.param(lambda login: {"apiKey": API_KEY, "refreshToken": ""}, id="empty-token"),
    pytest.param(lambda login: {"apiKey": API_KEY}, id="no-token"),
    pytest.param(lambda login: {"refreshToken": login["refreshToken"]}, id="no-apiKey"),
    pytest.param(lambda login: {"apiKey": API_KEY, "refreshToken": [login["refreshToken"]]}, id="token-not-string"),
    pytest.param(lambda login: [API_KEY, login["refreshToken"]], id="not-an-object"),
])
def test_refresh_token_rejections(client: httpx.Client, make_body: Callable[[dict[str, str]], Any]) -> None:
    assert_invalid_request(client.post("/auth/refreshToken", json=make_body(legacy_login(client))))


def test_refresh_token_rejects_non_json(client: httpx.Client) -> None:
    assert_invalid_request(client.post("/auth/refreshToken", content=b"refreshToken=x",
                                       headers={"content-type": "application/json"}))


def test_oauth_token_cannot_be_used_as_a_refresh_token(client: httpx.Client) -> None:
    token = oauth_by_secret(client)
    assert_invalid_request(client.post("/auth/refreshToken", json={"apiKey": API_KEY, "refreshToken": token}))


# ---- OAuth 2.0 by client secret ----------------------------------------------------------------

def test_client_secret_as_form_fields(client: httpx.Client) -> None:
    assert_works(client, oauth_by_secret(client))


def test_client_secret_as_http_basic(client: httpx.Client) -> None:
    r = client.post(TOKEN_PATH, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert_works(client, assert_oauth_token(r))


def test_content_type_parameters_are_allowed(client: httpx.Client) -> None:
    r = client.post(TOKEN_PATH, content=f"grant_type=client_credentials&client_id={CLIENT_ID}"
                                        f"&client_secret={CLIENT_SECRET}".encode(),
                    headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"})
    assert_oauth_token(r)


def test_each_token_request_gets_a_distinct_token(client: httpx.Client) -> None:
    assert oauth_by_secret(client) != oauth_by_secret(client)


@pytest.mark.parametrize(("data", "auth"), [
    ({"client_id": CLIENT_ID, "client_secret": "wrong-secret"}, None),
    ({"client_id": CLIENT_ID, "client_secret": SECRET}, None),  # the legacy API secret
    ({"client_id": CLIENT_ID, "client_secret": ""}, None),
    ({"client_id": "unknown-client", "client_secret": CLIENT_SECRET}, None),
    ({"client_id": API_KEY, "client_secret": SECRET}, None),  # legacy credentials on the OAuth route
    ({"client_secret": CLIENT_SECRET}, None),
    ({}, (CLIENT_ID, "wrong-secret")),
    ({}, ("unknown-client", CLIENT_SECRET)),
], ids=["wrong-secret", "legacy-secret", "empty-secret", "unknown-client", "legacy-credentials",
        "no-client-id", "basic-wrong-secret", "basic-unknown-client"])
def test_bad_client_credentials_are_401(client: httpx.Client, data: dict[str, str],
                                        auth: tuple[str, str] | None) -> None:
    r = client.post(TOKEN_PATH, data={"grant_type": "client_credentials", **data},
                    auth=httpx.BasicAuth(*auth) if auth else httpx.USE_CLIENT_DEFAULT)
    assert_oauth_error(r, 401, BAD_CREDENTIALS)


@pytest.mark.parametrize("authorization", ["Basic not-base64!", "Basic " + base64.b64encode(b"no-colon").decode(),
                                           "Basic " + base64.b64encode(b"\xff\xfe:x").decode()])
def test_malformed_http_basic_is_400(client: httpx.Client, authorization: str) -> None:
    r = client.post(TOKEN_PATH, data={"grant_type": "client_credentials"}, headers={"Authorization": authorization})
    assert_oauth_error(r, 400, "Malformed HTTP Basic credentials")


# ---- OAuth 2.0: malformed requests, each with Redox's description ------------------------------

FORM = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


@pytest.mark.parametrize(("kwargs", "description"), [
    ({"json": FORM}, "x-www-form-urlencoded content-type required"),
    ({"content": b"grant_type=client_credentials"}, "x-www-form-urlencoded content-type required"),
    ({"content": b"grant_type=client_credentials", "headers": {"content-type": "text/plain"}},
     "x-www-form-urlencoded content-type required"),
    ({"data": FORM, "files": {"f": b"x"}}, "x-www-form-urlencoded content-type required"),
    ({"content": b"", "headers": {"content-type": "application/x-www-form-urlencoded"}},
     "Missing grant_type parameter"),
    ({"data": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}}, "Missing grant_type parameter"),
    ({"data": {**FORM, "grant_type": "password"}}, "The grant_type parameter should equal 'client_credentials'"),
    ({"data": {**FORM, "grant_type": "CLIENT_CREDENTIALS"}},
     "The grant_type parameter should equal 'client_credentials'"),
    ({"data": {**FORM, "grant_type": ""}}, "The grant_type parameter should equal 'client_credentials'"),
    ({"data": {"grant_type": "client_credentials"}}, "Missing client assertion type"),
    ({"data": {"grant_type": "client_credentials", "client_id": CLIENT_ID}}, "Missing client assertion type"),
    ({"data": {"grant_type": "client_credentials", "client_assertion": "x.y.z"}}, "Missing client assertion type"),
    ({"data": {"grant_type": "client_credentials", "client_assertion_type": "jwt-bearer", "client_assertion": "x"}},
     "Invalid client assertion type"),
    ({"data": {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}},
     "Missing client assertion"),
    ({"data": {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": ""}},
     "Missing client assertion"),
], ids=["json-body", "no-content-type", "text-plain", "multipart", "no-fields", "no-grant-type", "password-grant",
        "grant-type-case", "empty-grant-type", "grant-type-only", "client-id-only", "no-assertion-type",
        "wrong-assertion-type", "no-assertion", "empty-assertion"])
def test_malformed_token_requests_are_400_with_redox_descriptions(
        client: httpx.Client, kwargs: dict[str, Any], description: str) -> None:
    assert_oauth_error(client.post(TOKEN_PATH, **kwargs), 400, description)


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "...", "eyJhbGciOiJSUzM4NCJ9", "eyJhbGciOiJSUzM4NCJ9.e30",
                                     "eyJhbGciOiJSUzM4NCJ9.W10.c2ln", "\u00e9t\u00e9.x.y"])
def test_garbage_assertion_is_a_failed_authentication(client: httpx.Client, rsa_registered: dict[str, Any],
                                                      garbage: str) -> None:
    assert_oauth_error(post_assertion(client, garbage), 401, "Malformed client assertion: not a JWT")


# ---- signed-JWT client assertions: success ------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_valid_asymmetric_assertion_gets_a_token(client: httpx.Client, alg: str) -> None:
    pem, jwk = key_pair(alg)
    register(client, jwk)
    r = post_assertion(client, sign(claims(client), pem, alg, jwk["kid"]))
    assert_works(client, assert_oauth_token(r))


@pytest.mark.parametrize("kid", [None, "any-kid"])
def test_valid_hs384_assertion_keyed_with_the_client_secret(client: httpx.Client, kid: str | None) -> None:
    r = post_assertion(client, sign(claims(client), CLIENT_SECRET, "HS384", kid))
    assert_works(client, assert_oauth_token(r))


def test_a_jwk_set_with_several_keys_accepts_each(client: httpx.Client) -> None:
    (rsa_pem, rsa_jwk), (ec_pem, ec_jwk) = key_pair("RS384"), key_pair("ES384")
    r = register(client, rsa_jwk, ec_jwk)
    assert r.json()["payload"] == {"client_id": CLIENT_ID, "kids": [rsa_jwk["kid"], ec_jwk["kid"]]}
    assert_oauth_token(post_assertion(client, sign(claims(client), rsa_pem, "RS384", rsa_jwk["kid"])))
    assert_oauth_token(post_assertion(client, sign(claims(client), ec_pem, "ES384", ec_jwk["kid"])))


def test_aud_may_be_a_list_holding_the_token_url(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    assert_oauth_token(post_assertion(client, rs384(client, aud=["https://elsewhere.example", token_url(client)])))


def test_aud_is_the_token_url_as_the_client_called_it(client: httpx.Client, emulator: Server,
                                                       rsa_registered: dict[str, Any]) -> None:
    host = f"localhost:{emulator.port}"
    assert_oauth_token(post_assertion(client, rs384(client, aud=f"http://{host}{TOKEN_PATH}"), headers={"Host": host}))
    # the same client calling by IP must name the IP
    r = post_assertion(client, rs384(client, aud=f"http://{host}{TOKEN_PATH}"))
    assert_oauth_error(r, 401, aud_message(client))


def test_client_id_field_matching_iss_is_accepted(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    assert_oauth_token(post_assertion(client, rs384(client), client_id=CLIENT_ID))


def test_iat_within_the_window_and_skew_is_accepted(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    now = int(emulator_now(client))
    assert_oauth_token(post_assertion(client, rs384(client, iat=now - 300, exp=now + 60)))
    assert_oauth_token(post_assertion(client, rs384(client, iat=now + 5)))  # a client clock slightly ahead


# ---- signed-JWT client assertions: every rejection ----------------------------------------------

def test_wrong_key_with_the_registered_kid(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    other_pem, _ = key_pair("RS384", 1)
    r = post_assertion(client, sign(claims(client), other_pem, "RS384", rsa_registered["kid"]))
    assert_oauth_error(r, 401, BAD_SIGNATURE)


def test_es384_signature_against_a_registered_rsa_kid(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    ec_pem, _ = key_pair("ES384")
    r = post_assertion(client, sign(claims(client), ec_pem, "ES384", rsa_registered["kid"]))
    assert_oauth_error(r, 401, f"Invalid client assertion: the key {rsa_registered['kid']!r} is an RSA key, "
                               "which cannot verify ES384")


def test_rs384_signature_against_a_registered_ec_kid(client: httpx.Client) -> None:
    ec_jwk = key_pair("ES384")[1]
    register(client, ec_jwk)
    r = post_assertion(client, sign(claims(client), key_pair("RS384")[0], "RS384", ec_jwk["kid"]))
    assert_oauth_error(r, 401, f"Invalid client assertion: the key {ec_jwk['kid']!r} is an EC key, "
                               "which cannot verify RS384")


def test_hs384_with_the_wrong_secret(client: httpx.Client) -> None:
    r = post_assertion(client, sign(claims(client), "not-the-client-secret", "HS384"))
    assert_oauth_error(r, 401, BAD_SIGNATURE)


def test_tampered_claims_fail_the_signature(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    header, _, signature = rs384(client).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(client)).encode()).rstrip(b"=").decode()
    assert_oauth_error(post_assertion(client, f"{header}.{forged}.{signature}"), 401, BAD_SIGNATURE)


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_missing_kid_is_400(client: httpx.Client, alg: str) -> None:
    pem, jwk = key_pair(alg)
    register(client, jwk)
    r = post_assertion(client, sign(claims(client), pem, alg))
    assert_oauth_error(r, 400, "JWT header kid property is required")


def test_unknown_kid(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    pem, _ = key_pair("RS384")
    assert_oauth_error(post_assertion(client, sign(claims(client), pem, "RS384", "no-such-kid")), 401, NO_KEY)


def test_no_key_registered_for_the_client(client: httpx.Client) -> None:
    assert_oauth_error(post_assertion(client, rs384(client)), 401, NO_KEY)


@pytest.mark.parametrize("iss", ["another-client", "", API_KEY])
def test_unknown_issuer(client: httpx.Client, rsa_registered: dict[str, Any], iss: str) -> None:
    assert_oauth_error(post_assertion(client, rs384(client, iss=iss, sub=iss)), 401, NO_KEY)


def test_unknown_issuer_with_hs384(client: httpx.Client) -> None:
    r = post_assertion(client, sign(claims(client, iss="another-client", sub="another-client"), CLIENT_SECRET, "HS384"))
    assert_oauth_error(r, 401, NO_KEY)


def test_replaced_jwk_set_forgets_the_old_kid(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    register(client, key_pair("ES384")[1])
    assert_oauth_error(post_assertion(client, rs384(client)), 401, NO_KEY)


def test_reset_forgets_keys_registered_at_run_time(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    assert client.post("/__emulator/reset").status_code == 200
    assert client.get(JWKS_PATH).json()["payload"]["jwks"] == {"keys": []}
    assert_oauth_error(post_assertion(client, rs384(client)), 401, NO_KEY)


def aud_message(client: httpx.Client) -> str:
    return f"Invalid client assertion: aud must be {token_url(client)}"


@pytest.mark.parametrize("aud", [
    "https://api.redoxengine.com/v2/auth/token",  # the real Redox, another host
    "http://127.0.0.2:8787/v2/auth/token",
    "{base}/v2/auth/token/",
    "{base}/auth/authenticate",
    "{base}",
    "",
    ["https://api.redoxengine.com/v2/auth/token"],
    DROP,
], ids=["redox-host", "other-host", "trailing-slash", "other-path", "base-url", "empty", "list-without-it", "missing"])
def test_wrong_aud(client: httpx.Client, rsa_registered: dict[str, Any], aud: Any) -> None:
    if isinstance(aud, str):
        aud = aud.format(base=str(client.base_url).rstrip("/"))
    assert_oauth_error(post_assertion(client, rs384(client, aud=aud)), 401, aud_message(client))


def test_old_iat(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    now = int(emulator_now(client))
    assert_oauth_error(post_assertion(client, rs384(client, iat=now - 300 - 10 - 5, exp=now + 300)), 401, BAD_IAT)


def test_iat_goes_stale_as_the_emulator_clock_advances(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    now = int(emulator_now(client))
    assertion = rs384(client, iat=now, exp=now + 3600)
    advance(client, 300 + 10 + 5)
    assert_oauth_error(post_assertion(client, assertion), 401, BAD_IAT)


@pytest.mark.parametrize("ahead", [60, 3600, 10**9])
def test_iat_in_the_future(client: httpx.Client, rsa_registered: dict[str, Any], ahead: int) -> None:
    now = int(emulator_now(client))
    assert_oauth_error(post_assertion(client, rs384(client, iat=now + ahead, exp=now + ahead + 300)), 401, BAD_IAT)


def test_expired_exp(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    now = int(emulator_now(client))
    r = post_assertion(client, rs384(client, iat=now - 120, exp=now - 60))
    assert_oauth_error(r, 401, "Invalid client assertion: the assertion has expired (exp)")


def test_replayed_assertion_is_rejected(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    assertion = rs384(client)
    assert_oauth_token(post_assertion(client, assertion))
    assert_oauth_error(post_assertion(client, assertion), 401, "Invalid client assertion: jti has already been used")


def test_reused_jti_in_a_new_assertion_is_rejected(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    jti = str(uuid.uuid4())
    now = int(emulator_now(client))
    assert_oauth_token(post_assertion(client, rs384(client, jti=jti, iat=now - 1)))
    r = post_assertion(client, rs384(client, jti=jti, iat=now))
    assert_oauth_error(r, 401, "Invalid client assertion: jti has already been used")


def test_a_jti_is_remembered_only_while_its_assertion_could_be_valid(
        client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    jti = str(uuid.uuid4())
    now = int(emulator_now(client))
    assert_oauth_token(post_assertion(client, rs384(client, jti=jti, iat=now, exp=now + 60)))
    advance(client, 300 + 10 + 1)  # past iat + 5 min + skew: that assertion is dead, and so is its jti
    assert_oauth_token(post_assertion(client, rs384(client, jti=jti)))
    assert_oauth_error(post_assertion(client, rs384(client, jti=jti, exp=now + 3600)), 401,
                       "Invalid client assertion: jti has already been used")


def test_a_rejected_assertion_does_not_spend_its_jti(client: httpx.Client) -> None:
    assertion = rs384(client)
    assert_oauth_error(post_assertion(client, assertion), 401, NO_KEY)  # key not registered yet
    register(client, key_pair("RS384")[1])
    assert_oauth_token(post_assertion(client, assertion))


def test_alg_none_is_refused(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "none", "kid": rsa_registered["kid"]}):
        r = post_assertion(client, unsigned(header, claims(client)))
        assert_oauth_error(r, 401, "JWT algorithm 'none' is not allowed: use RS384, ES384 or HS384")


@pytest.mark.parametrize("alg", ["HS256", "HS512", "RS256", "RS512", "PS384"])
def test_other_algorithms_are_refused(client: httpx.Client, rsa_registered: dict[str, Any], alg: str) -> None:
    key: bytes | str = CLIENT_SECRET if alg.startswith("HS") else key_pair("RS384")[0]
    r = post_assertion(client, sign(claims(client), key, alg, rsa_registered["kid"]))
    assert_oauth_error(r, 401, f"JWT algorithm {alg!r} is not allowed: use RS384, ES384 or HS384")


@pytest.mark.parametrize("sub", ["another-client", DROP])
def test_iss_must_equal_sub(client: httpx.Client, rsa_registered: dict[str, Any], sub: Any) -> None:
    r = post_assertion(client, rs384(client, sub=sub))
    assert_oauth_error(r, 401, "Invalid client assertion: iss and sub must both equal the client_id")


def test_client_id_field_must_match_iss(client: httpx.Client, rsa_registered: dict[str, Any]) -> None:
    r = post_assertion(client, rs384(client), client_id="another-client")
    assert_oauth_error(r, 401, "Invalid client assertion: iss must equal the client_id parameter")


@pytest.mark.parametrize(("changes", "description"), [
    ({"jti": DROP}, "Invalid client assertion: jti is required"),
    ({"jti": ""}, "Invalid client assertion: jti is required"),
    ({"jti": 12345}, "Invalid client assertion: jti is required"),
    ({"iat": DROP}, "Invalid client assertion: iat (a NumericDate) is required"),
    ({"iat": "now"}, "Invalid client assertion: iat (a NumericDate) is required"),
    ({"iat": True}, "Invalid client assertion: iat (a NumericDate) is required"),
    ({"iat": float("nan")}, "Invalid client assertion: iat (a NumericDate) is required"),
    ({"exp": DROP}, "Invalid client assertion: exp (a NumericDate) is required"),
    ({"exp": "tomorrow"}, "Invalid client assertion: exp (a NumericDate) is required"),
    ({"exp": float("inf")}, "Invalid client assertion: exp (a NumericDate) is required"),
    ({"exp": float("nan")}, "Invalid client assertion: exp (a NumericDate) is required"),
], ids=["no-jti", "empty-jti", "numeric-jti", "no-iat", "string-iat", "bool-iat", "nan-iat", "no-exp", "string-exp",
        "infinite-exp", "nan-exp"])
def test_missing_or_malformed_claims(client: httpx.Client, rsa_registered: dict[str, Any],
                                     changes: dict[str, Any], description: str) -> None:
    assert_oauth_error(post_assertion(client, rs384(client, **changes)), 401, description)


def test_keys_from_the_config_are_registered_at_start_and_after_reset() -> None:
    pem, jwk = key_pair("ES384")
    settings_ = Settings(db=":memory:", port=0, sources=(Source(jwks={"keys": [jwk]}),))
    with Server(settings_) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get(JWKS_PATH).json()["payload"]["jwks"] == {"keys": [jwk]}
        assert_oauth_token(post_assertion(c, sign(claims(c), pem, "ES384", jwk["kid"])))
        assert c.post("/__emulator/reset").status_code == 200
        assert_oauth_token(post_assertion(c, sign(claims(c), pem, "ES384", jwk["kid"])))


# ---- PUT / GET /__emulator/clients/{client_id}/jwks ---------------------------------------------

def test_jwks_get_returns_what_was_put(client: httpx.Client) -> None:
    assert client.get(JWKS_PATH).json()["payload"] == {"client_id": CLIENT_ID, "jwks": {"keys": []}}
    jwks = {"keys": [key_pair("RS384")[1], key_pair("ES384")[1]]}
    r = client.put(JWKS_PATH, json=jwks)
    assert r.status_code == 200, r.text
    assert r.json()["payload"]["kids"] == [k["kid"] for k in jwks["keys"]]
    got = client.get(JWKS_PATH)
    assert got.status_code == 200
    assert got.json()["payload"] == {"client_id": CLIENT_ID, "jwks": jwks}


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_jwks_without_alg_or_use_members_work(client: httpx.Client, alg: str) -> None:
    pem, jwk = key_pair(alg)
    register(client, {k: v for k, v in jwk.items() if k not in ("alg", "use")})
    assert_oauth_token(post_assertion(client, sign(claims(client), pem, alg, jwk["kid"])))


def _rsa_public(bits: int) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    return {**jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True), "kid": f"rsa-{bits}"}


def _ec_public(curve: Any, kid: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(curve).public_key()
    return {**jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True), "kid": kid}


def _private_jwk() -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    pem, jwk = key_pair("RS384")
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return {**jwt.algorithms.RSAAlgorithm.to_jwk(private, as_dict=True), "kid": jwk["kid"]}


def _bad_jwks() -> list[Any]:
    from cryptography.hazmat.primitives.asymmetric import ec
    good = key_pair("RS384")[1]
    no_kid = {k: v for k, v in good.items() if k != "kid"}
    return [
        pytest.param([], 'expected a JWK Set: {"keys": [ ... ]}', id="list"),
        pytest.param({"keys": {}}, 'expected a JWK Set: {"keys": [ ... ]}', id="keys-not-a-list"),
        pytest.param(good, 'expected a JWK Set: {"keys": [ ... ]}', id="bare-jwk"),
        pytest.param({"key": [good]}, 'expected a JWK Set: {"keys": [ ... ]}', id="misspelt-keys"),
        pytest.param({"keys": ["x"]}, "keys[0]: a JWK must be an object", id="jwk-not-object"),
        pytest.param({"keys": [_private_jwk()]},
                     "keys[0]: this JWK holds private key material; register the public key only", id="private"),
        pytest.param({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]},
                     "keys[0]: this JWK holds private key material; register the public key only", id="oct-secret"),
        pytest.param({"keys": [no_kid]}, "keys[0]: kid is required (Redox looks keys up by kid)", id="no-kid"),
        pytest.param({"keys": [{**good, "kid": ""}]}, "keys[0]: kid is required (Redox looks keys up by kid)",
                     id="empty-kid"),
        pytest.param({"keys": [{**good, "kid": 7}]}, "keys[0]: kid is required (Redox looks keys up by kid)",
                     id="numeric-kid"),
        pytest.param({"keys": [{**good, "kty": "OKP"}]}, "keys[0]: kty must be RSA or EC, found 'OKP'", id="kty-okp"),
        pytest.param({"keys": [{**good, "kty": "rsa"}]}, "keys[0]: kty must be RSA or EC, found 'rsa'", id="kty-case"),
        pytest.param({"keys": [no_kid | {"kid": "k", "kty": None}]}, "keys[0]: kty must be RSA or EC, found None",
                     id="kty-null"),
        pytest.param({"keys": [{**good, "kty": ["RSA"]}]}, "keys[0]: kty must be RSA or EC, found ['RSA']",
                     id="kty-list"),
        pytest.param({"keys": [{k: v for k, v in good.items() if k != "kty"}]},
                     "keys[0]: kty must be RSA or EC, found None", id="no-kty"),
        pytest.param({"keys": [{k: v for k, v in good.items() if k != "n"}]}, "keys[0]: not a usable public key",
                     id="rsa-without-n"),
        pytest.param({"keys": [{**good, "n": "!!!"}]}, "keys[0]: not a usable public key", id="rsa-bad-n"),
        pytest.param({"keys": [_rsa_public(1024)]}, "keys[0]: RSA keys must be at least 2048 bits, found 1024",
                     id="rsa-1024"),
        pytest.param({"keys": [_ec_public(ec.SECP256R1(), "p256")]},
                     "keys[0]: EC keys must be on curve P-384 (for ES384), found secp256r1", id="ec-p256"),
        pytest.param({"keys": [good, {**good, "kty": "oct"}]}, "keys[1]: kty must be RSA or EC, found 'oct'",
                     id="second-key-bad"),
        pytest.param({"keys": [good, {**key_pair("ES384")[1], "kid": good["kid"]}]},
                     f"keys[1]: kid {good['kid']!r} is already used by an earlier key of this set", id="duplicate-kid"),
        pytest.param({"keys": [{**good, "alg": "RS256"}]},
                     "keys[0]: alg must be RS384 for an RSA key (Redox verifies RS384 and ES384), found 'RS256'",
                     id="alg-rs256"),
        pytest.param({"keys": [{**good, "alg": "none"}]},
                     "keys[0]: alg must be RS384 for an RSA key (Redox verifies RS384 and ES384), found 'none'",
                     id="alg-none"),
        pytest.param({"keys": [{**good, "alg": "ES384"}]},
                     "keys[0]: alg must be RS384 for an RSA key (Redox verifies RS384 and ES384), found 'ES384'",
                     id="alg-of-other-kty"),
        pytest.param({"keys": [{**key_pair("ES384")[1], "alg": "HS384"}]},
                     "keys[0]: alg must be ES384 for an EC key (Redox verifies RS384 and ES384), found 'HS384'",
                     id="ec-alg-hs384"),
        pytest.param({"keys": [{**good, "use": "enc"}]},
                     'keys[0]: use must be "sig" for a signature key, found \'enc\'', id="use-enc"),
    ]


@pytest.mark.parametrize(("body", "message"), _bad_jwks())
def test_jwks_put_rejects_bad_sets_and_keeps_the_old_one(client: httpx.Client, rsa_registered: dict[str, Any],
                                                         body: Any, message: str) -> None:
    r = client.put(JWKS_PATH, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(message), r.json()["error"]
    assert client.get(JWKS_PATH).json()["payload"]["jwks"] == {"keys": [rsa_registered]}
    assert_oauth_token(post_assertion(client, rs384(client)))


@pytest.mark.parametrize("content", [b"not json", b"", b'{"keys": ['])
def test_jwks_put_rejects_bodies_that_are_not_json(client: httpx.Client, content: bytes) -> None:
    r = client.put(JWKS_PATH, content=content, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "JSON" in r.text


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_jwks_for_an_unknown_client_is_404(client: httpx.Client, method: str) -> None:
    r = client.request(method, "/__emulator/clients/nobody/jwks",
                       json={"keys": [key_pair("RS384")[1]]} if method == "PUT" else None)
    assert r.status_code == 404, r.text
    assert r.json() == {"error": "unknown client_id 'nobody'; configured: sandbox-client"}


# ---- bearer tokens on /endpoint ----------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Basic " + base64.b64encode(b"sandbox-client:x").decode(),
    "Token abc", "Bearer unknown-token", f"Bearer {uuid.uuid4()}", "Bearer sandbox-secret",
    "Bearer sandbox-client-secret",
], ids=["missing", "empty", "scheme-only", "basic", "other-scheme", "unknown", "unknown-uuid",
        "api-secret", "client-secret"])
def test_endpoint_rejects_missing_and_unknown_tokens(client: httpx.Client, authorization: str | None) -> None:
    assert_invalid_request(send(client, None, authorization=authorization))


def test_token_without_scheme_is_rejected(client: httpx.Client) -> None:
    assert_invalid_request(send(client, None, authorization=oauth_by_secret(client)))


def test_bearer_scheme_is_case_insensitive(client: httpx.Client) -> None:
    assert send(client, None, authorization=f"bearer {oauth_by_secret(client)}").status_code == 200


def test_refresh_token_is_not_an_access_token(client: httpx.Client) -> None:
    assert_invalid_request(send(client, legacy_login(client)["refreshToken"]))


@pytest.mark.parametrize("path", ["/endpoint", "/query"])
def test_revoked_token_is_rejected_and_others_still_work(client: httpx.Client, emulator: Server, path: str) -> None:
    revoked, kept = oauth_by_secret(client), legacy_login(client)["accessToken"]
    assert emulator.sandbox.tokens.revoke(revoked)
    r = client.post(path, json=event("PatientAdmin", "NewPatient", Patient={"Identifiers": []}),
                    headers={"Authorization": f"Bearer {revoked}"})
    assert_invalid_request(r)
    assert_works(client, kept)


def test_expiry_on_the_emulator_clock(client: httpx.Client) -> None:
    oauth, legacy = oauth_by_secret(client), legacy_login(client)["accessToken"]
    advance(client, 290)
    assert_works(client, oauth)
    advance(client, 11)  # 301 s: the 300 s OAuth token is dead, the 24 h legacy token lives
    assert_invalid_request(send(client, oauth))
    assert_works(client, legacy)
    advance(client, 86400 - 301)
    assert_invalid_request(send(client, legacy))


def test_a_fresh_token_works_after_the_clock_moved(client: httpx.Client) -> None:
    advance(client, 10 * 86400)
    token = oauth_by_secret(client)
    assert_works(client, token)
    advance(client, 301)
    assert_invalid_request(send(client, token))


def test_token_lifetimes_are_configurable() -> None:
    settings_ = Settings(db=":memory:", port=0, oauth_token_lifetime=60, legacy_token_lifetime=120)
    with Server(settings_) as server, httpx.Client(base_url=server.url, timeout=10) as c:
        token = assert_oauth_token(c.post(TOKEN_PATH, data=FORM), lifetime=60)
        before = emulator_now(c)
        login = legacy_login(c)
        after = emulator_now(c)
        assert before + 120 - 0.002 <= parse_iso(login["expires"]) <= after + 120
        assert_works(c, token)
        advance(c, 61)
        assert_invalid_request(send(c, token))
        assert_works(c, login["accessToken"])
        advance(c, 60)
        assert_invalid_request(send(c, login["accessToken"]))


def test_sweeping_expired_tokens_never_drops_live_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token table is swept of dead grants as it grows; live ones, and replay memory, survive."""
    from emulator import tokens as tokens_module
    from emulator.clock import Clock

    monkeypatch.setattr(tokens_module, "PRUNE_AT", 50)
    clock = Clock()
    store = tokens_module.TokenStore(clock)
    live = [store.issue("source", 3600, "legacy").token for _ in range(80)]
    short = [store.issue("source", 10, "oauth").token for _ in range(80)]
    revoked = store.issue("source", 3600, "oauth").token
    store.revoke(revoked)
    assert all(store.remember_jti("client", f"jti-{i}", until=clock.now() + 3600) for i in range(120))
    clock.advance(11)
    live += [store.issue("source", 3600, "legacy").token for _ in range(200)]
    for token in live:
        grant, why = store.check(token)
        assert grant is not None, why
    assert all(store.check(token)[0] is None for token in [*short, revoked])
    assert len(store._access) == len(live)  # the dead and the revoked were swept
    assert not any(store.remember_jti("client", f"jti-{i}", until=clock.now() + 3600) for i in range(120))


# ---- secrets never stored -----------------------------------------------------------------------

def stored_text(server: Server) -> str:
    """Every value of every row of every table of the SQLite store, as text (blobs decoded)."""
    store = server.sandbox.store
    store.flush()
    parts: list[str] = []
    with contextlib.closing(sqlite3.connect(store.file)) as db:
        parts.extend(db.iterdump())
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                parts.extend(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
    return "\n".join(parts)


def everything_recorded(client: httpx.Client, server: Server, caplog: pytest.LogCaptureFixture) -> str:
    journal = client.get("/__emulator/exchanges", params={"limit": 100000})
    logs = client.get("/__emulator/logs", params={"limit": 500})
    assert journal.status_code == 200 and logs.status_code == 200
    details = [client.get(f"/__emulator/logs/{entry['id']}").text for entry in logs.json()["payload"]["logs"]]
    emulator_logs = [r.getMessage() for r in caplog.records if r.name.startswith(("emulator", "uvicorn"))]
    return "\n".join([journal.text, logs.text, *details, stored_text(server), *emulator_logs])


def forbidden_pieces(secret: str) -> list[str]:
    """The secret, and for a JWT its signature, and for a PEM each line of its body."""
    pieces = [secret]
    if secret.count(".") == 2:
        pieces.append(secret.rsplit(".", 1)[1])
    if "PRIVATE KEY-----" in secret:
        pieces.extend(line for line in secret.splitlines() if len(line) > 40)
    return [p for p in pieces if p]


def test_secrets_never_reach_the_journal_the_logs_or_the_store(
        client: httpx.Client, emulator: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    # legacy login and refresh, and failures carrying a real secret
    login = legacy_login(client)
    refreshed = client.post("/auth/refreshToken", json={"apiKey": API_KEY, "refreshToken": login["refreshToken"]})
    assert refreshed.status_code == 200
    refresh_tokens = [login["refreshToken"], refreshed.json()["refreshToken"]]
    access_tokens = [login["accessToken"], refreshed.json()["accessToken"]]
    client.post("/auth/refreshToken", json={"apiKey": API_KEY, "refreshToken": refresh_tokens[0]})  # replay
    client.post("/auth/refreshToken", json={"apiKey": "wrong", "refreshToken": refresh_tokens[1]})
    client.post("/auth/authenticate", json={"apiKey": "wrong-api-key", "secret": SECRET})
    client.post("/auth/authenticate", json={"apiKey": API_KEY, "secret": CLIENT_SECRET, "extra": [1]})
    # OAuth by secret, form and Basic, and failures
    access_tokens.append(oauth_by_secret(client))
    access_tokens.append(assert_oauth_token(client.post(TOKEN_PATH, data={"grant_type": "client_credentials"},
                                                        auth=(CLIENT_ID, CLIENT_SECRET))))
    client.post(TOKEN_PATH, data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET})
    client.post(TOKEN_PATH, data={"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    # signed JWTs: RS384, ES384, HS384, a replay, a rejected one, a private key offered for registration
    register(client, key_pair("RS384")[1], key_pair("ES384")[1])
    private = _private_jwk()
    assert client.put(JWKS_PATH, json={"keys": [private]}).status_code == 400
    assertions = [sign(claims(client), key_pair(alg)[0], alg, key_pair(alg)[1]["kid"]) for alg in ("RS384", "ES384")]
    assertions.append(sign(claims(client), CLIENT_SECRET, "HS384"))
    access_tokens += [assert_oauth_token(post_assertion(client, assertion)) for assertion in assertions]
    post_assertion(client, assertions[0])  # replay
    assertions.append(rs384(client, aud="https://api.redoxengine.com/v2/auth/token"))
    assert post_assertion(client, assertions[-1]).status_code == 401
    # every token on the Redox surface, and a revoked one
    for token in access_tokens + refresh_tokens:
        send(client, token)
    emulator.sandbox.tokens.revoke(access_tokens[0])
    assert_invalid_request(send(client, access_tokens[0]))

    recorded = everything_recorded(client, emulator, caplog)
    assert "[REDACTED]" in recorded  # the flows above were journaled, with their secrets blanked
    assert "/auth/authenticate" in recorded and TOKEN_PATH in recorded and "/endpoint" in recorded
    pems = [key_pair(alg)[0].decode() for alg in ("RS384", "ES384")]
    secrets = [SECRET, CLIENT_SECRET, basic, private["d"], *access_tokens, *refresh_tokens, *assertions, *pems]
    assert len(set(secrets)) == len(secrets) == 19
    for secret in secrets:
        for piece in forbidden_pieces(secret):
            at = recorded.find(piece)
            assert at < 0, f"a secret was stored: {piece[:12]}... in {recorded[max(0, at - 300):at + 100]!r}"


@pytest.mark.parametrize(("path", "content", "content_type"), [
    ("/auth/authenticate", b"apiKey=sandbox-api-key&secret=sandbox-secret", "application/x-www-form-urlencoded"),
    ("/auth/authenticate", b'{"apiKey": "sandbox-api-key", "secret": "sandbox-secret"', "application/json"),
    (TOKEN_PATH, b'{"grant_type": "client_credentials", "client_id": "sandbox-client", '
                 b'"client_secret": "sandbox-client-secret"}', "application/json"),
], ids=["legacy-form", "legacy-truncated-json", "oauth-json"])
def test_secrets_in_malformed_auth_bodies_are_not_stored(
        client: httpx.Client, emulator: Server, caplog: pytest.LogCaptureFixture,
        path: str, content: bytes, content_type: str) -> None:
    r = client.post(path, content=content, headers={"content-type": content_type})
    assert r.status_code in (400, 401)
    recorded = everything_recorded(client, emulator, caplog)
    assert path in recorded
    for secret in (SECRET, CLIENT_SECRET):
        at = recorded.find(secret)
        assert at < 0, f"{secret} stored in {recorded[max(0, at - 200):at + 50]!r}"


# ---- properties: no input makes the auth routes fail other than the documented ways -------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


@FUZZ
@given(body=st.dictionaries(st.sampled_from(["apiKey", "secret", "refreshToken", "x"]),
                            JSON_VALUES | st.sampled_from([API_KEY, SECRET]), max_size=4) | JSON_VALUES)
def test_legacy_routes_answer_200_or_invalid_request(client: httpx.Client, body: Any) -> None:
    content = json.dumps(body).encode()
    for path in ("/auth/authenticate", "/auth/refreshToken"):
        r = client.post(path, content=content, headers={"content-type": "application/json"})
        if r.status_code != 401:
            assert (path, r.status_code, body) == ("/auth/authenticate", 200, {**body, **LEGACY})
        else:
            assert_invalid_request(r)


@FUZZ
@given(assertion=st.text(max_size=200) | st.builds(
    lambda a, b, c: ".".join((a, b, c)), st.text("eyJ0123456789abcdefABCDEF_-", max_size=40),
    st.text("eyJ0123456789abcdefABCDEF_-=", max_size=40), st.text(max_size=10)))
def test_any_assertion_string_gets_an_oauth_error(client: httpx.Client, assertion: str) -> None:
    r = post_assertion(client, assertion)
    assert r.status_code in (400, 401), r.text
    assert set(r.json()) == {"error", "error_description", "error_uri"}


CLAIM_VALUES = JSON_VALUES | st.sampled_from([CLIENT_ID, "AUD", "NOW"])


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(["iss", "sub", "aud", "iat", "exp", "jti", "nbf"]),
                               CLAIM_VALUES, max_size=4),
       header=st.dictionaries(st.sampled_from(["kid", "typ", "crit", "cty"]), JSON_VALUES, max_size=2))
def test_any_signed_claim_set_gets_a_token_or_an_oauth_error(client: httpx.Client, changes: dict[str, Any],
                                                             header: dict[str, Any]) -> None:
    now = int(emulator_now(client))
    substitute = {"AUD": token_url(client), "NOW": now}
    payload = claims(client, **{k: substitute.get(v, v) if isinstance(v, str) else v for k, v in changes.items()})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            assertion = jwt.encode(payload, CLIENT_SECRET, algorithm="HS384", headers=header)
    except (TypeError, ValueError, jwt.PyJWTError):
        return  # not encodable as a JWT at all
    r = post_assertion(client, assertion)
    assert r.status_code in (200, 400, 401), r.text
    if r.status_code == 200:
        assert_oauth_token(r)
    else:
        assert set(r.json()) == {"error", "error_description", "error_uri"}


@pytest.fixture(autouse=True)
def _no_server_errors(emulator: Server, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No test here may make the emulator log an unhandled error (a 500)."""
    yield
    bugs = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("emulator")]
    assert not bugs, [r.getMessage() for r in bugs]
