"""The pytest plugin, through pytester: the fixture, the marker, xdist isolation, scenario files as tests."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]


def test_fixture_gives_a_fresh_emulator_with_helpers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        import httpx, pytest

        def post(emulator, mrn):
            body = {"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": True,
                             "Destinations": [{"ID": emulator.destination_id}]},
                    "Patient": {"Identifiers": [{"ID": mrn, "IDType": "MR"}],
                                "Demographics": {"FirstName": "A", "LastName": "B", "DOB": "1990-01-01"}}}
            return httpx.post(emulator.url + "/endpoint", json=body,
                              headers={"Authorization": "Bearer " + emulator.token()})

        def test_first(redox_emulator):
            assert post(redox_emulator, "P-1").status_code == 200
            assert len(redox_emulator.logs(dataModel="PatientAdmin")) == 1

        def test_second_starts_clean(redox_emulator):
            assert redox_emulator.logs() == []
            before = redox_emulator.sandbox.clock.now()
            assert redox_emulator.advance(300) >= before + 300

        @pytest.mark.redox_scenario("token-revocation")
        def test_marker_activates_a_scenario(redox_emulator):
            assert [a.scenario.name for a in redox_emulator.sandbox.scenarios.active] == ["token-revocation"]
            assert post(redox_emulator, "P-2").status_code == 200
            assert post(redox_emulator, "P-3").status_code == 401   # revoked on the 2nd request

        def test_marker_scope_ends_with_the_test(redox_emulator):
            assert redox_emulator.sandbox.scenarios.active == ()

        def test_fhir_urls(redox_emulator):
            assert redox_emulator.fhir_url == redox_emulator.url + "/fhir/R4/redox-fhir-sandbox/Development"
            assert redox_emulator.fhir_base("acme", "Staging") == redox_emulator.url + "/fhir/R4/acme/Staging"
            assert post(redox_emulator, "P-9").status_code == 200
            found = httpx.post(redox_emulator.fhir_url + "/Patient/_search", data={"identifier": "P-9"},
                               headers={"Authorization": "Bearer " + redox_emulator.token()}).json()
            assert found["total"] == 1 and found["entry"][0]["resource"]["name"][0]["family"] == "B"
    """)
    pytester.makefile(".yaml", **{"scenarios/token-revocation": (ROOT / "scenarios/token-revocation.yaml").read_text()})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_xdist_workers_never_see_each_others_traffic(pytester: pytest.Pytester) -> None:
    """Both tests send, then wait for each other (a barrier on files) before reading their journal:
    with one shared emulator each would see the other's request."""
    pytester.makepyfile(test_inner=f"""
        import os, time, httpx, pytest
        BARRIER = {str(pytester.path)!r}

        @pytest.mark.parametrize("mrn", ["WORKER-A", "WORKER-B"])
        def test_isolated(redox_emulator, mrn):
            body = {{"Meta": {{"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": True,
                              "Destinations": [{{"ID": redox_emulator.destination_id}}]}},
                    "Patient": {{"Identifiers": [{{"ID": mrn, "IDType": "MR"}}]}}}}
            r = httpx.post(redox_emulator.url + "/endpoint", json=body,
                           headers={{"Authorization": "Bearer " + redox_emulator.token()}})
            assert r.status_code == 200
            open(os.path.join(BARRIER, mrn), "w").write(redox_emulator.url + " " + os.environ["PYTEST_XDIST_WORKER"])
            deadline = time.time() + 30
            while len([n for n in os.listdir(BARRIER) if n.startswith("WORKER-")]) < 2:
                assert time.time() < deadline, "the other worker never sent"
                time.sleep(0.02)
            sent = [str(e["request"]) for e in redox_emulator.exchanges() if e["path"] == "/endpoint"]
            assert len(sent) == 1 and mrn in sent[0]
    """)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    seen = [(pytester.path / n).read_text().split() for n in ("WORKER-A", "WORKER-B")]
    assert seen[0][1] != seen[1][1], "both tests ran on one worker: the barrier proved nothing"
    assert seen[0][0] != seen[1][0], "two workers shared one emulator"


def test_scenario_files_become_contract_tests(pytester: pytest.Pytester) -> None:
    client = ROOT / "tests" / "clients" / "redox_client.py"
    describe = pytester.makefile(".yaml", **{"redox-client": f"""
        send: python3 {client} send
        serve: python3 {client} serve --port {{port}}
        webhook_url: http://127.0.0.1:{{port}}/redox
        ready_url: http://127.0.0.1:{{port}}/health
        probe: python3 {client} probe
        timeout: 5
        env: {{CLIENT_FAULT: '{{fault}}'}}
    """})
    for name in ("send-basics", "webhook-handshake"):
        pytester.makefile(".yaml", **{f"scenarios/{name}": (ROOT / "contracts/scenarios" / f"{name}.yaml").read_text()})
    describe.write_text(describe.read_text().replace("{fault}", "bad-handshake"))
    result = pytester.runpytest_subprocess("--redox-client", str(describe), "scenarios", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*answers-the-handshake: verification handshake failed*"])


def test_fhir_contracts_run_for_a_fhir_client_and_are_skipped_for_others(pytester: pytest.Pytester) -> None:
    client = ROOT / "tests" / "clients" / "redox_client.py"
    for apis in ("[data-model, fhir]", "[data-model]"):
        pytester.makefile(".yaml", **{f"client-{len(apis)}": f"""
            send: python3 {client} send
            probe: python3 {client} probe
            timeout: 5
            apis: {apis}
        """})
    for name in ("fhir-writeback-rejected", "fhir-paging"):
        pytester.makefile(".yaml", **{f"scenarios/{name}": (ROOT / "scenarios" / f"{name}.yaml").read_text()})
    both = pytester.runpytest_subprocess("--redox-client", str(pytester.path / "client-18.yaml"), "scenarios",
                                         "-p", "no:cacheprovider")
    both.assert_outcomes(passed=2)
    data_model = pytester.runpytest_subprocess("--redox-client", str(pytester.path / "client-12.yaml"), "scenarios",
                                               "-p", "no:cacheprovider", "-rs")
    data_model.assert_outcomes(skipped=2)
    data_model.stdout.fnmatch_lines(["*not fhir (client.yaml `apis`)*"])
