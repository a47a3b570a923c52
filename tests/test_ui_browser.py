"""The logs page in headless Chromium (Debian's, driven by Playwright): what a person sees (issue 7).

Screenshots go to test-artifacts/ (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
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


def test_logs_page_lists_filters_details_and_updates_live(page: object, emulator: Server,
                                                          authed: httpx.Client) -> None:
    assert authed.post("/endpoint", json=event("PatientAdmin", "NewPatient",
                                               Patient=patient("4242", "Ada", "Lovelace"))).status_code == 200
    assert authed.post("/endpoint", json=event("Results", "New",
                                               Patient=patient("5151", "Grace", "Hopper"))).status_code == 200
    page.goto(emulator.url + "/__emulator/ui")  # type: ignore[attr-defined]
    expect = playwright.expect

    # After a send the page lists the log: type, DataModel.EventType, route, status, attempts.
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
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Results.New")
    page.click("#clear")  # type: ignore[attr-defined]
    expect(rows(page)).to_have_count(2)
    page.fill("#mrn", "4242")  # type: ignore[attr-defined]
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("PatientAdmin.NewPatient")
    page.click("#clear")  # type: ignore[attr-defined]
    page.fill("#q", "hopper")  # type: ignore[attr-defined]
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
    failed = rows(page).filter(has_text="FAILED")
    playwright.expect(failed).to_have_count(1)
    failed.click()
    playwright.expect(page.locator("#detail-errors li").first).to_be_visible()  # type: ignore[attr-defined]
    shot(page, "5-failed")
