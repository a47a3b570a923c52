"""The scenario engine: matching, near misses in the journal, state, nth, fail-then-succeed, activation."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from emulator.scenarios.checker import load_text
from emulator.scenarios.matching import RuleIndex, Seen
from emulator.server import Server
from emulator.settings import Settings
from tests.conftest import event


def _activate(client: httpx.Client, text: str) -> None:
    r = client.post("/__emulator/scenarios", content=text, headers={"content-type": "application/yaml"})
    assert r.status_code == 200, r.text


def _last_note(client: httpx.Client) -> dict[str, object]:
    return dict(client.get("/__emulator/exchanges").json()["payload"]["exchanges"][-1]["scenario"])


def test_an_unmatched_request_names_the_closest_rules_and_what_failed(authed: httpx.Client) -> None:
    _activate(authed, """
description: near misses
rules:
  - {name: stat-orders, when: {data_model: Order, event_type: New, json: {"$.Order.Priority": Stat}},
     then: {respond: {status: 500}}}
  - {name: results, when: {data_model: Results, event_type: New}, then: {respond: {status: 500}}}
""")
    r = authed.post("/endpoint", json=event("Order", "New", Order={"ID": "1", "Priority": "Routine"}))
    assert r.status_code == 200  # no rule matched: routed as usual
    note = _last_note(authed)
    assert note["rule"] is None
    closest = note["nearMisses"][0]  # type: ignore[index]
    assert closest["rule"] == "stat-orders" and closest["matchers"] == "2 of 3 matched"
    assert closest["failed"] == ["$.Order.Priority: found 'Routine', expected 'Stat'"]
    log_id = r.json()["Meta"]["Logs"][0]["ID"]
    attempt = authed.get(f"/__emulator/logs/{log_id}").json()["payload"]["log"]["attempts"][0]
    assert attempt["scenario"]["nearMisses"][0]["rule"] == "stat-orders"  # the log entry says it too


def test_state_and_nth_and_fail_then_succeed(authed: httpx.Client) -> None:
    _activate(authed, """
description: flaky EHR
states: [up, down]
rules:
  - name: third-result-takes-it-down
    when: {data_model: Results, event_type: New, nth: 4, state: up}
    then: {goto: down}
  - name: flaky
    when: {data_model: Results, event_type: New, state: up}
    then: {fail: {times: 2, status: 503}}
  - name: down
    when: {state: down}
    then: {respond: {status: 502, error: {text: EHR down, module: Send}}}
""")
    send = event("Results", "New", Orders=[])
    assert [authed.post("/endpoint", json=send).status_code for _ in range(2)] == [503, 503]
    assert authed.post("/endpoint", json=send).status_code == 200  # third: the failures are spent
    assert authed.post("/endpoint", json=send).status_code == 200  # fourth: routed as usual, the state moves
    down = authed.post("/endpoint", json=send)
    assert down.status_code == 502 and down.json()["Meta"]["Errors"][0]["Text"] == "EHR down"


def test_a_scripted_body_and_headers_go_out_as_written(authed: httpx.Client) -> None:
    _activate(authed, """
description: scripted
rules:
  - name: teapot
    when: {headers: {X-Test-Case: teapot}}
    then: {respond: {status: 418, body: {short: and stout}, headers: {X-Scenario: scripted}}}
""")
    r = authed.post("/endpoint", json=event("Results", "New"), headers={"X-Test-Case": "teapot"})
    assert (r.status_code, r.json(), r.headers["x-scenario"]) == (418, {"short": "and stout"}, "scripted")


def test_broken_bodies_posted_to_the_control_plane_get_clear_errors(client: httpx.Client) -> None:
    r = client.post("/__emulator/scenarios", content="description: x\nrules: [{name: r, then: {goto: nowhere}}]\n")
    assert r.status_code == 422 and "<body>:2:" in r.json()["error"] and "unknown state" in r.json()["error"]
    assert client.post("/__emulator/scenarios", content=b"\xff\xfe").status_code == 400
    assert client.post("/__emulator/scenarios", json={"name": "no-such-scenario"}).status_code == 404
    assert client.post("/__emulator/scenarios", content="[1, 2]").status_code == 422
    assert client.delete("/__emulator/scenarios", params={"name": "nothing"}).status_code == 404
    assert client.get("/__emulator/scenarios").json()["payload"]["active"] == []


def test_list_activate_by_name_and_deactivate(client: httpx.Client) -> None:
    listed = client.get("/__emulator/scenarios").json()["payload"]
    assert "token-expiry" in listed["library"]
    assert client.post("/__emulator/scenarios", json={"name": "token-expiry"}).status_code == 200
    assert [a["name"] for a in client.get("/__emulator/scenarios").json()["payload"]["active"]] == ["token-expiry"]
    gone = client.delete("/__emulator/scenarios", params={"name": "token-expiry"}).json()["payload"]
    assert gone == {"deactivated": ["token-expiry"], "active": []}
    assert client.get("/__emulator/clock").json()["payload"]["mode"] == "real"  # the scenario's manual clock left


def test_contract_mode_is_kept_for_activation(client: httpx.Client) -> None:
    _activate(client, "description: strict\nsetup: {contract_mode: strict}\n")
    assert client.get("/__emulator/scenarios").json()["payload"]["contractMode"] == "strict"
    client.delete("/__emulator/scenarios")
    assert client.get("/__emulator/scenarios").json()["payload"]["contractMode"] is None


def test_the_index_finds_the_rule_among_a_thousand_without_a_scan() -> None:
    rules = "\n".join(f"  - {{name: r{i}, when: {{path: /endpoint, data_model: Order, event_type: New, "
                      f"json: {{\"$.Order.ID\": \"{i}\"}}}}, then: {{delay: 1}}}}" for i in range(999))
    rules += "\n  - {name: results, when: {data_model: Results, event_type: New}, then: {delay: 1}}"
    scenario = load_text(f"description: many\nrules:\n{rules}\n", "many.yaml", name="many")
    index = RuleIndex(scenario.rules)
    results = Seen.of("POST", "/endpoint", {}, {"Meta": {"DataModel": "Results", "EventType": "New"}}, False)
    assert [r.name for r in index.candidates(results)] == ["results"]
    notes = Seen.of("POST", "/endpoint", {}, {"Meta": {"DataModel": "Notes", "EventType": "New"}}, False)
    assert index.candidates(notes) == []


def test_serve_with_a_scenario_from_the_settings_and_reload_on_change(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    file = folder / "teapot.yaml"
    file.write_text("description: v1\nrules: [{name: r, then: {respond: {status: 418, body: {v: 1}}}}]\n")
    with Server(Settings(db=":memory:", port=0, scenarios=("teapot",), scenarios_dir=str(folder))) as server, \
            httpx.Client(base_url=server.url) as client:
        token = client.post("/v2/auth/token", data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                                                    "client_secret": "sandbox-client-secret"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/endpoint", json=event("Results", "New"), headers=headers).json() == {"v": 1}
        file.write_text("description: v2\nrules: [{name: r, then: {respond: {status: 418, body: {v: 2}}}}]\n")
        for _ in range(200):  # the watcher debounces, then reloads
            if client.post("/endpoint", json=event("Results", "New"), headers=headers).json() == {"v": 2}:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the edited scenario was not reloaded")
        client.post("/__emulator/reset")  # a reset keeps the start-up scenario
        assert [a["name"] for a in client.get("/__emulator/scenarios").json()["payload"]["active"]] == ["teapot"]


def test_a_bad_start_up_scenario_stops_the_emulator_with_its_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: x\nrules: [{name: r, when: {data_model: Ordr}, then: {delay: 1}}]\n")
    from emulator.errors import LoadError

    with pytest.raises(LoadError, match=r"bad.yaml:2:\d+: .*Did you mean \"Order\""):
        Server(Settings(db=":memory:", port=0, scenarios=(str(bad),)))


def test_settings_take_scenarios_from_a_variable() -> None:
    from emulator.settings import load

    assert load(None, {"REDOX_EMULATOR_SCENARIOS": "token-expiry, rate-limiting"}).scenarios == \
        ("token-expiry", "rate-limiting")
