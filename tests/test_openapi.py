"""/__emulator/openapi.json is true: schemathesis sends generated requests to every documented operation
of a fresh app and every answer must have a documented status, content type and shape, and no 5xx."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from emulator.settings import Settings
from emulator.web import openapi
from emulator.web.app import create_app

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)


@schemathesis.check
def accepts_what_the_document_allows(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' positive_data_acceptance (ST202): every request the document allows is accepted (2xx,
    or a status that says the state was in the way: 401, 403, 404, 409, 429), so the request bodies say
    what the server takes. Except the synthetic EHR's own answer to a query it cannot serve (400, every
    Meta.Errors entry of Type "transmission", as Redox relays a destination's failure): the request was
    valid and is logged; the EHR's state (no such document) or its needs (a StartDateTime) said no. And a
    FHIR search whose body names a parameter the resource type does not have, or gives one a value that is
    not a string or number (400, an OperationOutcome naming it, as Redox answers): the document keeps a
    search body open, since each resource type's parameters are listed by `metadata`, not here."""
    if response.status_code == 400 and case.path in ("/endpoint", "/query"):
        errors = (response.json().get("Meta") or {}).get("Errors") or []
        if errors and all(e.get("Type") == "transmission" for e in errors):
            return True
    if response.status_code == 400 and (case.path_parameters or {}).get("id") == "_search":
        answer = response.json()
        texts = [str((i.get("details") or {}).get("text", "")) for i in answer.get("issue") or []]
        if answer.get("resourceType") == "OperationOutcome" and texts and all("parameter" in t for t in texts):
            return True
    return positive_data_acceptance(ctx, response, case)  # type: ignore[no-any-return]


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          accepts_what_the_document_allows]
EXAMPLES = 8  # per operation: about 30 operations, a few seconds in all
LOOPBACK_HOOK = "http://127.0.0.1:9/hook"  # the discard port: refused at once, and never off this machine


@pytest.fixture(scope="module")
def app_and_token() -> Iterator[tuple[Any, str]]:
    app = create_app(Settings(db=":memory:", delivery_timeout=0.5, scenarios=()))
    with TestClient(app) as client:
        answer = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                     "client_secret": "sandbox-client-secret"})
        yield app, answer.json()["access_token"]


@pytest.fixture(scope="module")
def api_schema(app_and_token: tuple[Any, str]) -> Any:
    app, _ = app_and_token
    # The stream answers until the client goes: an in-process client would wait for its end forever.
    # Reset forgets the token the other operations carry (they would only ever see 401): tested on its own.
    return (schemathesis.openapi.from_asgi("/__emulator/openapi.json", app)
            .exclude(path="/__emulator/logs/stream").exclude(path="/__emulator/reset"))


def test_every_answer_is_documented(api_schema: Any, app_and_token: tuple[Any, str]) -> None:
    """One hypothesis run per operation (schemathesis' pytest plugin does not run on this pytest); every
    operation is tried, and the failures of all of them are reported together."""
    app, token = app_and_token
    sandbox = app.state.sandbox
    failures: dict[str, str] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)  # the same cases each run: a rare case found by chance must not fail one run in N
        def run(case: Any) -> None:
            if isinstance(case.body, dict) and "url" in case.body:
                case.body["url"] = LOOPBACK_HOOK  # a registered webhook must never point off this machine
            count = case.body.get("count") if isinstance(case.body, dict) else None
            if isinstance(count, int | float) and not isinstance(count, bool):
                # A push of 100,000 events is valid, and slow (a whole float such as 1e4 counts too: a
                # loaded machine then took past the client's 10 s timeout).
                case.body["count"] = min(count, 5)
            headers = {"Authorization": f"Bearer {token}"} if not case.path.startswith("/__emulator") else {}
            try:
                case.call_and_validate(checks=CHECKS, headers=headers)
            finally:
                # A library scenario the fuzz activated (accelerated clocks, pushes on timers, revoked
                # tokens) would act on later cases as real time passes: each case starts without one.
                if case.path == "/__emulator/scenarios":
                    sandbox.scenarios.deactivate()

        try:
            run()
        except Exception as error:  # collected, then reported all at once, with what a flaky one hid
            inner = [*getattr(error, "exceptions", ()), *(e for e in (error.__cause__,) if e is not None)]
            failures[operation.label] = (str(error)[:2000] + "".join(f"\n  {type(e).__name__}: {str(e)[:3000]}"
                                                                     for e in inner))
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_document_is_openapi_3_1_and_covers_every_route(app_and_token: tuple[Any, str]) -> None:
    app, _ = app_and_token
    doc = TestClient(app).get("/__emulator/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    routed = {(route.path, method.lower()) for route in app.routes if hasattr(route, "methods")
              for method in route.methods or () if method != "HEAD"}
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    # The trailing-slash redirect of the page is the only route left out on purpose.
    assert routed - documented == {("/__emulator/ui/", "get")}
    assert documented - routed == set()
    sandbox = app.state.sandbox  # the document names its contracts, destinations (some made by the fuzz) and library
    assert doc == openapi.document(sandbox.contracts.contracts, sandbox.destinations.all(),
                                   sandbox.base_settings.scenarios_dir)
    assert openapi.document()["paths"].keys() == doc["paths"].keys()


def test_the_event_bodies_are_the_contracts_and_a_payload_of_each_fits_its_own_only(
        app_and_token: tuple[Any, str]) -> None:
    """/endpoint's body is a oneOf over every event type's contract: a payload the generator builds for
    an event type is valid against its own component and no other (Meta's DataModel and EventType decide)."""
    import jsonschema

    from emulator import catalog
    from emulator.contracts import payloads

    doc = openapi.document()
    body = doc["paths"]["/endpoint"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    names = [ref["$ref"].rsplit("/", 1)[1] for ref in body["oneOf"]]
    components = doc["components"]["schemas"]
    assert len(names) == len(set(names)) == sum(len(events) for events in catalog.DATA_MODELS.values())
    query_names = {ref["$ref"].rsplit("/", 1)[1] for ref in
                   doc["paths"]["/query"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]}
    assert len(query_names) == len(catalog.QUERIES)
    for (model, event) in [("PatientAdmin", "NewPatient"), ("Clinical Summary", "PatientQuery"),
                           ("Results", "New"), ("SSO", "Sign-On")]:
        payload = payloads.build(model, event, seed=1)
        payload["Meta"]["Destinations"] = [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9"}]
        fits = [name for name in names if jsonschema.Draft202012Validator(components[name]).is_valid(payload)]
        assert fits == [openapi._event_name(model, event)], (model, event, fits)


def test_a_client_generated_from_the_document_builds_a_new_patient_the_emulator_takes(tmp_path: Path) -> None:
    """datamodel-code-generator, run on the served document as a user would, gives pydantic models; the
    NewPatient built with them is accepted, and they refuse what the contract refuses."""
    import importlib.util

    import pydantic

    client = TestClient(create_app(Settings(db=":memory:", scenarios=())))  # not the fuzzed one
    token = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                "client_secret": "sandbox-client-secret"}).json()["access_token"]
    (tmp_path / "openapi.json").write_text(client.get("/__emulator/openapi.json").text)
    generator = Path(sys.executable).with_name("datamodel-codegen")
    subprocess.run([str(generator), "--input", "openapi.json", "--input-file-type", "openapi",
                    "--output", "redox_models.py", "--output-model-type", "pydantic_v2.BaseModel",
                    "--formatters", "builtin"], cwd=tmp_path, check=True, capture_output=True, timeout=600)
    spec = importlib.util.spec_from_file_location("redox_models", tmp_path / "redox_models.py")
    assert spec is not None and spec.loader is not None
    models = importlib.util.module_from_spec(spec)
    sys.modules["redox_models"] = models  # pydantic resolves the generated annotations through it
    try:
        spec.loader.exec_module(models)
    finally:
        del sys.modules["redox_models"]
    new_patient = {
        "Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": True,
                 "Destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9"}]},
        "Patient": {"Identifiers": [{"ID": "GEN-1", "IDType": "MR"}],
                    "Demographics": {"FirstName": "Grace", "LastName": "Hopper", "DOB": "1906-12-09"}}}
    built = models.PatientAdminNewPatient.model_validate(new_patient)
    sent = built.model_dump(mode="json", by_alias=True, exclude_none=True)
    answer = client.post("/endpoint", json=sent, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["Meta"]["Logs"][0]["ID"]
    with pytest.raises(pydantic.ValidationError):  # the contract requires Patient
        models.PatientAdminNewPatient.model_validate({"Meta": new_patient["Meta"]})
    with pytest.raises(pydantic.ValidationError):  # and this event type's Meta
        models.PatientAdminNewPatient.model_validate({**new_patient, "Meta": {**new_patient["Meta"],
                                                                              "EventType": "Arrival"}})
