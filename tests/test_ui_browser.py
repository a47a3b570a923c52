"""The logs page in headless Chromium (Debian's, driven by Playwright): what a person sees (issue 7).

Each assertion on the list first waits for the list to be settled on the filters it is about
(`settled`): the page debounces typing and answers asynchronously, so right after an action the list
on screen may still be the previous filters' answer (issue 19).

Screenshots go to test-artifacts/ (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from emulator.server import Server
from tests.conftest import event

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 20_000  # generous: CI runs this beside the rest of the suite on 2 cores


def patient(mrn: str, first: str, last: str) -> dict[str, object]:
    return {"Identifiers": [{"ID": mrn, "IDType": "MR"}],
            "Demographics": {"FirstName": first, "LastName": last, "DOB": "1815-12-10"}}


@pytest.fixture
def page(emulator: Server) -> Iterator[object]:
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            tab.set_default_timeout(TIMEOUT_MS)
            playwright.expect.set_options(timeout=TIMEOUT_MS)
            yield tab
        finally:
            browser.close()


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=True)  # type: ignore[attr-defined]


def rows(page: object) -> object:
    return page.locator("#logs tbody tr")  # type: ignore[attr-defined]


def settled(page: object, filters: str) -> None:
    """Wait until the list is drawn as the answer to exactly `filters` (a query string, "" for none).

    data-filters names the filters of the answer on screen, so the wait is not met by the answer
    to the filters before (aria-busy alone would be, until the page's input handler has run).
    """
    table = page.locator("#logs")  # type: ignore[attr-defined]
    playwright.expect(table).to_have_attribute("data-filters", filters)
    playwright.expect(table).to_have_attribute("aria-busy", "false")
    playwright.expect(page.locator("#updating")).to_be_hidden()  # type: ignore[attr-defined]


def pump_until(page: object, condition: Callable[[], bool], what: str) -> None:
    """Let Playwright deliver its events (route handlers run then) until `condition` holds."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(10)  # type: ignore[attr-defined]


def hold_first_page(page: object, filters: str) -> list[object]:
    """Hold back the first answer of GET /__emulator/logs for `filters`; the routes held are returned."""
    held: list[object] = []

    def route(hit: object) -> None:
        query = hit.request.url.partition("?")[2]  # type: ignore[attr-defined]
        if query == filters and not held:
            held.append(hit)
        else:
            hit.continue_()  # type: ignore[attr-defined]

    page.route(re.compile(r"/__emulator/logs\?"), route)  # type: ignore[attr-defined]
    return held


def send_two(authed: httpx.Client) -> None:
    assert authed.post("/endpoint", json=event("PatientAdmin", "NewPatient",
                                               Patient=patient("4242", "Ada", "Lovelace"))).status_code == 200
    assert authed.post("/endpoint", json=event("Results", "New",
                                               Patient=patient("5151", "Grace", "Hopper"))).status_code == 200


def test_logs_page_lists_filters_details_and_updates_live(page: object, emulator: Server,
                                                          authed: httpx.Client) -> None:
    send_two(authed)
    page.goto(emulator.url + "/__emulator/ui")  # type: ignore[attr-defined]
    expect = playwright.expect

    # After a send the page lists the log: type, DataModel.EventType, route, status, attempts.
    settled(page, "")
    expect(rows(page)).to_have_count(2)
    first = rows(page).filter(has_text="PatientAdmin.NewPatient")
    expect(first).to_contain_text("SEND")
    expect(first).to_contain_text("Redox Dev Tools → Redox EMR")
    expect(first).to_contain_text("SUCCEEDED")
    expect(page.locator("#live")).to_have_text("live")  # type: ignore[attr-defined]
    expect(page.locator("#queues tbody")).to_contain_text("Redox EMR")  # type: ignore[attr-defined]
    shot(page, "1-list")

    # Filters narrow it: by data model, then by the patient's MRN, then by text in the payload.
    page.fill("#dataModel", "Results")  # type: ignore[attr-defined]
    settled(page, "dataModel=Results")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Results.New")
    page.click("#clear")  # type: ignore[attr-defined]
    settled(page, "")
    expect(rows(page)).to_have_count(2)
    page.fill("#mrn", "4242")  # type: ignore[attr-defined]
    settled(page, "mrn=4242")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("PatientAdmin.NewPatient")
    page.click("#clear")  # type: ignore[attr-defined]
    page.fill("#q", "hopper")  # type: ignore[attr-defined]
    settled(page, "q=hopper")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Results.New")
    shot(page, "2-filtered")

    # The detail view shows the payload as formatted JSON, and the attempt.
    rows(page).first.click()
    detail = page.locator("#detail")  # type: ignore[attr-defined]
    expect(detail).to_be_visible()
    expect(detail.locator("#attempts li")).to_have_count(1)
    expect(detail.locator("#attempts li").first).to_contain_text("HTTP 200")
    request_json = detail.locator("pre.json").first
    expect(request_json).to_contain_text('"LastName": "Hopper"')
    shot(page, "3-detail")

    # A new event appears without a reload, within the filter it matches.
    page.click("#clear")  # type: ignore[attr-defined]
    settled(page, "")
    expect(rows(page)).to_have_count(2)
    assert authed.post("/endpoint", json=event("PatientAdmin", "PatientUpdate",
                                               Patient=patient("4242", "Ada", "King"))).status_code == 200
    expect(rows(page)).to_have_count(3)
    expect(rows(page).first).to_contain_text("PatientAdmin.PatientUpdate")
    shot(page, "4-live")


def test_logs_page_shows_errors_of_a_failed_send(page: object, emulator: Server, authed: httpx.Client) -> None:
    body = event("PatientAdmin", "NewPatient", Patient=patient("99", "No", "Where"))
    body["Meta"]["Destinations"] = [{"ID": "00000000-0000-0000-0000-000000000000"}]  # type: ignore[index]
    assert authed.post("/endpoint", json=body).status_code >= 400
    page.goto(emulator.url + "/__emulator/ui")  # type: ignore[attr-defined]
    settled(page, "")
    failed = rows(page).filter(has_text="FAILED")
    playwright.expect(failed).to_have_count(1)
    failed.click()
    playwright.expect(page.locator("#detail-errors li").first).to_be_visible()  # type: ignore[attr-defined]
    shot(page, "5-failed")


def test_the_list_says_updating_until_the_answer_to_the_new_filters_is_drawn(
        page: object, emulator: Server, authed: httpx.Client) -> None:
    send_two(authed)
    held = hold_first_page(page, "dataModel=Results")
    page.goto(emulator.url + "/__emulator/ui")  # type: ignore[attr-defined]
    expect = playwright.expect
    settled(page, "")
    expect(rows(page)).to_have_count(2)

    # While the answer for the new filter is held back, the old list stays on screen, marked.
    page.fill("#dataModel", "Results")  # type: ignore[attr-defined]
    pump_until(page, lambda: bool(held), "the page to ask for dataModel=Results")
    table = page.locator("#logs")  # type: ignore[attr-defined]
    expect(table).to_have_attribute("aria-busy", "true")
    expect(page.locator("#updating")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.locator("#updating")).to_have_text("updating…")  # type: ignore[attr-defined]
    expect(table).to_have_attribute("data-filters", "")
    expect(rows(page)).to_have_count(2)
    shot(page, "6-updating")

    # Once it is let through and drawn, the mark goes and the list is the filtered one.
    held[0].continue_()  # type: ignore[attr-defined]
    settled(page, "dataModel=Results")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Results.New")


def test_an_answer_for_superseded_filters_is_dropped(page: object, emulator: Server,
                                                     authed: httpx.Client) -> None:
    send_two(authed)
    held = hold_first_page(page, "dataModel=Results")
    page.goto(emulator.url + "/__emulator/ui")  # type: ignore[attr-defined]
    expect = playwright.expect
    settled(page, "")

    # The answer for dataModel=Results is held; meanwhile the filter becomes PatientAdmin.
    page.fill("#dataModel", "Results")  # type: ignore[attr-defined]
    pump_until(page, lambda: bool(held), "the page to ask for dataModel=Results")
    page.fill("#dataModel", "PatientAdmin")  # type: ignore[attr-defined]
    settled(page, "dataModel=PatientAdmin")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("PatientAdmin.NewPatient")

    # The stale answer arrives last: the page says it dropped it, and the list stays as it was.
    with page.expect_console_message(  # type: ignore[attr-defined]
            lambda m: "dropped an answer for superseded filters (dataModel=Results)" in m.text):
        held[0].continue_()  # type: ignore[attr-defined]
    settled(page, "dataModel=PatientAdmin")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("PatientAdmin.NewPatient")
    expect(rows(page).filter(has_text="Results.New")).to_have_count(0)
