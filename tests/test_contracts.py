"""Data-model contracts: the committed schemas, and validation through the real HTTP app (issue 3)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from emulator import catalog
from emulator.contracts import generate, payloads, schemas
from emulator.contracts.validator import _expected
from emulator.server import Server
from tests.conftest import REDOX_EMR

EVENTS = [(m, e) for m, events in catalog.DATA_MODELS.items() for e in events]
IDS = [f"{m}.{e}" for m, e in EVENTS]
# Not modelled by the `redox` package: permissive contracts (Meta checked only), see contracts/README.md.
PERMISSIVE = {("Claim", "Submission"), ("Claim", "Payment"), ("Enrichment", "NaturalLanguageProcessingQuery"),
              ("Enrichment", "NaturalLanguageProcessingQueryResponse")}


def test_committed_schemas_are_what_the_generator_writes() -> None:
    files = generate.generate()
    assert sorted(files) == sorted(p.name for p in schemas.BUNDLED.glob("*.json"))
    stale = [name for name, text in files.items() if (schemas.BUNDLED / name).read_text(encoding="utf-8") != text]
    assert stale == [], "run `make contracts`"


def test_every_event_type_has_a_contract_and_only_unmodelled_ones_are_permissive() -> None:
    contracts = payloads.bundled()
    assert set(contracts) == set(EVENTS)
    assert {key for key, c in contracts.items() if c.permissive} == PERMISSIVE
    readme = (schemas.BUNDLED.parent / "README.md").read_text(encoding="utf-8")
    assert all(f"{m}.{e}" in readme for m, e in PERMISSIVE)


def sendable(model: str, event: str, seed: int = 0) -> dict[str, Any]:
    payload = payloads.build(model, event, seed=seed)
    payload["Meta"] = {k: v for k, v in payload["Meta"].items() if k not in ("Source", "Logs")}
    payload["Meta"]["Destinations"] = [{"ID": REDOX_EMR}]
    return payload


def _walk(value: Any, schema: dict[str, Any], path: list[str | int]) -> Any:
    """(path, schema) of every value in the payload, depth first, Meta last."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key in sorted(value, key=lambda k: k == "Meta"):
            if key in props:
                yield [*path, key], props[key], schema
                yield from _walk(value[key], props[key], [*path, key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _walk(item, schema["items"], [*path, i])


def dotted(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _at(payload: dict[str, Any], path: list[str | int]) -> Any:
    for part in path[:-1]:
        payload = payload[part]  # type: ignore[index]
    return payload


def errors_of(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 400, r.text
    found: list[dict[str, Any]] = r.json()["Meta"]["Errors"]
    assert all((e["Type"], e["Module"]) == ("message", "DataModels") for e in found), found
    return found


@pytest.mark.parametrize(("model", "event"), EVENTS, ids=IDS)
def test_a_removed_required_field_is_rejected_with_its_text_and_path(authed: httpx.Client, model: str,
                                                                     event: str) -> None:
    payload = sendable(model, event)
    schema = payloads.bundled()[model, event].schema
    required = [p for p, _, parent in _walk(payload, schema, []) if p[-1] in (parent.get("required") or ())
                and p != ["Meta"] and p[0] != "Meta"] or [["Meta", "EventType"]]
    path = required[-1]  # the deepest one the generator filled
    del _at(payload, path)[path[-1]]
    [error] = errors_of(authed.post("/endpoint", json=payload))
    where = "" if path[0] == "Meta" else f" in {model}:{event}"
    assert error["Text"] == f"Required field missing - {dotted(path)}{where}"
    assert error["Path"] == f"$.{dotted(path)}"


@pytest.mark.parametrize(("model", "event"), EVENTS, ids=IDS)
def test_a_wrong_type_is_rejected_with_its_text_and_path(authed: httpx.Client, model: str, event: str) -> None:
    payload = sendable(model, event)
    schema = payloads.bundled()[model, event].schema
    # The first field of the event's own sections (Meta.Test when it has none) gets a boolean, or text.
    path, sub, _ = next((p, s, parent) for p, s, parent in _walk(payload, schema, []) if p[0] != "Meta"
                        or p == ["Meta", "Test"])
    wrong: Any = "yes" if "boolean" in sub["type"] else True
    _at(payload, path)[path[-1]] = wrong
    [error] = errors_of(authed.post("/endpoint", json=payload))
    found = "a string" if wrong == "yes" else "a boolean"
    assert error["Text"] == (f"Wrong type - {dotted(path)} in {model}:{event}: expected {_expected(sub['type'])}, "
                             f"found {found}")
    assert error["Path"] == f"$.{dotted(path)}"


@pytest.mark.parametrize(("model", "event"), EVENTS, ids=IDS)
def test_an_unknown_event_type_is_rejected_with_its_text_and_path(authed: httpx.Client, model: str,
                                                                 event: str) -> None:
    payload = sendable(model, event)
    payload["Meta"]["EventType"] = event + "Typo"
    r = authed.post("/endpoint", json=payload)
    [error] = errors_of(r)
    assert error["Text"].startswith(f'Unknown EventType "{event}Typo" for DataModel {model}. Did you mean "{event}"?')
    assert error["Path"] == "$.Meta.EventType"


def test_several_problems_are_several_entries_sorted_by_path(authed: httpx.Client) -> None:
    payload = sendable("Device", "New")
    del payload["Device"]["ID"]
    payload["Observations"][0]["Value"] = {"x": 1}
    found = errors_of(authed.post("/endpoint", json=payload))
    assert [(e["Text"], e["Path"]) for e in found] == [
        ("Required field missing - Device.ID in Device:New", "$.Device.ID"),
        ("Wrong type - Observations[0].Value in Device:New: expected a string or a number, found an object",
         "$.Observations[0].Value"),
    ]
    assert len({e["ID"] for e in found}) == 2


def test_a_rejected_payload_is_logged_as_failed_with_its_errors(authed: httpx.Client) -> None:
    payload = sendable("Device", "New")
    del payload["Device"]["ID"]
    errors_of(authed.post("/endpoint", json=payload))
    [log] = authed.get("/__emulator/logs").json()["payload"]["logs"]
    assert log["status"] == "FAILED"


def test_queries_are_validated_too(authed: httpx.Client) -> None:
    payload = sendable("PatientSearch", "Query")
    payload["Patient"] = ["not", "an", "object"]
    [error] = errors_of(authed.post("/query", json=payload))
    assert error["Path"] == "$.Patient"


def test_null_for_optional_fields_passes_and_for_required_ones_is_missing(authed: httpx.Client) -> None:
    payload = sendable("Device", "New")
    payload["Meta"].update(FacilityCode=None, Message={"ID": 5565}, Transmission={"ID": 12414})
    payload["Visit"] = None
    payload["Observations"][0]["Units"] = None
    assert authed.post("/endpoint", json=payload).status_code == 200
    payload["Device"]["ID"] = None
    [error] = errors_of(authed.post("/endpoint", json=payload))
    assert error["Text"] == "Required field missing - Device.ID in Device:New"


# -- modes -------------------------------------------------------------------------------------------

def with_unknown_field() -> dict[str, Any]:
    payload = sendable("PatientAdmin", "NewPatient")
    payload["Patient"]["Demographic"] = {"FirstName": "Ada"}
    return payload


def test_redox_mode_lets_unknown_fields_and_numbers_for_strings_through(authed: httpx.Client) -> None:
    payload = with_unknown_field()
    payload["Patient"]["Demographics"]["Address"]["ZIP"] = 53703
    assert authed.post("/endpoint", json=payload).status_code == 200


def test_strict_mode_rejects_unknown_fields_and_numbers_for_strings(authed: httpx.Client, emulator: Server) -> None:
    emulator.sandbox.contracts.mode = "strict"
    payload = with_unknown_field()
    payload["Patient"]["Demographics"]["Address"]["ZIP"] = 53703
    found = errors_of(authed.post("/endpoint", json=payload))
    assert [e["Text"] for e in found] == [
        "Unknown field - Patient.Demographic in PatientAdmin:NewPatient. Did you mean \"Demographics\"?",
        "Wrong type - Patient.Demographics.Address.ZIP in PatientAdmin:NewPatient: expected a string or null, "
        "found a number",
    ]
    assert authed.post("/endpoint", json=sendable("PatientAdmin", "NewPatient")).status_code == 200


def test_off_mode_checks_no_contract_and_reset_restores_the_configured_mode(authed: httpx.Client,
                                                                           emulator: Server) -> None:
    payload = sendable("Device", "New")
    del payload["Device"]
    emulator.sandbox.contracts.mode = "off"
    assert authed.post("/endpoint", json=payload).status_code == 200
    emulator.sandbox.reset()  # also forgets tokens: ask the validator itself
    assert emulator.sandbox.contracts.mode == "redox"
    assert emulator.sandbox.contracts.problems(payload, "Device", "New") != []


def test_an_unknown_mode_is_refused() -> None:
    validator = payloads.bundled()
    from emulator.contracts.validator import ContractValidator

    with pytest.raises(ValueError, match="redox, strict, off"):
        ContractValidator(validator, "lenient")


def test_strict_schema_leaves_the_published_one_alone() -> None:
    contract = payloads.bundled()["Device", "New"]
    before = copy.deepcopy(contract.schema)
    from emulator.contracts import relax

    strict = relax.strict(contract.schema)
    assert contract.schema == before
    assert strict["properties"]["Device"]["additionalProperties"] is False


def test_each_missing_field_is_named_once() -> None:
    """jsonschema reports a `required` once per missing field; each Meta.Errors entry must still be unique."""
    from emulator.contracts import schemas
    from emulator.contracts.validator import ContractValidator

    payload = {"Meta": {"DataModel": "Notes", "EventType": "New"}, "Visit": {},
               "Patient": {"Identifiers": [{"ID": "1", "IDType": "MR"}]},
               "Note": {"ContentType": "Plain Text", "FileContents": "x"}}
    texts = [p.text for p in ContractValidator(schemas.load()).problems(payload, "Notes", "New")]
    assert texts == [f"Required field missing - Note.{name} in Notes:New"
                     for name in ("DocumentID", "DocumentType", "Provider")]
