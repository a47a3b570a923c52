#!/usr/bin/env python3
"""A reference Redox client for the contract-test harness: standard library only.

    redox_client.py send  [--fault NAME]    authenticate, send a batch, search, order, a large note;
                                            with REDOX_API=fhir: $match, an Observation writeback, a paged search
    redox_client.py serve --port N [--fault NAME]   the webhook receiver
    redox_client.py probe                   what the client processed, as JSON

Correct by default; `--fault NAME` (or CLIENT_FAULT) breaks one contract on purpose, so that the
harness can show it catches it (see FAULTS). State lives in REDOX_HARNESS_WORKDIR (default: cwd).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FAULTS = {
    "no-reauth": "never re-authenticates after a 401",
    "expire-mid-batch": "lets the token expire mid-batch: gets a new token but loses the refused event",
    "retry-4xx": "retries a 400 (any 4xx but 401 and 429) forever",
    "no-test-flag": "omits Meta.Test",
    "double-process": "processes a redelivered event twice",
    "no-token-check": "accepts pushes without checking verification-token",
    "bad-handshake": "fails the verification handshake (no challenge in the answer)",
    "first-match": "takes the first of several patient matches",
    "ignore-rejection": "ignores an order rejection",
    "slow-ack": "acknowledges slower than Redox's timeout",
    "retry-5xx": "retries a 5xx or 504 five times, at once",
    "first-page-only": "reads the first page of a FHIR search and stops",
    "restart-search": "after a 401 between pages, starts the FHIR search again from the first page",
}
FHIR_JSON = "application/fhir+json"
MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
SLOW_ACK = 1.2  # seconds; the webhook-ack contract allows 1
MAX_BACKOFF = float(os.environ.get("CLIENT_MAX_BACKOFF", "0.05"))  # caps Retry-After: emulated minutes are not ours
WORK = Path(os.environ.get("REDOX_HARNESS_WORKDIR", "."))


def env(name: str) -> str:
    return os.environ[name]


# ---- send --------------------------------------------------------------------------------------
class Sender:
    def __init__(self, fault: str | None) -> None:
        self.fault = fault
        self.token: str | None = None
        self.state: dict[str, Any] = {"orders": {}, "sent": [], "failed": []}

    def authenticate(self) -> None:
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": env("REDOX_CLIENT_ID"),
                                       "client_secret": env("REDOX_CLIENT_SECRET")}).encode()
        for _ in range(4):
            status, body, headers = http("POST", env("REDOX_TOKEN_URL"), form,
                                         {"Content-Type": "application/x-www-form-urlencoded"})
            if status == 429:
                time.sleep(min(float(headers.get("Retry-After") or 1), MAX_BACKOFF))
                continue
            if status == 200:
                self.token = body["access_token"]
            return

    def event(self, model: str, event_type: str, **sections: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"DataModel": model, "EventType": event_type,
                                "Destinations": [{"ID": env("REDOX_DESTINATION_ID")}]}
        if self.fault != "no-test-flag":
            meta["Test"] = True
        return {"Meta": meta, **sections}

    def send(self, payload: dict[str, Any]) -> tuple[int, Any]:
        raw = json.dumps(payload).encode()
        reauthenticated, busy, failed = False, 0, 0
        while True:
            status, body, headers = http("POST", env("REDOX_API_URL"), raw, {
                "Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
            if status == 401 and self.fault != "no-reauth" and not reauthenticated:
                self.authenticate()
                reauthenticated = True
                if self.fault == "expire-mid-batch":
                    return status, body  # the refused event is lost
                continue
            if status == 429 and busy < 3:
                busy += 1
                time.sleep(min(float(headers.get("Retry-After") or 1), MAX_BACKOFF))
                continue
            if (status == 0 or status >= 500) and failed < (5 if self.fault == "retry-5xx" else 1):
                failed += 1
                time.sleep(0 if self.fault == "retry-5xx" else 0.05)
                continue
            if self.fault == "retry-4xx" and 400 <= status < 500 and status not in (401, 429):
                time.sleep(0.02)
                continue
            kind = f"{payload['Meta']['DataModel']}.{payload['Meta']['EventType']}"
            (self.state["sent"] if 200 <= status < 300 else self.state["failed"]).append([kind, status])
            return status, body

    def run(self) -> None:
        self.authenticate()
        for i in range(1, 5):
            self.send(self.event("PatientAdmin", "NewPatient", Patient={
                "Identifiers": [{"ID": f"CLIENT-{i:04d}", "IDType": "MR"}],
                "Demographics": {"FirstName": "Test", "LastName": f"Patient{i}", "DOB": "1990-01-01"}}))
        status, found = self.send(self.event("PatientSearch", "Query", Patient={
            "Demographics": {"FirstName": "Jordan", "LastName": "Rivera", "DOB": "1979-05-04"}}))
        if status == 200 and isinstance(found, dict):
            patient = found.get("Patient") or {}
            matches = found.get("PotentialMatches") or []
            if not patient.get("Identifiers") and matches and self.fault == "first-match":
                patient = matches[0]
            if patient.get("Identifiers"):
                self.send(self.event("PatientAdmin", "PatientUpdate", Patient={
                    "Identifiers": patient["Identifiers"],
                    "Demographics": {**(patient.get("Demographics") or {}), "EmailAddresses": ["jr@example.org"]}}))
        mrn = {"Identifiers": [{"ID": "0000000001", "IDType": "MR"}]}
        status, _ = self.send(self.event("Order", "New", Patient=mrn, Order={
            "ID": "ORD-85025", "Procedure": {"Code": "85025", "Codeset": "CPT", "Description": "CBC"}}))
        placed = 200 <= status < 300 or self.fault == "ignore-rejection"
        self.state["orders"]["ORD-85025"] = {"status": "placed" if placed else "rejected" if status == 400
                                             else "unknown"}
        self.send(self.event("Notes", "New", Patient={"Identifiers": [{"ID": "0000000001", "IDType": "MR"}]},
                             Visit={}, Note={"ContentType": "Plain Text", "FileContents": "x" * 70_000,
                                             "DocumentType": "Progress Note", "DocumentID": "DOC-1",
                                             "Provider": {"ID": "P1"}}))
        (WORK / "send-state.json").write_text(json.dumps(self.state))


# ---- send, FHIR mode (REDOX_API=fhir) -------------------------------------------------------------
class FhirSender(Sender):
    """The same day's work through Redox's FHIR API at REDOX_FHIR_URL (docs/clients.md#fhir-contracts)."""

    def __init__(self, fault: str | None) -> None:
        super().__init__(fault)
        self.base = env("REDOX_FHIR_URL")
        self.state = {"fhir": {}}

    def call(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        """One FHIR request with the rules for 401, 429 and 5xx; the same bytes on every resend."""
        raw = None if body is None else json.dumps(body).encode()
        reauthenticated, busy, failed = False, 0, 0
        while True:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": FHIR_JSON}
            if raw is not None:
                headers["Content-Type"] = FHIR_JSON
            status, answer, got = http(method, url, raw, headers)
            if status == 401 and self.fault != "no-reauth" and not reauthenticated:
                self.authenticate()
                reauthenticated = True
                if self.fault in ("expire-mid-batch", "restart-search"):
                    return status, answer  # gives the request up (restart-search: the caller starts over)
                continue
            if status == 429 and busy < 3:
                busy += 1
                time.sleep(min(float(got.get("Retry-After") or 1), MAX_BACKOFF))
                continue
            if (status == 0 or status >= 500) and failed < (5 if self.fault == "retry-5xx" else 1):
                failed += 1
                time.sleep(0 if self.fault == "retry-5xx" else 0.05)
                continue
            if self.fault == "retry-4xx" and 400 <= status < 500 and status not in (401, 429) and failed < 5:
                failed += 1
                continue
            return status, answer

    def run(self) -> None:
        self.authenticate()
        patient = self.match()
        if patient is not None:
            self.write_observation(patient)
        self.roster()
        (WORK / "send-state.json").write_text(json.dumps(self.state))

    def match(self) -> str | None:
        """$match on demographics; the patient's id only when one candidate is certain or probable."""
        status, bundle = self.call("POST", f"{self.base}/Patient/$match", {"resource": {
            "resourceType": "Patient", "name": [{"family": "Bixby", "given": ["Timothy"]}],
            "birthDate": "2008-01-06", "gender": "male"}, "count": 5})
        entries = bundle.get("entry") or [] if status == 200 and isinstance(bundle, dict) else []
        likely = [e for e in entries if grade(e) in ("certain", "probable")]
        if self.fault == "first-match" and entries:
            likely = entries[:1]
        result = "identified" if len(likely) == 1 else "ambiguous" if likely else "none"
        self.state["fhir"]["match"] = {"status": result if status == 200 else "failed", "candidates": len(entries)}
        return str(likely[0]["resource"]["id"]) if result == "identified" else None

    def write_observation(self, patient: str) -> None:
        observation = {"resourceType": "Observation", "id": "heart-rate-1", "status": "final",
                       "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                 "code": "vital-signs"}]}],
                       "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                       "subject": {"reference": f"Patient/{patient}"}, "effectiveDateTime": "2026-12-03T09:00:00Z",
                       "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org",
                                         "code": "/min"}}
        header = {"resourceType": "MessageHeader", "id": "observation-create-1",
                  "eventUri": "https://fhir.redoxengine.com/EventDefinition/ObservationCreate",
                  "source": {"name": "Reference client", "endpoint": env("REDOX_SOURCE_ID")},
                  "focus": [{"reference": "Observation/heart-rate-1"}]}
        bundle = {"resourceType": "Bundle", "type": "message", "timestamp": "2026-12-03T09:00:01Z",
                  "entry": [{"resource": header}, {"fullUrl": "Observation/heart-rate-1", "resource": observation}]}
        status, answer = self.call("POST", f"{self.base}/Observation/$observation-create", bundle)
        filed = 200 <= status < 300 or self.fault == "ignore-rejection"
        record: dict[str, Any] = {"status": "filed" if filed else "rejected" if 400 <= status < 500 else "failed",
                                  "httpStatus": status}
        if not filed and isinstance(answer, dict) and answer.get("resourceType") == "OperationOutcome":
            issue = (answer.get("issue") or [{}])[0]
            record["issue"] = (issue.get("details") or {}).get("text") or issue.get("diagnostics") or ""
        self.state["fhir"]["observation"] = record

    def roster(self) -> None:
        """Every patient, a page at a time: the search, then each page's `next` link until there is none."""
        url, pages, patients, restarts = f"{self.base}/Patient?_count=50", 0, 0, 0
        complete = False
        while url:
            status, page = self.call("GET", url)
            if status == 401 and self.fault == "restart-search" and restarts < 1:
                restarts += 1
                url, pages, patients = f"{self.base}/Patient?_count=50", 0, 0
                continue
            if status != 200 or not isinstance(page, dict):
                break
            pages += 1
            patients += sum(1 for e in page.get("entry") or [] if (e.get("search") or {}).get("mode") == "match")
            url = next((link["url"] for link in page.get("link") or [] if link.get("relation") == "next"), None)
            if url is None:
                complete = True
            elif self.fault == "first-page-only":
                break
        self.state["fhir"]["roster"] = {"pages": pages, "patients": patients, "complete": complete}


def grade(entry: dict[str, Any]) -> str | None:
    for extension in (entry.get("search") or {}).get("extension") or []:
        if extension.get("url") == MATCH_GRADE:
            return str(extension.get("valueCode"))
    return None


def http(method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw, status, got = answer.read(), answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, dict(error.headers)
    except OSError:
        return 0, None, {}
    try:
        return status, json.loads(raw), got
    except ValueError:
        return status, raw.decode(errors="replace"), got


# ---- serve ---------------------------------------------------------------------------------------
class Receiver:
    def __init__(self, fault: str | None) -> None:
        self.fault = fault
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {"patients": {}, "results": {}, "canceled": [], "processed": []}
        self.seen_times: dict[str, str] = {}

    def handshake(self, challenge: str, token: str | None) -> tuple[int, bytes]:
        if token != env("VERIFICATION_TOKEN"):
            return 403, b"wrong verification token"
        if self.fault == "bad-handshake":
            return 200, b"ok"
        return 200, json.dumps({"challenge": challenge}).encode()

    def event(self, body: dict[str, Any], token: str | None) -> tuple[int, bytes]:
        """A delivery: a data-model event, filed once per Meta.Logs ID, or a FHIR notification (a message
        Bundle), filed once per MessageHeader id."""
        if self.fault != "no-token-check" and token != env("VERIFICATION_TOKEN"):
            return 403, b"wrong verification token"
        if self.fault == "slow-ack":
            time.sleep(SLOW_ACK)
        if body.get("resourceType") == "Bundle":
            header = ((body.get("entry") or [{}])[0]).get("resource") or {}
            if header.get("resourceType") != "MessageHeader":
                return 400, b"a notification Bundle starts with its MessageHeader"
            key, file = header.get("id") or body.get("id"), lambda: self.notification(header)
        else:
            meta = body.get("Meta") or {}
            key, file = ((meta.get("Logs") or [{}])[0]).get("ID"), lambda: self.process(meta, body)
        with self.lock:
            if key in self.state["processed"] and self.fault != "double-process":
                return 200, b'{"status": "already processed"}'
            self.state["processed"].append(key)
            file()
            (WORK / "serve-state.json").write_text(json.dumps(self.state))
        return 200, b'{"status": "ok"}'

    def notification(self, header: dict[str, Any]) -> None:
        """Counted per kind, by the eventUri's last segment (PatientAdminPatientArrived)."""
        name = str(header.get("eventUri") or "").rsplit("/", 1)[-1]
        filed = self.state.setdefault("fhir", {}).setdefault("notifications", {})
        filed.setdefault(name, {"count": 0})["count"] += 1

    def process(self, meta: dict[str, Any], body: dict[str, Any]) -> None:
        kind = (meta.get("DataModel"), meta.get("EventType"))
        patient = body.get("Patient") or {}
        mrn = next((i.get("ID") for i in patient.get("Identifiers") or []), None)
        if kind[0] == "Results":
            for order in body.get("Orders") or []:
                entry = self.state["results"].setdefault(order.get("ID"), {"count": 0})
                entry["count"] += 1
        elif kind == ("PatientAdmin", "PatientMerge"):
            for old in patient.get("PreviousIdentifiers") or []:
                self.state["patients"].setdefault(old.get("ID"), {})["mergedInto"] = mrn
        elif kind[0] == "PatientAdmin" and mrn:
            when = str(meta.get("EventDateTime") or "")
            if when >= self.seen_times.get(mrn, ""):  # an older event never overwrites a newer one
                self.seen_times[mrn] = when
                record = self.state["patients"].setdefault(mrn, {})
                record.update({k: v for k, v in (patient.get("Demographics") or {}).items() if k == "LastName"})
        elif kind == ("Order", "Cancel"):
            self.state["canceled"].append((body.get("Order") or {}).get("ID"))


def serve(port: int, fault: str | None) -> None:
    receiver = Receiver(fault)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if "challenge" in query:
                self.answer(*receiver.handshake(query["challenge"][0], (query.get("verification-token") or [None])[0]))
            else:
                self.answer(200, b'{"status": "up"}')

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                self.answer(400, b"not JSON")
                return
            if isinstance(body, dict) and "challenge" in body and "Meta" not in body:
                self.answer(*receiver.handshake(str(body["challenge"]), body.get("verification-token")))
            elif isinstance(body, dict):
                self.answer(*receiver.event(body, self.headers.get("verification-token")))
            else:
                self.answer(400, b"not an event")

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def probe() -> None:
    state: dict[str, Any] = {}
    for name in ("send-state.json", "serve-state.json"):
        path = WORK / name
        if path.exists():
            for key, value in json.loads(path.read_text()).items():  # "fhir" comes from both: merged
                if isinstance(value, dict) and isinstance(state.get(key), dict):
                    state[key] = {**state[key], **value}
                else:
                    state[key] = value
    json.dump(state, sys.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["send", "serve", "probe"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--fault", choices=sorted(FAULTS), default=os.environ.get("CLIENT_FAULT") or None)
    args = parser.parse_args()
    if args.command == "send":
        (FhirSender if os.environ.get("REDOX_API") == "fhir" else Sender)(args.fault).run()
    elif args.command == "serve":
        serve(args.port, args.fault)
    else:
        probe()


if __name__ == "__main__":
    main()
