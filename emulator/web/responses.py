"""Rendering: Redox's response headers and error bodies, byte for byte where Redox is known."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from emulator.errors import AuthError, ControlError, OAuthError, RedoxError, RequestError
from emulator.routing import next_id

JSON = "application/json; charset=utf-8"
# What real Redox sends on its API answers (recorded traffic, SPEC 5.2).
REDOX_HEADERS = {
    "cache-control": "private, no-cache, no-store, must-revalidate",
    "x-frame-options": "deny",
    "strict-transport-security": "max-age=300; includeSubdomains;",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "expires": "-1",
    "pragma": "no-cache",
}
OAUTH_ERROR_URI = "https://docs.redoxengine.com/basics/authentication/"
RETRY_AFTER = 1  # seconds a client is asked to wait while the log store's writer restarts


_RAW_JSON_HEADERS = [(k.encode(), v.encode()) for k, v in {**REDOX_HEADERS, "content-type": JSON}.items()]


class RedoxJSONResponse(Response):
    """A JSON answer with Redox's headers, encoded once at import rather than on every request."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.body = orjson.dumps(body)
        self.background = None
        self.raw_headers = [*_RAW_JSON_HEADERS, (b"content-length", str(len(self.body)).encode())]
        if headers:
            self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return RedoxJSONResponse(status, body, headers)


def redox_error_body(error: RedoxError) -> dict[str, Any]:
    return {"Meta": {**error.meta, "Errors": error.entries(next_id)}}


def render(error: RequestError) -> Response:
    if isinstance(error, AuthError):
        return Response(b"Invalid request", 401, REDOX_HEADERS, media_type="text/html; charset=utf-8")
    if isinstance(error, OAuthError):
        return json_response(error.status, {"error": error.error, "error_description": error.description,
                                            "error_uri": OAUTH_ERROR_URI})
    if isinstance(error, RedoxError):
        return json_response(error.status, redox_error_body(error), error.headers)
    if isinstance(error, ControlError):
        return json_response(error.status, {"error": error.message})
    return json_response(error.status, {"error": str(error)})


def unavailable(problem: str | None, *, accepted: bool | None = False) -> Response:
    """503 with Retry-After: the log store cannot take (or confirm) a request now, so Redox's promise
    that an answered request is logged cannot be kept. `accepted`: False when nothing was done (no writer
    when the request arrived), None when the request was handled but its commit was not confirmed."""
    why = problem or "the log store is not available"
    outcome = "Nothing was accepted" if accepted is False else "It may or may not have been accepted"
    error = RedoxError(f"Service unavailable: {why}. {outcome}; retry after {RETRY_AFTER} s",
                       type="transmission", module="Emulator", status=503,
                       headers={"Retry-After": str(RETRY_AFTER)})
    return render(error)
