"""The Redox API surface: /auth/authenticate, /auth/refreshToken, /v2/auth/token, /endpoint, /query, /upload."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, quote, unquote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from emulator import redaction
from emulator.auth import TokenRequest
from emulator.errors import AuthError, OAuthError, RedoxError, RequestError
from emulator.ids import new_id
from emulator.sandbox import Sandbox
from emulator.settings import Source
from emulator.tokens import Grant
from emulator.web import scenario_routes
from emulator.web.journal import Journal
from emulator.web.requests import header, headers, media_type, parse_json, read_body, receive_body, require_json_type
from emulator.web.responses import json_response, render, unavailable

FORM = "application/x-www-form-urlencoded"


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def _rate_limit(sandbox: Sandbox, scope: Scope) -> None:
    limiter = sandbox.rate_limiter
    client = scope.get("client")
    allowed, wait = limiter.allow(client[0] if client else "")
    if not allowed:
        raise RedoxError(f"Rate limit exceeded: more than {limiter.limit} requests in "
                         f"{limiter.window:g} seconds from this address", type="transmission",
                         module="RateLimit", status=429,
                         headers={"X-RateLimit-Limit": str(limiter.limit), "Retry-After": str(int(wait) + 1)})


def _admit(sandbox: Sandbox, request: Request) -> Grant:
    """What every bearer-token route checks first: the rate limit, then the token."""
    return _admit_scope(sandbox, request.scope, header(request.scope, b"authorization"))


def _admit_scope(sandbox: Sandbox, scope: Scope, authorization: str | None) -> Grant:
    _rate_limit(sandbox, scope)
    return sandbox.auth.bearer(authorization)


async def authenticate(request: Request) -> Response:
    return await _legacy(request, refresh=False)


async def refresh_token(request: Request) -> Response:
    return await _legacy(request, refresh=True)


async def _legacy(request: Request, *, refresh: bool) -> Response:
    sandbox = _sandbox(request)
    journal = Journal(sandbox, request.scope)
    raw = b""
    try:
        _rate_limit(sandbox, request.scope)
        raw = await read_body(request, sandbox.settings.payload_limit)
        try:
            body = parse_json(raw)
        except RedoxError:
            raise AuthError("body is not JSON") from None
        answer = sandbox.auth.refresh(body) if refresh else sandbox.auth.authenticate(body)
        response = json_response(200, answer)
    except RequestError as error:
        response = render(error)
    return await journal.answer(response, redaction.auth_json(raw), redact_response=True)


async def oauth_token(request: Request) -> Response:
    sandbox = _sandbox(request)
    journal = Journal(sandbox, request.scope)
    raw = b""
    try:
        _rate_limit(sandbox, request.scope)
        raw = await read_body(request, sandbox.settings.payload_limit)
        if media_type(request) != FORM:
            raise OAuthError("x-www-form-urlencoded content-type required")
        try:
            fields: dict[str, str] = {}
            for key, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True):
                fields.setdefault(key, value)
        except UnicodeDecodeError:
            raise OAuthError("The request body is not valid UTF-8") from None
        client_id, client_secret = _basic(request.headers.get("authorization"))
        answer = sandbox.auth.token(TokenRequest(
            grant_type=fields.get("grant_type"),
            client_id=fields.get("client_id", client_id),
            client_secret=fields.get("client_secret", client_secret),
            assertion_type=fields.get("client_assertion_type"),
            assertion=fields.get("client_assertion"),
            token_url=str(request.url.replace(query="", fragment="")),
        ))
        response = json_response(200, answer)
    except RequestError as error:
        response = render(error)
    stored = redaction.auth_form(raw) if media_type(request) == FORM else redaction.auth_json(raw)
    return await journal.answer(response, stored, redact_response=True)


def _basic(authorization: str | None) -> tuple[str | None, str | None]:
    """client_id and client_secret from HTTP Basic (RFC 6749 2.3.1: each form-urlencoded)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("Malformed HTTP Basic credentials") from None
    if not sep:
        raise OAuthError("Malformed HTTP Basic credentials")
    return unquote(user), unquote(password)


async def endpoint(request: Request) -> Response:
    """POST /endpoint and /query: every data model, async sends and sync queries alike."""
    sandbox = _sandbox(request)
    if sandbox.scenarios.active:  # one check when no scenario is active: the rules live elsewhere
        return await scenario_routes.endpoint(request, sandbox, _admit, _source)
    return await exchange(sandbox, request.scope, request.receive)


async def exchange(sandbox: Sandbox, scope: Scope, receive: Receive) -> Response:
    """`endpoint` with no scenario active, on the bare ASGI scope and receive channel.

    app.py calls it directly for POST /endpoint and /query: Starlette's router, middleware, Request
    and Response plumbing cost more per request than the bare benchmark's whole app.
    """
    if not sandbox.store.available:  # no writer to log it: nothing is done (Redox answers only what it logs)
        return unavailable(sandbox.store.problem)
    journal = Journal(sandbox, scope)
    fields = headers(scope)
    try:
        grant = _admit_scope(sandbox, scope, _text(fields.get(b"authorization")))
        source = _source(sandbox, grant.source_id)
    except RequestError as error:
        return await journal.answer(render(error))
    raw = b""
    try:
        require_json_type(_text(fields.get(b"content-type")))
        raw = await receive_body(scope, receive, sandbox.settings.payload_limit, fields.get(b"content-length", b""))
        payload = parse_json(raw)
    except RedoxError as error:
        outcome = sandbox.router.failure(error, {}, source, journal.id)
    else:
        outcome = sandbox.router.handle(payload, source, journal.id)
    response = json_response(outcome.status, outcome.body, outcome.headers)
    journal.finish(response, raw, logs=outcome.logs, source_id=source.id, ehr=outcome.ehr)
    if outcome.deliveries:  # after the logs: the queue rows name them
        sandbox.delivery.enqueue(outcome.deliveries)
    return await journal.durable(response)  # a 200 means logged (and queued): it survives kill -9


async def upload(request: Request) -> Response:
    """POST /upload, multipart field `file`: 201 {"URI"} to reference in Media.FileContents."""
    sandbox = _sandbox(request)
    if not sandbox.store.available:
        return unavailable(sandbox.store.problem)
    journal = Journal(sandbox, request.scope)
    scripted = scenario_routes.upload_rule(request, sandbox) if sandbox.scenarios.active else None
    try:
        grant = _admit(sandbox, request)
        if scripted is not None:
            return journal.finish(scripted[0], b"[multipart body not journaled]", scenario=scripted[1])
        if media_type(request) != "multipart/form-data":
            raise RedoxError("Content-Type must be multipart/form-data with a field named file", module="Upload")
        raw = await read_body(request, sandbox.settings.payload_limit)

        async def replay() -> dict[str, object]:  # the limit-checked bytes, for Starlette's form parser
            return {"type": "http.request", "body": raw, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=20)
        except Exception as exc:  # python-multipart raises several types for a broken body
            raise RedoxError(f"Malformed multipart body: {exc}", module="Upload") from None
        try:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise RedoxError("Required field missing - file (a multipart file field)", module="Upload")
            data = await file.read()
        finally:
            await form.close()
        upload_id = new_id()
        sandbox.store.put_upload(upload_id, sandbox.clock.now(), grant.source_id, file.filename or "",
                                 _media_type(file.content_type), data)
        uri = str(request.url_for("download", upload_id=upload_id))
        response = json_response(201, {"URI": uri})
    except RequestError as error:
        response = render(error)
    return await journal.answer(response, b"[multipart body not journaled]")


async def download(request: Request) -> Response:
    sandbox = _sandbox(request)
    try:
        sandbox.auth.bearer(request.headers.get("authorization"))
    except RequestError as error:
        return render(error)
    found = sandbox.store.get_upload(request.path_params["upload_id"])
    if found is None:
        return render(RedoxError("No upload with this URI", module="Upload", status=404))
    filename, content_type, data = found
    disposition = f"attachment; filename*=UTF-8''{quote(filename, safe='')}"  # RFC 6266: any filename
    return Response(data, 200, {"content-disposition": disposition}, media_type=content_type)


def _media_type(given: str | None) -> str:
    """The part's declared type when it can be sent back in a header, else a neutral one."""
    if given and given.isascii() and given.isprintable():
        return given
    return "application/octet-stream"


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _source(sandbox: Sandbox, source_id: str) -> Source:
    for source in sandbox.settings.sources:
        if source.id == source_id:
            return source
    raise AuthError("token for a source that no longer exists")


routes = [
    Route("/endpoint", endpoint, methods=["POST"]),  # first: the hot path matches at once
    Route("/auth/authenticate", authenticate, methods=["POST"]),
    Route("/auth/refreshToken", refresh_token, methods=["POST"]),
    Route("/v2/auth/token", oauth_token, methods=["POST"]),
    Route("/query", endpoint, methods=["POST"]),
    Route("/upload", upload, methods=["POST"]),
    Route("/upload/{upload_id}", download, methods=["GET"], name="download"),
]
