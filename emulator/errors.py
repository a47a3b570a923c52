"""The emulator's exception tree.

    EmulatorError
    ├── LoadError            bad config, bad key file, bad scenario: a CLI message and exit code
    │   └── ConfigError
    └── RequestError         a client's mistake: rendered as a Redox-shaped HTTP answer
        ├── RedoxError       400 (or other) with Meta.Errors[{ID, Text, Type, Module}]
        ├── AuthError        401 on the Redox routes and the legacy auth routes
        ├── OAuthError       {"error", "error_description", "error_uri"} on /v2/auth/token
        ├── ControlError     a control-plane mistake: {"error": ...}
        └── FhirError        on /fhir/R4/: an OperationOutcome (issue severity, code, details.text)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class EmulatorError(Exception):
    """Root of every error the emulator raises on purpose."""


class LoadError(EmulatorError):
    """Something read at start-up (config, keys, scenario) is wrong."""


class ConfigError(LoadError):
    pass


class RequestError(EmulatorError):
    status: int = 400


class RedoxError(RequestError):
    """An error Redox reports in `Meta.Errors`: one entry per (text, type, module) in `errors`.

    `meta` is the request's Meta as far as it could be read; the renderer completes it.
    `paths` runs alongside `errors`: the JSON path an entry is about (rendered as `Path`), or None.
    """

    def __init__(
        self,
        text: str,
        *,
        type: str = "message",
        module: str = "DataModels",
        status: int = 400,
        meta: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: list[tuple[str, str, str]] | None = None,
        path: str | None = None,
        extra_paths: list[str | None] | None = None,
    ) -> None:
        super().__init__(text)
        self.errors = [(text, type, module), *(extra or [])]
        self.paths: list[str | None] = [path, *(extra_paths or [None] * len(extra or []))]
        self.status = status
        self.meta = meta or {}
        self.headers = headers or {}

    def entries(self, next_id: Callable[[], int]) -> list[dict[str, Any]]:
        """`Meta.Errors` as Redox renders it, plus `Path` (a JSON path) on entries about one field."""
        return [{"ID": next_id(), "Text": text, "Type": type_, "Module": module, **({"Path": path} if path else {})}
                for (text, type_, module), path in zip(self.errors, self.paths, strict=True)]


class AuthError(RequestError):
    """401 with Redox's terse `text/html` body."""

    status = 401

    def __init__(self, reason: str) -> None:
        # `reason` is for the log, never for the client: Redox answers "Invalid request".
        super().__init__(reason)
        self.reason = reason


class OAuthError(RequestError):
    def __init__(self, description: str, *, status: int = 400, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error


class ControlError(RequestError):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class FhirError(RequestError):
    """A FHIR API answer that is an OperationOutcome: one issue, its HL7 issue-type `code`, the text
    clients read (`details.text`, as Redox's sandbox puts it), a `coding` code (Redox's MSG_NO_MODULE)."""

    def __init__(self, text: str, *, status: int = 400, code: str = "invalid", severity: str = "error",
                 coding: str | None = None, diagnostics: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.code = code
        self.severity = severity
        self.coding = coding
        self.diagnostics = diagnostics
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        details: dict[str, Any] = {"text": self.text}
        if self.coding is not None:
            details = {"coding": [{"code": self.coding,
                                   "system": "http://terminology.hl7.org/CodeSystem/operation-outcome"}],
                       "text": self.text}
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "details": details}
        if self.diagnostics is not None:
            issue["diagnostics"] = self.diagnostics
        return {"resourceType": "OperationOutcome", "issue": [issue]}
