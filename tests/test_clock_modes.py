"""The emulator's clock: real, accelerated and manual modes, and the control plane that switches them."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from emulator.clock import Clock, ClockMode


def test_manual_mode_stands_still_until_advanced() -> None:
    clock = Clock()
    clock.set_mode("manual")
    frozen = clock.now()
    assert clock.now() == frozen
    clock.advance(1800)
    assert clock.now() == frozen + 1800


def test_switching_mode_never_jumps_the_clock() -> None:
    clock = Clock()
    clock.set_mode(ClockMode.ACCELERATED, 1000)
    clock.advance(60)
    before = clock.now()
    clock.set_mode("manual")
    assert before <= clock.now() < before + 5
    clock.set_mode("real")
    assert clock.now() >= before


def test_accelerated_mode_runs_factor_times_faster() -> None:
    clock = Clock()
    clock.set_mode("accelerated", 100_000)
    start = clock.now()
    asyncio.run(asyncio.sleep(0.01))
    assert clock.now() - start >= 0.01 * 100_000 * 0.5  # at least half the factor's worth, whatever the load


def test_sleeping_thirty_emulated_minutes_on_an_accelerated_clock() -> None:
    clock = Clock()
    clock.set_mode("accelerated", 100_000)
    deadline = clock.now() + 1800
    asyncio.run(asyncio.wait_for(clock.sleep_until(deadline), timeout=30))
    assert clock.now() >= deadline


@pytest.mark.parametrize("bad", [{"mode": "accelerated"}, {"mode": "manual", "factor": 2}, {"factor": 3},
                                 {"mode": "fast"}, {"advance": "10"}, {"advance": -1}, {"speed": 2}, {}])
def test_bad_clock_requests_get_a_clear_400(client: httpx.Client, bad: dict[str, object]) -> None:
    r = client.post("/__emulator/clock", json=bad)
    assert r.status_code == 400 and r.json()["error"]


def test_control_plane_sets_mode_and_reset_brings_real_time_back(client: httpx.Client) -> None:
    r = client.post("/__emulator/clock", json={"mode": "manual", "advance": 90})
    payload = r.json()["payload"]
    assert (payload["mode"], payload["factor"], payload["offsetSeconds"]) == ("manual", 0, 90)
    client.post("/__emulator/reset")
    assert client.get("/__emulator/clock").json()["payload"]["mode"] == "real"


def test_tokens_expire_on_an_accelerated_clock(client: httpx.Client, token: str) -> None:
    client.post("/__emulator/clock", json={"mode": "accelerated", "factor": 1_000_000})
    asyncio.run(asyncio.sleep(0.01))  # 10,000 emulated seconds: past the 300 s OAuth lifetime
    r = client.post("/endpoint", json={}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
