"""FHIR notifications to a webhook (FHIR.md 5): message Bundles through the delivery queue, against a
real receiver on a real socket; every Bundle checked against FHIR R4 with fhirclient's models."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhirclient.models.bundle import Bundle
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from emulator import catalog
from emulator.contracts import payloads
from emulator.errors import ConfigError
from emulator.fhir import notifications, r4
from emulator.server import Server
from emulator.settings import Destination, Settings, load, parse_destination
from tests.conftest import REDOX_EMR, event
from tests.receiver import Received, Receiver
from tests.test_delivery import advance, eventually, failures, get_log

FHIR_ID = "5c0e7a1d-3b9f-4d62-8a17-2f4e6b8c9d01"
LIGHT_ID = "light-hook"
TOKEN = "fhir-hook-token"
BASE = "/fhir/R4/redox-fhir-sandbox/Development"
EHR_SOURCE = ("af394f14-b34a-464f-8d24-895f370af4c9", "Redox EMR")


@pytest.fixture
def webhook_server(hook: Receiver) -> Iterator[Server]:
    """conftest's `api` client talks to this one: the default destination and a FHIR webhook at `hook`."""
    destinations = (Destination(), Destination(id=FHIR_ID, name="FHIR app", url=hook.url, format="fhir",
                                               verification_token=TOKEN))
    with Server(Settings(db=":memory:", port=0, delivery_timeout=2.0, destinations=destinations)) as server:
        yield server



def valid(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Bundle, once fhirclient's R4 models (strict) and our R4 code checks accept it and every entry."""
    Bundle(bundle, strict=True)
    for entry in bundle["entry"]:
        assert r4.problems(entry["resource"], strict=True) == [], entry["resource"]
    return bundle


def header(bundle: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "MessageHeader"
    return first


def mrn_of(bundle: dict[str, Any]) -> str:
    [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    return str(next(i["value"] for i in patient["identifier"] if i["type"]["coding"][0]["code"] == "MR"))


def arrival(mrn: str, destinations: list[str]) -> dict[str, object]:
    return event("PatientAdmin", "Arrival", destinations=destinations,
                 Patient={"Identifiers": [{"ID": mrn, "IDType": "MR"}],
                          "Demographics": {"FirstName": "Ann", "LastName": "Lee", "DOB": "1980-02-03",
                                           "Sex": "Female"}},
                 Visit={"VisitNumber": f"V{mrn}", "VisitDateTime": "2031-06-02T15:00:00.000Z",
                        "PatientClass": "Inpatient", "Location": {"Facility": "Capitol Heart Center"}})


def send_arrivals(api: httpx.Client, mrns: list[str]) -> list[str]:
    ids = []
    for mrn in mrns:
        r = api.post("/endpoint", json=arrival(mrn, [FHIR_ID]))
        assert r.status_code == 200, r.text
        ids.append(r.json()["Meta"]["Logs"][0]["ID"])
    return ids


def bundles(received: list[Received]) -> list[dict[str, Any]]:
    return [r.json() for r in received]


# ---- the Bundle a client's event becomes -----------------------------------------------------------

def test_a_clients_event_reaches_the_fhir_webhook_as_a_detailed_message_bundle(hook: Receiver,
                                                                              api: httpx.Client) -> None:
    [log_id] = send_arrivals(api, ["N100"])
    [got] = hook.wait_for(1)
    assert got.headers["content-type"] == "application/fhir+json"
    assert got.headers["verification-token"] == TOKEN
    bundle = valid(got.json())
    assert bundle["type"] == "message" and "Meta" not in bundle
    head = header(bundle)
    assert head["eventUri"] == "https://fhir.redoxengine.com/EventDefinition/PatientAdminPatientArrived"
    assert head["definition"] == "https://fhir.redoxengine.com/MessageDefinition/PatientAdminPatientArrivedFull"
    assert head["source"] == {"name": "Redox Dev Tools",  # the client's source sent it
                              "endpoint": "urn:uuid:7ce6f387-c33c-417d-8682-81e83628cbd9"}
    assert bundle["entry"][0]["fullUrl"] == f"urn:uuid:{head['id']}"
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"][1:]}
    assert all(u.startswith("urn:uuid:") for u in urls)
    focus = [urls[f["reference"]] for f in head["focus"]]  # every focus is an entry of the Bundle
    assert [r["resourceType"] for r in focus] == ["Patient", "Encounter"]
    assert focus[1]["identifier"][0]["value"] == "VN100" and focus[1]["class"]["code"] == "IMP"
    assert focus[1]["subject"]["reference"] == f"Patient/{focus[0]['id']}"
    assert mrn_of(bundle) == "N100"
    log = eventually(lambda: (entry := get_log(api, log_id))["status"] == "SUCCEEDED" and entry)
    assert (log["dataModel"], log["eventType"]) == ("FHIR.Message.PatientAdmin", "patient-arrived")


def test_notifications_arrive_in_order_and_survive_an_outage_with_the_same_bundle(hook: Receiver,
                                                                               api: httpx.Client) -> None:
    hook.script(500, 503)
    mrns = [f"N2{i:02}" for i in range(5)]
    send_arrivals(api, mrns)
    failures(api, FHIR_ID, count=2)  # the first failure is retried at once, the second waits 10 s
    advance(api, 10)
    got = hook.wait_for(7)
    assert [(mrn_of(b), r.status) for b, r in zip(bundles(got), got, strict=True)] == [
        ("N200", 500), ("N200", 503), ("N200", 200), *((m, 200) for m in mrns[1:])]
    assert got[0].body == got[1].body == got[2].body  # a redelivery is the same Bundle, byte for byte
    assert len({b["id"] for b in bundles(got)}) == 5


def test_filter_logs_by_the_notification_name(hook: Receiver, api: httpx.Client) -> None:
    send_arrivals(api, ["N300"])
    hook.wait_for(1)
    r = api.get("/__emulator/logs", params={"dataModel": "FHIR.Message.PatientAdmin", "eventType": "patient-arrived"})
    assert r.status_code == 200
    assert [entry["destination"]["ID"] for entry in r.json()["payload"]["logs"]] == [FHIR_ID]


def test_an_event_without_a_notification_is_refused_for_a_fhir_destination(api: httpx.Client) -> None:
    r = api.post("/endpoint", json=event("Order", "GroupedOrders", destinations=[FHIR_ID]))
    assert r.status_code == 400
    text = r.json()["Meta"]["Errors"][0]["Text"]
    assert "FHIR notifications" in text and "Order.GroupedOrders" in text


def test_a_json_and_a_fhir_destination_each_get_their_format(hook: Receiver, api: httpx.Client) -> None:
    with Receiver() as plain:
        r = api.post("/__emulator/destinations", json={"id": "plain", "name": "Plain", "url": plain.url})
        assert r.status_code == 200, r.text
        r = api.post("/endpoint", json=arrival("N400", [FHIR_ID, "plain"]))
        assert r.status_code == 200
        [as_json] = plain.wait_for(1)
        [as_fhir] = hook.wait_for(1)
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.json()["Meta"]["EventType"] == "Arrival"
    assert header(valid(as_fhir.json()))["eventUri"].endswith("PatientAdminPatientArrived")


# ---- pushes by FHIR name, lightweight -----------------------------------------------------------------

def test_every_notification_type_can_be_pushed_and_is_valid_r4(hook: Receiver, api: httpx.Client) -> None:
    kinds = list(catalog.FHIR_NOTIFICATIONS)
    for model, kind in kinds:
        r = api.post("/__emulator/push", json={"format": "fhir", "DataModel": model, "EventType": kind})
        assert r.status_code == 200, r.text
        [entry] = r.json()["payload"]["logs"]
        assert entry["destination"] == FHIR_ID
    got = hook.wait_for(len(kinds), timeout=30)
    seen = [catalog.fhir_by_uri(valid(b)) for b in bundles(got)]
    assert seen == kinds  # one each, in the order pushed


def test_a_pushed_notification_names_the_patient_the_fhir_api_reads(hook: Receiver, api: httpx.Client) -> None:
    r = api.post("/__emulator/push", json={"format": "fhir", "DataModel": "FHIR.Message.Result",
                                           "EventType": "result-created"})
    assert r.status_code == 200, r.text
    [got] = hook.wait_for(1)
    bundle = valid(got.json())
    [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    read = api.get(f"{BASE}/Patient/{patient['id']}")
    assert read.status_code == 200, read.text
    assert read.json()["identifier"][0]["value"] == patient["identifier"][0]["value"]
    focus = [f["reference"] for f in header(bundle)["focus"]]
    reports = [e for e in bundle["entry"] if e["fullUrl"] in focus]
    assert [e["resource"]["resourceType"] for e in reports] == ["DiagnosticReport"]
    log = get_log(api, r.json()["payload"]["logs"][0]["ID"])
    assert (log["dataModel"], log["eventType"], log["type"]) == ("FHIR.Message.Result", "result-created", "RECEIVE")


def test_a_lightweight_destination_gets_focus_references_only(hook: Receiver, api: httpx.Client) -> None:
    with Receiver() as light:
        r = api.post("/__emulator/destinations", json={
            "id": LIGHT_ID, "name": "Light", "url": light.url, "format": "fhir", "notifications": "lightweight",
            "subscriptions": {"FHIR.Message.Scheduling": ["appointment-booked"]}})
        assert r.status_code == 200, r.text
        assert r.json()["payload"]["destination"]["notifications"] == "lightweight"
        r = api.post("/__emulator/push", json={"format": "fhir", "DataModel": "FHIR.Message.Scheduling",
                                               "EventType": "appointment-booked", "count": 2})
        assert r.status_code == 200, r.text
        assert sorted(e["destination"] for e in r.json()["payload"]["logs"]) == sorted([FHIR_ID, LIGHT_ID] * 2)
        r = api.post("/__emulator/push", json={"format": "fhir", "DataModel": "FHIR.Message.Scheduling",
                                               "EventType": "appointment-cancelled"})
        assert [e["destination"] for e in r.json()["payload"]["logs"]] == [FHIR_ID]  # not subscribed to it
        got = light.wait_for(2)
    for bundle in bundles(got):
        valid(bundle)
        assert len(bundle["entry"]) == 1 and bundle["timestamp"]
        head = header(bundle)
        assert head["definition"].endswith("/AppointmentBookedLightweight")
        [focus] = head["focus"]
        assert focus["reference"].startswith("Appointment/") and focus["type"] == "Appointment"
        assert focus["identifier"]["value"]  # the VisitNumber


def test_push_cli_with_format_fhir(hook: Receiver, webhook_server: Server) -> None:
    from click.testing import CliRunner

    from emulator.cli import main

    result = CliRunner().invoke(main, ["push", "patient-discharged", "--format", "fhir", "--count", "2",
                                       "--url", webhook_server.url])
    assert result.exit_code == 0, result.output
    got = hook.wait_for(2)
    assert {catalog.fhir_by_uri(valid(b)) for b in bundles(got)} == {("FHIR.Message.PatientAdmin",
                                                                      "patient-discharged")}
    result = CliRunner().invoke(main, ["push", "patient-exploded", "--format", "fhir", "--url", webhook_server.url])
    assert result.exit_code != 0 and "unknown FHIR notification" in result.output


# ---- bad input: 4xx, never a 500 -----------------------------------------------------------------------

@pytest.mark.parametrize(("body", "words"), [
    ({"format": "xml"}, 'format must be "json"'),
    ({"format": "fhir", "notifications": "medium"}, 'notifications must be "detailed" or "lightweight"'),
    ({"notifications": "lightweight"}, "notifications is for a destination with format: fhir"),
    ({"format": "fhir", "url": None}, "format: fhir is for a webhook destination"),
    ({"format": "fhir", "subscriptions": {"PatientAdmin": ["Arrival"]}}, "FHIR.Message.PatientAdmin"),
    ({"format": "fhir", "subscriptions": {"FHIR.Message.PatientAdmin": ["patient-arived"]}},
     'Did you mean "patient-arrived"'),
    ({"format": ["fhir"]}, 'format must be "json"'),
])
def test_bad_destination_formats_are_400s(api: httpx.Client, hook: Receiver, body: dict[str, Any],
                                          words: str) -> None:
    r = api.post("/__emulator/destinations?verify=false",
                 json={"id": "bad", "name": "Bad", "url": hook.url, **body})
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]
    assert api.get("/__emulator/destinations/bad").status_code == 404  # nothing registered


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"format": "fhir", "DataModel": "FHIR.Message.PatientAdmin", "EventType": "patient-arived"}, 400,
     'Did you mean "patient-arrived"'),
    ({"format": "fhir", "DataModel": "FHIR.PatientAdmin", "EventType": "patient-arrived"}, 400,
     "unknown FHIR notification DataModel"),
    ({"format": "rss", "DataModel": "PatientAdmin", "EventType": "Arrival"}, 400, 'format must be "json"'),
    ({"format": "fhir", "DataModel": "FHIR.Message.PatientAdmin", "EventType": "patient-arrived",
      "destinations": [REDOX_EMR]}, 400, "not FHIR notifications"),
    ({"DataModel": "Order", "EventType": "GroupedOrders", "destinations": [FHIR_ID]}, 400, "has none"),
])
def test_bad_pushes_are_4xx_and_queue_nothing(api: httpx.Client, hook: Receiver, body: dict[str, Any], status: int,
                                              words: str) -> None:
    r = api.post("/__emulator/push", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert api.get(f"/__emulator/destinations/{FHIR_ID}/queue").json()["meta"]["count"] == 0
    assert hook.deliveries() == []


def test_the_config_file_takes_fhir_destinations(tmp_path: Path) -> None:
    config = tmp_path / "emulator.yaml"
    config.write_text("destinations:\n  - id: app\n    name: App\n    url: http://127.0.0.1:9/hook\n"
                      "    format: fhir\n    notifications: lightweight\n"
                      "    subscriptions: {FHIR.Message.PatientAdmin: all}\n")
    [destination] = load(config).destinations
    assert (destination.format, destination.notifications) == ("fhir", "lightweight")
    assert destination.subscribes("PatientAdmin", "Arrival") and not destination.subscribes("Scheduling", "New")
    config.write_text("destinations:\n  - id: app\n    name: App\n    format: fhir\n")
    with pytest.raises(ConfigError, match="format: fhir is for a webhook destination"):
        load(config)


def test_a_run_time_fhir_destination_is_kept_in_the_store(tmp_path: Path, hook: Receiver) -> None:
    settings = Settings(db=str(tmp_path / "store.db"), port=0)
    with Server(settings) as server, httpx.Client(base_url=server.url) as client:
        r = client.post("/__emulator/destinations?verify=false", json={
            "id": "kept", "name": "Kept", "url": hook.url, "format": "fhir", "notifications": "lightweight"})
        assert r.status_code == 200, r.text
    with Server(settings) as server, httpx.Client(base_url=server.url) as client:
        kept = client.get("/__emulator/destinations/kept").json()["payload"]["destination"]
    assert (kept["format"], kept["notifications"]) == ("fhir", "lightweight")


# ---- the model: any event in, a valid Bundle out --------------------------------------------------------

@pytest.mark.parametrize("notification", list(catalog.FHIR_NOTIFICATIONS))
@pytest.mark.parametrize("detail", ["detailed", "lightweight"])
def test_each_notification_built_from_its_source_event_is_valid_r4(notification: tuple[str, str],
                                                                   detail: str) -> None:
    source = catalog.FHIR_NOTIFICATIONS[notification][1]
    for seed in range(3):
        built = payloads.build(*source, rng=random.Random(seed), now=datetime(2031, 6, 2, tzinfo=UTC))
        bundle = valid(notifications.build(built, notification, detail, EHR_SOURCE, 1.9e9))
        assert catalog.fhir_by_uri(bundle) == notification
        assert header(bundle)["definition"].endswith("Full" if detail == "detailed" else "Lightweight")


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=12)
_SECTIONS = st.dictionaries(st.sampled_from(["Patient", "Visit", "Orders", "Order", "Note", "Transactions",
                                             "Device", "Referral"]), _JSON, max_size=6)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_SECTIONS, st.sampled_from(list(catalog.FHIR_NOTIFICATIONS)), st.sampled_from(["detailed", "lightweight"]))
def test_any_event_makes_a_valid_bundle(sections: dict[str, Any], notification: tuple[str, str], detail: str) -> None:
    valid(notifications.build(sections, notification, detail, ("src", "A source"), 1.9e9))


def test_parse_destination_keeps_old_saved_destinations_readable() -> None:
    """A destination stored before formats existed has no format keys: json, detailed."""
    saved = parse_destination({"id": "old", "name": "Old", "url": "http://127.0.0.1:9/"}, "saved destination")
    assert (saved.format, saved.notifications) == ("json", "detailed")
