"""A running emulator's control plane, for CLI commands (`push`, `queue`, `verify-destination`).

Standard library only: these commands are a few JSON calls each.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from emulator.errors import EmulatorError

DEFAULT_URL = "http://127.0.0.1:8787"


class RemoteError(EmulatorError):
    pass


class Remote:
    def __init__(self, url: str | None = None, admin_token: str | None = None, timeout: float = 60.0) -> None:
        self.url = (url or os.environ.get("REDOX_EMULATOR_URL") or DEFAULT_URL).rstrip("/")
        self.admin_token = admin_token or os.environ.get("REDOX_EMULATOR_ADMIN_TOKEN")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The `payload` of a control-plane answer; RemoteError with the emulator's message otherwise."""
        payload: dict[str, Any] = self.call_with_meta(method, path, body)["payload"]
        return payload

    def call_with_meta(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The whole answer, {"meta", "payload"}: paging needs meta.nextCursor."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + "/__emulator" + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.admin_token:
            request.add_header("X-Emulator-Admin-Token", self.admin_token)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:
            try:
                message = json.load(error).get("error", error.reason)
            except ValueError:
                message = error.reason
            raise RemoteError(f"{method} {path}: {error.code} {message}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RemoteError(f"no emulator at {self.url} ({reason}); start one with `make emulate` "
                              "or say where with --url") from None
        whole: dict[str, Any] = answer
        return whole
