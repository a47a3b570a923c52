"""Secrets never reach the log store: API secrets, client secrets, assertions, tokens, private keys.

Auth request bodies are redacted by allow-list: only fields known to be harmless keep their values,
so a malformed or unexpected body cannot smuggle a secret into the journal.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import orjson

REDACTED = "[REDACTED]"
# Fields of auth requests whose values are not secret.
PUBLIC_AUTH_FIELDS = frozenset({"apiKey", "grant_type", "client_id", "client_assertion_type", "scope"})
# Fields of the emulator's own answers that are secret.
SECRET_FIELDS = frozenset({"accessToken", "refreshToken", "access_token", "refresh_token"})
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "verification-token",
                            "x-emulator-admin-token"})


_SECRET_HEADER_NAMES = frozenset(h.encode() for h in SECRET_HEADERS)
_REDACTED = REDACTED.encode()


def headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """ASGI's raw header pairs (names already lower-case) with the secret ones redacted."""
    return [(k, _REDACTED if k in _SECRET_HEADER_NAMES else v) for k, v in raw]


def auth_json(raw: bytes) -> bytes:
    """A JSON auth body with every value but the public ones redacted; anything else wholly redacted."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return _unreadable(raw)
    return orjson.dumps({str(k): (v if k in PUBLIC_AUTH_FIELDS and isinstance(v, str) else REDACTED)
                         for k, v in data.items()})


def auth_form(raw: bytes) -> bytes:
    """A form-encoded auth body with every value but the public ones redacted."""
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        return _unreadable(raw)
    return urlencode([(k, v if k in PUBLIC_AUTH_FIELDS else REDACTED) for k, v in pairs]).encode()


def json_body(raw: bytes) -> bytes:
    """One of the emulator's own JSON answers with its tokens redacted."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if isinstance(data, dict):
        data = {k: (REDACTED if k in SECRET_FIELDS else v) for k, v in data.items()}
    return orjson.dumps(data)


def _unreadable(raw: bytes) -> bytes:
    return f"[REDACTED: {len(raw)} bytes that are not a well-formed auth request]".encode()
