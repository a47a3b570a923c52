"""Recorded traffic teams already hold -> `recording.Recorded` exchanges: VCR cassettes (vcrpy, Ruby VCR;
YAML) and HTTP Archives (HAR 1.2; JSON). `redox-emulator import` hands them to `recording.convert()`.

A request that is not Redox's (another host and a path outside the Redox surface) is skipped with
a note naming it. Plain Python, no HTTP.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emulator.errors import LoadError
from emulator.scenarios import recording

REDOX_HOST = "redoxengine.com"


class CassetteError(LoadError):
    """A file that is not a cassette or HAR this importer reads."""


def load(path: Path) -> tuple[list[recording.Recorded], list[str]]:
    """The Redox exchanges of a cassette or HAR file, and a note for each request skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: cannot read the file: {exc}") from None
    data = _parse(text, path)
    if isinstance(data, dict) and isinstance(data.get("log"), dict):
        pairs = list(_har(data["log"], path))
    elif isinstance(data, dict) and isinstance(data.get("http_interactions"), list):
        pairs = list(_vcr(data["http_interactions"], path, ruby=True))
    elif isinstance(data, dict) and isinstance(data.get("interactions"), list):
        pairs = list(_vcr(data["interactions"], path, ruby=False))
    else:
        raise CassetteError(f"{path}: neither a VCR cassette (http_interactions: / interactions:) nor a HAR "
                            "file (log.entries)")
    exchanges, notes = [], []
    first = next((at for _, at in pairs if at is not None), None)
    for (url, exchange), at in ((p, a) for p, a in pairs):
        host = urlsplit(url).hostname or ""
        if not (host == REDOX_HOST or host.endswith("." + REDOX_HOST) or is_redox_path(exchange.path)):
            notes.append(f"skipped {exchange.method} {url}: not a Redox request")
            continue
        offset = 0.0 if at is None or first is None else max(at - first, 0.0)
        exchanges.append(_at(exchange, offset))
    return exchanges, notes


def is_redox_path(path: str) -> bool:
    return path in recording.REDOX_PATHS or path.startswith(("/upload/", "/fhir/"))


def _parse(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".har" or text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise CassetteError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    import yaml

    try:  # vcrpy writes bodies as !!binary: the safe loader reads them as bytes
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CassetteError(f"{path}: not YAML: {exc}") from None


Pair = tuple[tuple[str, recording.Recorded], float | None]


def _vcr(interactions: Iterable[Any], path: Path, *, ruby: bool) -> Iterable[Pair]:
    for i, item in enumerate(interactions):
        request, response = (item or {}).get("request"), (item or {}).get("response")
        if not isinstance(request, dict) or not isinstance(response, dict):
            raise CassetteError(f"{path}: interaction {i} has no request and response")
        status = response.get("status")
        code = status.get("code") if isinstance(status, dict) else status
        url = str(request.get("uri") or "")
        at = _when(item.get("recorded_at")) if ruby else None
        yield (url, recording.Recorded(
            str(request.get("method") or "GET").upper(), urlsplit(url).path or "/",
            _vcr_headers(request.get("headers")),
            _vcr_body(request.get("body")), int(code or 0), _vcr_headers(response.get("headers")),
            _vcr_body(response.get("body")))), at


def _vcr_headers(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple((str(k).lower(), str(v)) for k, values in raw.items()
                 for v in (values if isinstance(values, list) else [values]))


def _vcr_body(raw: Any) -> bytes:
    """Ruby VCR: {encoding, string | base64_string}; vcrpy: {string: str | bytes} or the string itself."""
    if isinstance(raw, Mapping):
        if raw.get("base64_string") is not None:
            try:
                return base64.b64decode(str(raw["base64_string"]))
            except binascii.Error:
                return b""
        raw = raw.get("string")
    if isinstance(raw, bytes):
        return raw
    return b"" if raw is None else str(raw).encode("utf-8")


def _har(log: Mapping[str, Any], path: Path) -> Iterable[Pair]:
    for i, entry in enumerate(log.get("entries") or []):
        request, response = (entry or {}).get("request"), (entry or {}).get("response")
        if not isinstance(request, dict) or not isinstance(response, dict):
            raise CassetteError(f"{path}: entries[{i}] has no request and response")
        url = str(request.get("url") or "")
        body = (request.get("postData") or {}).get("text") or ""
        content = response.get("content") or {}
        text = content.get("text") or ""
        answer = base64.b64decode(text) if content.get("encoding") == "base64" else text.encode("utf-8")
        yield (url, recording.Recorded(
            str(request.get("method") or "GET").upper(), urlsplit(url).path or "/", _har_headers(request),
            body.encode("utf-8"), int(response.get("status") or 0), _har_headers(response), answer)), \
            _when(entry.get("startedDateTime"))


def _har_headers(part: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(h.get("name", "")).lower(), str(h.get("value", ""))) for h in part.get("headers") or []
                 if isinstance(h, dict))


def _when(raw: Any) -> float | None:
    """A recorded time as seconds since the epoch: ISO 8601 (HAR) or RFC 1123 (Ruby VCR)."""
    if isinstance(raw, datetime):
        return raw.timestamp()
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    try:
        return datetime.strptime(raw, "%a, %d %b %Y %H:%M:%S %Z").timestamp()
    except ValueError:
        return None


def _at(exchange: recording.Recorded, at: float) -> recording.Recorded:
    return recording.Recorded(exchange.method, exchange.path, exchange.request_headers, exchange.request_body,
                              exchange.status, exchange.response_headers, exchange.response_body, at)
