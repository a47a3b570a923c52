"""Fidelity against real Redox material in ../shared/redox-reference (skipped when it is absent).

- every docs sample payload is accepted by /endpoint (addressed to the Redox EMR destination);
- the recorded 2020 sandbox traffic, replayed against the emulator, gets the same status codes,
  content types, Redox headers, top-level keys and error Type/Module as real Redox answered.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulator import catalog
from tests.conftest import REDOX_EMR, SHARED

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/redox-reference is not here")

DOCS = sorted((SHARED / "samples" / "docs-samples").glob("*.json")) if SHARED.is_dir() else []
CASSETTES = sorted((SHARED / "recordings" / "2020-sandbox").rglob("*.yml")) if SHARED.is_dir() else []
# Interactions that do not describe Redox's behaviour: a replayed 401 from another host in the middle of
# a successful cassette, and an upload whose recorded 400 is a placeholder body for a valid request.
NOT_REDOX = {("Redox_Media_New/succeeds.yml", 2), ("upload-file-bad-request.yml", 0)}
CREDENTIALS = {"test-api-key": "sandbox-api-key", "test-secret": "sandbox-secret"}


def addressed_to_emr(payload: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in payload["Meta"].items() if k not in ("Source", "Logs")}
    return {**payload, "Meta": {**meta, "Destinations": [{"ID": REDOX_EMR}]}}


@pytest.mark.parametrize("path", DOCS, ids=[p.stem for p in DOCS])
def test_every_docs_sample_is_accepted(authed: httpx.Client, path: Path) -> None:
    payload = addressed_to_emr(json.loads(path.read_text()))
    model, event = payload["Meta"]["DataModel"], payload["Meta"]["EventType"]
    if not catalog.is_known(model, event):
        pytest.skip(f"{model}.{event} is not in SPEC section 6")
    r = authed.post("/endpoint", json=payload)
    body = r.json()
    if catalog.is_query(model, event) and r.status_code == 400:
        # A query the synthetic EHR cannot answer is a destination failure, as Redox reports it.
        assert {(e["Type"], e["Module"]) for e in body["Meta"]["Errors"]} == {("transmission", "Send")}
        return
    assert r.status_code == 200, body
    assert body["Meta"]["Destinations"] == [{"ID": REDOX_EMR, "Name": "Redox EMR"}]
    assert len(body["Meta"]["Logs"]) == 1
    if not catalog.is_query(model, event):
        assert {k: v for k, v in body.items() if k != "Meta"} == {k: v for k, v in payload.items() if k != "Meta"}


def interactions() -> list[Any]:
    found = []
    for path in CASSETTES:
        name = str(path.relative_to(SHARED / "recordings" / "2020-sandbox"))
        for i, interaction in enumerate(yaml.safe_load(path.read_text())["http_interactions"]):
            if (name, i) not in NOT_REDOX:
                found.append(pytest.param(interaction, id=f"{name}#{i}"))
    return found


@pytest.mark.parametrize("interaction", interactions())
def test_recorded_sandbox_traffic_replays_alike(client: httpx.Client, token: str, interaction: dict[str, Any]) -> None:
    request, recorded = interaction["request"], interaction["response"]
    path = httpx.URL(request["uri"]).path
    headers = {k: v[0] for k, v in request["headers"].items() if k.lower() not in ("content-length", "user-agent")}
    if "Authorization" in headers:
        headers["Authorization"] = f"Bearer {token}"
    body = request["body"]
    content = base64.b64decode(body["base64_string"]) if "base64_string" in body else body["string"].encode()
    if path == "/auth/authenticate":
        sent = json.loads(content)
        content = json.dumps({k: CREDENTIALS.get(v, v) for k, v in sent.items()}).encode()
    elif path == "/endpoint":
        content = json.dumps(addressed_to_emr(json.loads(content))).encode()
    r = client.post(path, content=content, headers=headers)

    assert r.status_code == recorded["status"]["code"], r.text
    wanted = {k.lower(): v[0] for k, v in recorded["headers"].items()}
    assert r.headers["content-type"] == wanted["content-type"]
    for name in ("cache-control", "x-frame-options", "strict-transport-security", "x-content-type-options"):
        assert r.headers.get(name) == wanted.get(name), name
    if "string" in recorded["body"] and wanted["content-type"].startswith("application/json"):
        real, ours = json.loads(recorded["body"]["string"].replace("<%= DateTime.now + 1 %>", "x")), r.json()
        assert set(real) <= set(ours)
        real_errors = real.get("Meta", {}).get("Errors", [])
        assert [(e["Type"], e["Module"]) for e in real_errors] == [
            (e["Type"], e["Module"]) for e in ours.get("Meta", {}).get("Errors", [])]
    elif recorded["status"]["code"] == 401:
        # One cassette's body was edited after recording; its content-length (15) kept the truth.
        assert r.text == "Invalid request"
        assert int(wanted["content-length"]) == len(r.content)
