"""Secrets never reach the log store: API secrets, client secrets, assertions, tokens, private keys."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

REDACTED = "[REDACTED]"
SECRET_FIELDS = frozenset({
    "secret", "apiSecret", "refreshToken", "accessToken",  # legacy auth
    "client_secret", "client_assertion", "access_token", "refresh_token",  # OAuth 2.0
    "d", "p", "q", "dp", "dq", "qi", "k",  # private JWK members
    "verification-token", "verificationToken", "verification_token",
})
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "verification-token",
                            "x-emulator-admin-token"})


def headers(items: Any) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in items}


def json_body(raw: bytes) -> bytes:
    """The body with secret fields replaced, at any depth; bodies that are not JSON pass unchanged."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    return orjson.dumps(_scrub(data))


def form_body(raw: bytes) -> bytes:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return b"[undecodable form body]"
    return urlencode([(k, REDACTED if k in SECRET_FIELDS else v) for k, v in pairs]).encode()


def pem(text: str) -> bool:
    return "PRIVATE KEY-----" in text


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k in SECRET_FIELDS and v is not None else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and pem(value):
        return REDACTED
    return value
