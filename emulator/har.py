"""Logs as an HTTP Archive (HAR 1.2): each attempt of each log is one entry, for browser dev tools,
Charles, Fiddler and HAR viewers. Redox's side of it (log ID, type, status) rides in `_redox` fields,
the format's place for custom data. Plain Python: no HTTP here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulator import __version__

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large", 415: "Unsupported Media Type",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


def document(logs: Iterable[dict[str, Any]], base_url: str) -> dict[str, Any]:
    """A HAR document of `logs` as `GET /__emulator/logs?full=true` gives them (oldest entries first)."""
    entries = [entry(log, attempt, base_url) for log in logs for attempt in log.get("attempts", [])]
    entries.sort(key=lambda e: e["startedDateTime"])
    return {"log": {"version": "1.2", "creator": {"name": "redox-emulator", "version": __version__},
                    "entries": entries}}


def entry(log: dict[str, Any], attempt: dict[str, Any], base_url: str) -> dict[str, Any]:
    url = attempt.get("url") or ""
    if url.startswith("/"):  # a request to the emulator: its path; HAR wants an absolute URL
        url = base_url.rstrip("/") + url
    request_text = _text(attempt.get("request"))
    response_text = _text(attempt.get("response"))
    status = int(attempt.get("httpStatus") or 0)
    latency = float(attempt.get("latencyMs") or 0.0)
    return {
        "startedDateTime": attempt["createdAt"],
        "time": latency,
        "request": {
            "method": attempt.get("method") or "POST", "url": url, "httpVersion": "HTTP/1.1",
            "cookies": [], "headers": [{"name": "Content-Type", "value": "application/json"}],
            "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)],
            "headersSize": -1, "bodySize": len(request_text.encode()),
            **({"postData": {"mimeType": "application/json", "text": request_text}} if request_text else {}),
        },
        "response": {
            "status": status, "statusText": _REASONS.get(status, ""), "httpVersion": "HTTP/1.1",
            "cookies": [], "headers": [], "redirectURL": "", "headersSize": -1,
            "bodySize": len(response_text.encode()),
            "content": {"size": len(response_text.encode()), "mimeType": "application/json", "text": response_text},
        },
        "cache": {},
        "timings": {"send": 0, "wait": latency, "receive": 0},
        "_redox": {"logId": log["id"], "attemptId": attempt["id"], "type": log["type"], "status": log["status"],
                   "dataModel": log.get("dataModel"), "eventType": log.get("eventType"),
                   "errors": log.get("errors", [])},
    }


def _text(body: Any) -> str:
    if body is None:
        return ""
    return body if isinstance(body, str) else json.dumps(body)
