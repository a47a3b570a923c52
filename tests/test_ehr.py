"""The synthetic EHR as plain Python: population, patient index, causal state, scheduling, queries."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator import catalog
from emulator.clock import Clock, iso
from emulator.ehr import BIXBY_MRN, DUPLICATE_GROUPS, QueryRejected, SyntheticEHR
from emulator.ehr import population as population_module
from emulator.errors import RequestError

GRANITE = "4356789876"


def msg(model: str, event: str, **body: Any) -> dict[str, Any]:
    return {"Meta": {"DataModel": model, "EventType": event}, **body}


def search(ehr: SyntheticEHR, **patient: Any) -> dict[str, Any]:
    return ehr.answer(msg("PatientSearch", "Query", Patient=patient))


def mrn(patient: dict[str, Any]) -> str:
    return str(next(i["ID"] for i in patient["Identifiers"] if i["IDType"] == "MR"))


def by_mrn(ehr: SyntheticEHR, number: str) -> dict[str, Any]:
    patient: dict[str, Any] = search(ehr, Identifiers=[{"ID": number, "IDType": "MR"}])["Patient"]
    return patient


def demographics(first: str, last: str, dob: str, **more: Any) -> dict[str, Any]:
    return {"Demographics": {"FirstName": first, "LastName": last, "DOB": dob, **more}}


def booked(ehr: SyntheticEHR, **body: Any) -> list[dict[str, Any]]:
    body.setdefault("StartDateTime", iso(ehr.clock.now() - 86400))
    visits: list[dict[str, Any]] = ehr.answer(msg("Scheduling", "Booked", **body))["Visits"]
    return visits


def slots(ehr: SyntheticEHR, **body: Any) -> list[dict[str, Any]]:
    body.setdefault("StartDateTime", iso(ehr.clock.now()))
    found: list[dict[str, Any]] = ehr.answer(msg("Scheduling", "AvailableSlots", **body))["AvailableSlots"]
    return found


def visit_event(event: str, number: str, at: float, *, patient_mrn: str = BIXBY_MRN, npi: str = GRANITE,
                **visit: Any) -> dict[str, Any]:
    return msg("Scheduling", event,
               Patient={"Identifiers": [{"ID": patient_mrn, "IDType": "MR"}]},
               Visit={"VisitNumber": number, "VisitDateTime": iso(at), "Duration": 30, "Reason": "Check up",
                      "AttendingProvider": {"ID": npi, "IDType": "NPI", "FirstName": "Pat", "LastName": "Granite"},
                      "Location": {"Department": "Family Medicine"}, **visit})


@pytest.fixture
def ehr() -> SyntheticEHR:
    return SyntheticEHR(seed=1, population=200, clock=Clock())


# -- population ---------------------------------------------------------------------------------

def test_same_seed_same_population_different_seed_different() -> None:
    first = population_module.build(5, 60)
    population_module.build.cache_clear()
    again = population_module.build(5, 60)
    assert first == again and first is not again
    assert population_module.build(6, 60) != first


def test_population_does_not_depend_on_hash_seed() -> None:
    """Set iteration order varies with PYTHONHASHSEED; the population must not."""
    code = "import hashlib, emulator.ehr.population as p; print(hashlib.sha256(p.build(3, 40)).hexdigest())"
    digests = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_population_size_unique_mrns_and_full_demographics(ehr: SyntheticEHR) -> None:
    patients = list(ehr.state.patients.active())
    assert len(patients) == 200
    mrns = [next(i["ID"] for i in p.identifiers if i["IDType"] == "MR") for p in patients]
    assert len(set(mrns)) == 200
    assert all(len(m) == 10 and m.isdigit() for m in mrns)
    assert all(any(i["IDType"] == "EHRID" for i in p.identifiers) for p in patients)
    for p in patients:
        d = p.demographics
        assert {"FirstName", "MiddleName", "LastName", "DOB", "Sex", "Address", "PhoneNumber", "EmailAddresses",
                "Language", "MaritalStatus", "Race", "SSN"} <= d.keys()
        assert {"StreetAddress", "City", "State", "ZIP", "County", "Country"} <= d["Address"].keys()
        assert {"Home", "Office", "Mobile"} <= d["PhoneNumber"].keys()
        assert d["Sex"] in ("Male", "Female")
        assert {"Allergies", "Problems", "Medications"} <= p.chart.keys()
    assert sum(bool(p.chart["Problems"]) for p in patients) > 50
    assert sum(bool(p.chart["Allergies"]) for p in patients) > 20


def test_only_the_documented_look_alikes_share_name_and_birth_date(ehr: SyntheticEHR) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    for p in ehr.state.patients.active():
        d = p.demographics
        key = (d["FirstName"].casefold(), d["LastName"].casefold(), d["DOB"])
        seen[key] = seen.get(key, 0) + 1
    shared = {k: n for k, n in seen.items() if n > 1}
    assert shared == {(g.first_name.casefold(), g.last_name.casefold(), g.dob): len(g.members)
                      for g in DUPLICATE_GROUPS}
    assert len(DUPLICATE_GROUPS) >= 3 and all(2 <= len(g.members) <= 3 for g in DUPLICATE_GROUPS)


def test_small_population_still_has_the_fixed_patients() -> None:
    small = SyntheticEHR(seed=1, population=3, clock=Clock())
    assert by_mrn(small, BIXBY_MRN)["Demographics"]["LastName"] == "Bixby"
    assert all(by_mrn(small, m.mrn) for g in DUPLICATE_GROUPS for m in g.members)


# -- PatientSearch.Query --------------------------------------------------------------------------

def test_bixby_found_by_mrn(ehr: SyntheticEHR) -> None:
    answer = search(ehr, Identifiers=[{"ID": BIXBY_MRN, "IDType": "MR"}])
    assert answer["Meta"] == {"DataModel": "PatientSearch", "EventType": "Query"}
    patient = answer["Patient"]
    assert {"ID": BIXBY_MRN, "IDType": "MR"} in patient["Identifiers"]
    d = patient["Demographics"]
    assert (d["FirstName"], d["MiddleName"], d["LastName"], d["DOB"], d["Sex"]) == \
        ("Timothy", "Paul", "Bixby", "2008-01-06", "Male")
    assert (d["Address"]["City"], d["Address"]["State"], d["Address"]["ZIP"]) == ("Monroe", "WI", "53566")
    assert patient["Notes"] == [] and "PotentialMatches" not in answer


def test_identifier_type_is_case_insensitive_and_optional(ehr: SyntheticEHR) -> None:
    assert mrn(search(ehr, Identifiers=[{"ID": BIXBY_MRN, "IDType": "mr"}])["Patient"]) == BIXBY_MRN
    assert mrn(search(ehr, Identifiers=[{"ID": BIXBY_MRN}])["Patient"]) == BIXBY_MRN
    assert search(ehr, Identifiers=[{"ID": BIXBY_MRN, "IDType": "EHRID"}])["Patient"] == {}


def test_bixby_found_by_demographics_case_insensitively(ehr: SyntheticEHR) -> None:
    answer = search(ehr, **demographics("TIMOTHY", "bixby", "2008-01-06", Address={"ZIP": "53566-1234"}))
    assert mrn(answer["Patient"]) == BIXBY_MRN
    assert search(ehr, **demographics("Timothy", "Bixby", "2008-01-06T00:00:00.000Z"))["Patient"]
    assert search(ehr, **demographics("Timothy", "Bixby", "2008-01-06", Address={"ZIP": "90210"}))["Patient"] == {}
    assert search(ehr, **demographics("Timothy", "Bixby", "2008-01-06", Sex="Female"))["Patient"] == {}


def test_no_match_answers_empty_patient(ehr: SyntheticEHR) -> None:
    answer = search(ehr, **demographics("Tim", "Bixby", "2008-01-06"))
    assert answer == {"Meta": {"DataModel": "PatientSearch", "EventType": "Query"}, "Patient": {}}
    assert search(ehr, Identifiers=[{"ID": "9999999999", "IDType": "MR"}])["Patient"] == {}


@pytest.mark.parametrize("dob", ["01-01-01", "01/06/2008", "2008-13-45"])
def test_unreadable_birth_date_is_no_match_not_an_error(ehr: SyntheticEHR, dob: str) -> None:
    """Real Redox answered a search with DOB "01-01-01" with 200 and an empty Patient."""
    assert search(ehr, **demographics("Timothy", "Bixby", dob)) == \
        {"Meta": {"DataModel": "PatientSearch", "EventType": "Query"}, "Patient": {}}


@pytest.mark.parametrize("group", DUPLICATE_GROUPS, ids=lambda g: f"{g.first_name}-{g.last_name}")
def test_look_alikes_come_back_as_potential_matches(ehr: SyntheticEHR, group: Any) -> None:
    answer = search(ehr, **demographics(group.first_name, group.last_name, group.dob))
    assert answer["Patient"] == {}
    assert [mrn(p) for p in answer["PotentialMatches"]] == list(group.mrns)
    assert all(p["Demographics"]["FirstName"] == group.first_name for p in answer["PotentialMatches"])


def test_sex_and_zip_narrow_the_look_alikes(ehr: SyntheticEHR) -> None:
    maria, _, _, jordan = DUPLICATE_GROUPS
    single = search(ehr, **demographics(maria.first_name, maria.last_name, maria.dob, Address={"ZIP": "60614"}))
    assert mrn(single["Patient"]) == "0000001002"
    still_two = search(ehr, **demographics(maria.first_name, maria.last_name, maria.dob, Address={"ZIP": "53703"}))
    assert [mrn(p) for p in still_two["PotentialMatches"]] == ["0000001001", "0000001003"]
    female = search(ehr, **demographics(jordan.first_name, jordan.last_name, jordan.dob, Sex="female"))
    assert mrn(female["Patient"]) == "0000001032"


@pytest.mark.parametrize("patient", [
    {},
    {"Demographics": {"LastName": "Bixby", "Address": {"ZIP": "53566"}}},
    {"Demographics": {"FirstName": "Timothy", "LastName": "Bixby"}},
    {"Identifiers": [], "Demographics": {"FirstName": " ", "LastName": "Bixby", "DOB": "2008-01-06"}},
    {"Identifiers": [{"IDType": "MR"}]},
])
def test_too_few_criteria_rejected(ehr: SyntheticEHR, patient: dict[str, Any]) -> None:
    with pytest.raises(QueryRejected) as rejected:
        search(ehr, **patient)
    assert "FirstName, LastName and DOB" in rejected.value.text
    assert "missing" in rejected.value.text
    assert isinstance(rejected.value, RequestError)


@pytest.mark.parametrize(("patient", "field"), [
    ({"Identifiers": "0000000001"}, "Patient.Identifiers"),
    ({"Identifiers": ["0000000001"]}, "Patient.Identifiers[0]"),
    ({"Identifiers": [{"ID": {"x": 1}}]}, "Patient.Identifiers[0].ID"),
    ({"Demographics": ["Timothy"]}, "Patient.Demographics"),
    ({"Demographics": {"FirstName": ["Tim"], "LastName": "B", "DOB": "2008-01-06"}},
     "Patient.Demographics.FirstName"),
    ({"Demographics": {"FirstName": "Timothy", "LastName": "Bixby", "DOB": ["2008-01-06"]}},
     "Patient.Demographics.DOB"),
    ({"Demographics": {"FirstName": "T", "LastName": "B", "DOB": "2008-01-06", "Address": "Monroe"}},
     "Patient.Demographics.Address"),
])
def test_wrong_types_rejected_naming_the_field(ehr: SyntheticEHR, patient: dict[str, Any], field: str) -> None:
    with pytest.raises(QueryRejected) as rejected:
        search(ehr, **patient)
    assert rejected.value.text.startswith(field + " ")


def test_answers_are_copies(ehr: SyntheticEHR) -> None:
    first = by_mrn(ehr, BIXBY_MRN)
    first["Demographics"]["FirstName"] = "Changed"
    first["Identifiers"].clear()
    assert by_mrn(ehr, BIXBY_MRN)["Demographics"]["FirstName"] == "Timothy"


# -- causal state: PatientAdmin ----------------------------------------------------------------------

def new_patient(number: str, first: str = "Ada", last: str = "Quill", dob: str = "1961-02-03",
                event: str = "NewPatient", **demo: Any) -> dict[str, Any]:
    return msg("PatientAdmin", event, Patient={
        "Identifiers": [{"ID": number, "IDType": "MR"}],
        "Demographics": {"FirstName": first, "LastName": last, "DOB": dob, "Sex": "Female",
                         "Address": {"StreetAddress": "1 Elm St", "City": "Verona", "State": "WI", "ZIP": "53593"},
                         **demo},
    })


def test_new_patient_becomes_findable(ehr: SyntheticEHR) -> None:
    assert search(ehr, **demographics("Ada", "Quill", "1961-02-03"))["Patient"] == {}
    ehr.consume(new_patient("5550001"))
    assert by_mrn(ehr, "5550001")["Demographics"]["LastName"] == "Quill"
    assert mrn(search(ehr, **demographics("ada", "QUILL", "1961-02-03"))["Patient"]) == "5550001"


def test_registration_adds_unknown_patient_but_leaves_known_one(ehr: SyntheticEHR) -> None:
    ehr.consume(new_patient("5550002", event="Registration"))
    assert by_mrn(ehr, "5550002")["Demographics"]["FirstName"] == "Ada"
    ehr.consume(new_patient(BIXBY_MRN, first="Someone", last="Else", event="Arrival"))
    assert by_mrn(ehr, BIXBY_MRN)["Demographics"]["FirstName"] == "Timothy"


def test_patient_update_changes_what_search_returns(ehr: SyntheticEHR) -> None:
    ehr.consume(msg("PatientAdmin", "PatientUpdate", Patient={
        "Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}],
        "Demographics": {"LastName": "Bixby-Stone", "MiddleName": None,
                         "Address": {"StreetAddress": "77 Spring St"}, "PhoneNumber": {"Mobile": "+16085550199"}},
    }))
    patient = by_mrn(ehr, BIXBY_MRN)["Demographics"]
    assert patient["LastName"] == "Bixby-Stone"
    assert patient["MiddleName"] == "Paul"  # null means no change
    assert patient["Address"] == {**patient["Address"], "StreetAddress": "77 Spring St", "City": "Monroe"}
    assert patient["PhoneNumber"]["Mobile"] == "+16085550199"
    assert search(ehr, **demographics("Timothy", "Bixby", "2008-01-06"))["Patient"] == {}
    assert mrn(search(ehr, **demographics("Timothy", "Bixby-Stone", "2008-01-06"))["Patient"]) == BIXBY_MRN


def test_resent_patient_applies_again_after_a_change_in_between(ehr: SyntheticEHR) -> None:
    """A NewPatient that changed nothing is remembered; any change in between makes its resend count again."""
    ehr.consume(new_patient("5550010"))
    for _ in range(2):  # the second changes nothing: remembered as such
        ehr.consume(new_patient("5550010"))
    ehr.consume(new_patient("5550010", first="Adaline"))
    assert by_mrn(ehr, "5550010")["Demographics"]["FirstName"] == "Adaline"
    ehr.consume(new_patient("5550010"))  # the remembered section, but the EHR moved on: applied
    assert by_mrn(ehr, "5550010")["Demographics"]["FirstName"] == "Ada"


def test_remembered_patient_is_matched_as_json_not_by_python_equality(ehr: SyntheticEHR) -> None:
    """ID 1 and ID 1.0 are equal in Python but different identifiers ("1" and "1.0")."""
    def numbered(id_: float) -> dict[str, Any]:
        return msg("PatientAdmin", "NewPatient", Patient={"Identifiers": [{"ID": id_, "IDType": "MR"}],
                                                           "Demographics": {"FirstName": "Una", "LastName": "Numer"}})
    ehr.consume(numbered(1))
    ehr.consume(numbered(1))  # changes nothing: remembered
    ehr.consume(numbered(1.0))
    assert by_mrn(ehr, "1.0")["Demographics"]["FirstName"] == "Una"


def test_remembered_patients_of_the_same_length_are_told_apart(ehr: SyntheticEHR) -> None:
    """Sections are remembered by their JSON's length: one of equal length but other content is not "settled"."""
    ehr.consume(new_patient("5550011", first="Ada"))
    ehr.consume(new_patient("5550011", first="Ada"))  # changes nothing: remembered
    ehr.consume(new_patient("5550011", first="Eve"))  # the same length, another name
    assert by_mrn(ehr, "5550011")["Demographics"]["FirstName"] == "Eve"
    ehr.consume(new_patient("5550012", first="Ada"))  # another patient, the same length again
    ehr.consume(new_patient("5550012", first="Ada"))
    ehr.consume(new_patient("5550011", first="Ada"))
    assert by_mrn(ehr, "5550011")["Demographics"]["FirstName"] == "Ada"
    assert by_mrn(ehr, "5550012")["Demographics"]["FirstName"] == "Ada"


def test_patient_update_of_unknown_patient_creates_it(ehr: SyntheticEHR) -> None:
    ehr.consume(new_patient("5550003", first="Basil", event="PatientUpdate"))
    assert by_mrn(ehr, "5550003")["Demographics"]["FirstName"] == "Basil"


def test_patient_merge_old_identifier_resolves_to_survivor(ehr: SyntheticEHR) -> None:
    james = DUPLICATE_GROUPS[1]
    survivor, merged = james.mrns
    merged_visits = booked(ehr, Patient={"Identifiers": [{"ID": merged, "IDType": "MR"}]})
    ehr.consume(msg("PatientAdmin", "PatientMerge", Patient={
        "Identifiers": [{"ID": survivor, "IDType": "MR"}],
        "PreviousIdentifiers": [{"ID": merged, "IDType": "MR"}],
    }))
    assert mrn(by_mrn(ehr, merged)) == survivor
    only = search(ehr, **demographics(james.first_name, james.last_name, james.dob))
    assert mrn(only["Patient"]) == survivor and "PotentialMatches" not in only
    # The merged-away patient's appointments now belong to the survivor.
    survivor_visits = booked(ehr, Patient={"Identifiers": [{"ID": survivor, "IDType": "MR"}]})
    moved = {v["VisitNumber"] for v in merged_visits}
    assert moved <= {v["VisitNumber"] for v in survivor_visits}
    assert all(mrn(v["Patient"]) == survivor for v in survivor_visits)


def test_patient_merge_into_new_record_and_unknown_old_identifier(ehr: SyntheticEHR) -> None:
    ehr.consume(msg("PatientAdmin", "PatientMerge", Patient={
        "Identifiers": [{"ID": "7770001", "IDType": "MR"}],
        "PreviousIdentifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}, {"ID": "53700", "IDType": "MR"}],
    }))
    survivor = by_mrn(ehr, BIXBY_MRN)
    assert mrn(survivor) == "7770001"
    assert survivor["Demographics"]["FirstName"] == "Timothy"  # taken over from the old record
    assert mrn(by_mrn(ehr, "53700")) == "7770001"
    assert mrn(search(ehr, **demographics("Timothy", "Bixby", "2008-01-06"))["Patient"]) == "7770001"


# -- scheduling ------------------------------------------------------------------------------------

def free_granite_slot(ehr: SyntheticEHR) -> float:
    slot = next(s for s in slots(ehr) if s["Provider"]["ID"] == GRANITE)
    return datetime.fromisoformat(slot["DateTime"]).timestamp()


def test_seeded_appointments_lie_in_the_next_month(ehr: SyntheticEHR) -> None:
    now = ehr.clock.now()
    visits = booked(ehr)
    assert len(visits) > 150
    times = [datetime.fromisoformat(v["VisitDateTime"]).timestamp() for v in visits]
    assert times == sorted(times)
    assert all(now < t < now + 35 * 86400 for t in times)
    first = visits[0]
    assert {"VisitNumber", "VisitDateTime", "Duration", "Status", "Reason", "AttendingProvider", "Location",
            "Patient"} <= first.keys()
    assert first["Status"] == "Scheduled"
    assert {"Identifiers", "Demographics"} <= first["Patient"].keys()
    bixby = booked(ehr, Visit={"Patients": [{"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}]})
    assert len(bixby) == 2 and all(mrn(v["Patient"]) == BIXBY_MRN for v in bixby)


def test_booked_window_and_missing_start(ehr: SyntheticEHR) -> None:
    assert booked(ehr, StartDateTime="1984-01-01T00:00:00+00:00", EndDateTime="1984-01-02T00:00:00+00:00") == []
    answer = ehr.answer(msg("Scheduling", "Booked", StartDateTime="2016-01-01T00:00:00+00:00"))
    assert answer["Meta"] == {"DataModel": "Scheduling", "EventType": "Booked"} and answer["Visits"]
    with pytest.raises(QueryRejected, match="StartDateTime"):
        ehr.answer(msg("Scheduling", "Booked"))
    with pytest.raises(QueryRejected, match="StartDateTime must be an ISO-8601"):
        ehr.answer(msg("Scheduling", "Booked", StartDateTime="next tuesday"))


def test_scheduling_new_then_booked_includes_it_and_cancel_removes_it(ehr: SyntheticEHR) -> None:
    at = free_granite_slot(ehr)
    ehr.consume(visit_event("New", "V-1", at, Diagnoses=[{"Code": "R07.0", "Codeset": "ICD-10"}]))
    mine = [v for v in booked(ehr) if v["VisitNumber"] == "V-1"]
    assert len(mine) == 1
    visit = mine[0]
    assert visit["VisitDateTime"] == iso(at) and visit["Duration"] == 30 and visit["Status"] == "Scheduled"
    assert visit["AttendingProvider"]["ID"] == GRANITE and visit["Diagnoses"][0]["Code"] == "R07.0"
    assert visit["Patient"]["Demographics"]["FirstName"] == "Timothy"
    ehr.consume(visit_event("Cancel", "V-1", at, CancelReason="Conflicting appointment"))
    assert "V-1" not in {v["VisitNumber"] for v in booked(ehr)}


def test_reschedule_and_modification_change_the_appointment(ehr: SyntheticEHR) -> None:
    at = free_granite_slot(ehr)
    ehr.consume(visit_event("New", "V-2", at))
    ehr.consume(visit_event("Reschedule", "V-2b", at + 7 * 86400, OldVisitNumber="V-2"))
    ehr.consume(msg("Scheduling", "Modification", Visit={"VisitNumber": "V-2b", "Duration": "45"}))
    numbers = {v["VisitNumber"]: v for v in booked(ehr)}
    assert "V-2" not in numbers
    assert numbers["V-2b"]["VisitDateTime"] == iso(at + 7 * 86400)
    assert numbers["V-2b"]["Duration"] == 45 and numbers["V-2b"]["Reason"] == "Check up"


def test_available_slots_exclude_booked_times(ehr: SyntheticEHR) -> None:
    at = free_granite_slot(ehr)
    before = {(s["DateTime"], s["Provider"]["ID"]) for s in slots(ehr)}
    assert (iso(at), GRANITE) in before
    ehr.consume(visit_event("New", "V-3", at))
    after = {(s["DateTime"], s["Provider"]["ID"]) for s in slots(ehr)}
    assert (iso(at), GRANITE) not in after
    assert before - after == {(iso(at), GRANITE)}  # other providers keep that time
    ehr.consume(visit_event("Cancel", "V-3", at))
    assert (iso(at), GRANITE) in {(s["DateTime"], s["Provider"]["ID"]) for s in slots(ehr)}


def test_available_slots_shape_and_never_overlap_seeded_visits(ehr: SyntheticEHR) -> None:
    answer = ehr.answer(msg("Scheduling", "AvailableSlots", StartDateTime=iso(ehr.clock.now()),
                            Visit={"Reasons": ["Check up"], "AttendingProviders": [{"ID": GRANITE}]}))
    assert answer["Meta"] == {"DataModel": "Scheduling", "EventType": "AvailableSlotsResponse"}
    free = answer["AvailableSlots"]
    assert free and all(s["Provider"]["ID"] == GRANITE and s["Reason"] == "Check up" for s in free)
    assert {"DateTime", "Duration", "Reason", "Provider", "Location"} <= free[0].keys()
    taken = {v["VisitDateTime"] for v in booked(ehr) if v["AttendingProvider"]["ID"] == GRANITE}
    assert taken and not taken & {s["DateTime"] for s in free}
    assert all(datetime.fromisoformat(s["DateTime"]).astimezone(UTC).weekday() < 5 for s in free)
    assert slots(ehr) == slots(ehr)  # deterministic


def test_scheduling_for_unknown_patient_keeps_what_the_event_said(ehr: SyntheticEHR) -> None:
    at = free_granite_slot(ehr)
    event = visit_event("New", "V-4", at, patient_mrn="X-404")
    event["Patient"]["Demographics"] = {"FirstName": "Nora", "LastName": "Vale"}
    ehr.consume(event)
    [visit] = booked(ehr, Patient={"Identifiers": [{"ID": "X-404", "IDType": "mr"}]})
    assert visit["VisitNumber"] == "V-4" and visit["Patient"]["Demographics"]["FirstName"] == "Nora"


# -- other queries -----------------------------------------------------------------------------------

def test_clinical_summary_for_bixby(ehr: SyntheticEHR) -> None:
    answer = ehr.answer(msg("Clinical Summary", "PatientQuery",
                            Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}))
    assert answer["Meta"] == {"DataModel": "Clinical Summary", "EventType": "PatientQueryResponse"}
    header = answer["Header"]
    assert header["Document"]["ID"] and header["Document"]["DateTime"].endswith("Z")
    assert header["Patient"]["Demographics"]["LastName"] == "Bixby"
    assert mrn(header["Patient"]) == BIXBY_MRN
    assert [a["Substance"]["Name"] for a in answer["Allergies"]] == ["Peanut"]
    assert [p["Name"] for p in answer["Problems"]] == ["Asthma"]
    assert answer["Medications"][0]["Product"]["CodeSystemName"] == "RxNorm"
    assert answer["Medications"][0]["Indications"][0]["Name"] == "Asthma"
    assert [i["Product"]["Name"] for i in answer["Immunizations"]] == ["Tdap", "Influenza, seasonal, injectable"]
    assert [p["Name"] for p in answer["Procedures"]["Procedures"]] == ["Spirometry"] and answer["Results"] == []


def test_clinical_summary_unknown_patient_is_an_empty_document(ehr: SyntheticEHR) -> None:
    ids = [{"ID": "NOPE", "IDType": "MR"}]
    answer = ehr.answer(msg("Clinical Summary", "PatientQuery", Patient={"Identifiers": ids}))
    assert answer["Header"]["Patient"] == {"Identifiers": ids, "Demographics": {}}
    assert answer["Allergies"] == answer["Problems"] == answer["Medications"] == []
    with pytest.raises(QueryRejected, match=r"Patient\.Identifiers"):
        ehr.answer(msg("Clinical Summary", "PatientQuery", Patient={}))


def test_clinical_summary_header_has_the_clinical_summary_shape(ehr: SyntheticEHR) -> None:
    """E-mail addresses are objects in a CDA header (Redox's Clinical Summary samples), strings in PatientSearch."""
    ids = [{"ID": BIXBY_MRN, "IDType": "MR"}]
    header = ehr.answer(msg("Clinical Summary", "VisitQuery", Patient={"Identifiers": ids}))["Header"]
    d = header["Patient"]["Demographics"]
    assert d["EmailAddresses"] == [{"Address": "timothy.bixby@example.com"}]
    assert d["Ethnicity"] == "Not Hispanic or Latino" and "IsHispanic" not in d and "Citizenship" not in d
    assert d["PhoneNumber"] == {"Home": "+16085550101", "Mobile": "+16085550102"}  # the header has no Office
    assert by_mrn(ehr, BIXBY_MRN)["Demographics"]["EmailAddresses"] == ["timothy.bixby@example.com"]


def test_document_query_lists_the_summary_and_document_get_hands_it_over(ehr: SyntheticEHR) -> None:
    ids = [{"ID": BIXBY_MRN, "IDType": "MR"}]
    listed = ehr.answer(msg("Clinical Summary", "DocumentQuery", Patient={"Identifiers": ids}))
    assert listed["Meta"]["EventType"] == "DocumentQueryResponse" and listed["Patient"] == {"Identifiers": ids}
    [document] = listed["Documents"]
    assert document["FileType"] == "text/xml" and document["Type"]["Code"] == "34133-9"
    summary = ehr.answer(msg("Clinical Summary", "PatientQuery", Patient={"Identifiers": ids}))
    assert document["ID"] == summary["Header"]["Document"]["ID"]  # the same document, listed and queried
    got = ehr.answer(msg("Clinical Summary", "DocumentGet", Document={"ID": document["ID"]}))
    assert got["Meta"]["EventType"] == "DocumentGetResponse"
    assert got["Document"] == {"ID": document["ID"]} and got["FileType"] == "text/xml"
    assert got["Data"].startswith("<?xml") and f'extension="{BIXBY_MRN}"' in got["Data"]
    assert "<family>Bixby</family>" in got["Data"]
    with pytest.raises(QueryRejected, match=r"no document with ID 'nope'.*DocumentQuery"):
        ehr.answer(msg("Clinical Summary", "DocumentGet", Document={"ID": "nope"}))
    with pytest.raises(QueryRejected, match=r"needs Document\.ID"):
        ehr.answer(msg("Clinical Summary", "DocumentGet", Document={}))
    unknown = ehr.answer(msg("Clinical Summary", "DocumentQuery", Patient={"Identifiers": [{"ID": "NOPE"}]}))
    assert unknown["Documents"] == []


def test_answers_echo_what_a_client_sent_only_as_their_own_contract_has_it(ehr: SyntheticEHR) -> None:
    """A NewPatient's sections come back in PatientSearch as far as PatientSearch.Response lists them."""
    ehr.consume(msg("PatientAdmin", "NewPatient", Patient={
        "Identifiers": [{"ID": "ECHO-1", "IDType": "MR"}],
        "Demographics": {"FirstName": "Ada", "LastName": "Quill", "DOB": "1961-02-03", "Nickname": "Addie",
                         "Address": {"ZIP": 53703}},
        "Allergies": [{"Code": "70618", "Name": "Penicillin"}], "Insurances": [{"Plan": {"Name": "Acme"}}]}))
    patient = by_mrn(ehr, "ECHO-1")
    assert patient["Demographics"]["Address"] == {"ZIP": "53703"}  # a number for a string: Redox coerces it
    assert "Nickname" not in patient["Demographics"] and "Allergies" not in patient
    assert patient["Insurances"] == [{"Plan": {"Name": "Acme"}}]  # PatientSearch lists Insurances...
    vaccination = ehr.answer(msg("Vaccination", "PatientQuery", Patient={"Identifiers": [{"ID": "ECHO-1"}]}))
    assert "Insurances" not in vaccination["Patient"]  # ...Vaccination.PatientQueryResponse does not
    assert vaccination["Patient"]["Demographics"]["FirstName"] == "Ada"


def test_results_query_returns_seeded_and_received_results(ehr: SyntheticEHR) -> None:
    with_labs = next(p for p in ehr.state.patients.active() if p.chart["Results"])
    ids = [i for i in with_labs.identifiers if i["IDType"] == "MR"]
    answer = ehr.answer(msg("Results", "Query", Patients=[{"Identifiers": ids}]))
    assert answer["Meta"] == {"DataModel": "Results", "EventType": "QueryResponse"}
    assert [o["ID"] for o in answer["Orders"]] == [o["ID"] for o in with_labs.chart["Results"]]
    assert all(o["Patient"]["Identifiers"][0]["ID"] == ids[0]["ID"] and o["Results"] for o in answer["Orders"])
    ehr.consume(msg("Results", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
                    Orders=[{"ID": "ORD-9", "Status": "Resulted", "Results": [{"Code": "718-7", "Value": "13.1"}]}]))
    bixby = ehr.answer(msg("Results", "Query", Patients=[{"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}],
                           OrderIDs=["ORD-9"]))
    assert [o["ID"] for o in bixby["Orders"]] == ["ORD-9"]


def test_provider_query_searches_the_roster(ehr: SyntheticEHR) -> None:
    answer = ehr.answer(msg("Provider", "ProviderQuery", Provider={"Identifiers": [{"ID": GRANITE, "IDType": "NPI"}]}))
    assert answer["Meta"]["EventType"] == "ProviderQuery"  # real Redox keeps it (real-responses sample)
    assert [p["Demographics"]["LastName"] for p in answer["Providers"]] == ["Granite"]


EXPECTED_EMPTY = {
    ("PatientAdmin", "CensusQuery"): ("CensusQueryResponse", "Patients"),
    ("PatientAdmin", "VisitQuery"): ("VisitQueryResponse", "Patients"),
    ("PatientSearch", "LocationQuery"): ("LocationQueryResponse", "Patients"),
    ("Clinical Summary", "DocumentQuery"): ("DocumentQueryResponse", "Documents"),
    ("Order", "Query"): ("QueryResponse", "Orders"),
    ("Results", "Query"): ("QueryResponse", "Orders"),
    ("Notes", "Query"): ("QueryResponse", "Notes"),
    ("Media", "Query"): ("QueryResponse", "Media"),
    ("Referral", "Query"): ("QueryResponse", "Referrals"),
    ("Provider", "ProviderQuery"): ("ProviderQuery", "Providers"),
    ("Organization", "Query"): ("QueryResponse", "Organizations"),
    ("ClinicalDecisions", "Request"): ("Response", "Advisories"),
    ("Enrichment", "NormalizationQuery"): ("NormalizationQueryResponse", "Entries"),
    ("Enrichment", "NaturalLanguageProcessingQuery"): ("NaturalLanguageProcessingQueryResponse", "Entries"),
    ("Vaccination", "PatientQuery"): ("PatientQueryResponse", "PotentialMatches"),
    ("Clinical Decisions", "Request"): ("Response", "Advisories"),  # Redox's own spelling of the model
}


@pytest.mark.parametrize(("model", "event"), sorted(EXPECTED_EMPTY))
def test_other_queries_get_well_formed_empty_answers(ehr: SyntheticEHR, model: str, event: str) -> None:
    response, collection = EXPECTED_EMPTY[(model, event)]
    answer = ehr.answer(msg(model, event))
    assert answer["Meta"] == {"DataModel": model, "EventType": response}
    assert answer[collection] == []
    assert catalog.is_known(model, response)


def test_every_catalog_query_is_answered_or_rejected_with_text(ehr: SyntheticEHR) -> None:
    for model, event in sorted(catalog.QUERIES):
        try:
            answer = ehr.answer(msg(model, event))
        except QueryRejected as rejected:
            assert (model, event) in {("PatientSearch", "Query"), ("Scheduling", "Booked"),
                                      ("Scheduling", "AvailableSlots"), ("Clinical Summary", "PatientQuery"),
                                      ("Clinical Summary", "VisitQuery"), ("Clinical Summary", "DocumentGet")}
            assert rejected.text
        else:
            assert answer["Meta"]["DataModel"] == model
            assert catalog.is_known(model, answer["Meta"]["EventType"])
            assert len(answer) > 1, f"{model}.{event} has no answer body: add it to queries.ANSWERS"


def test_non_queries_and_bad_meta_rejected(ehr: SyntheticEHR) -> None:
    with pytest.raises(QueryRejected, match="not a query"):
        ehr.answer(msg("PatientAdmin", "NewPatient"))
    with pytest.raises(QueryRejected, match=r"Meta\.DataModel"):
        ehr.answer({"Meta": {"EventType": "Query"}})
    with pytest.raises(QueryRejected, match="Meta must be an object"):
        ehr.answer({"Meta": []})


# -- reset, threads, fuzz ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [[[[1]]], 2**70], ids=["deep", "huge-int"])
def test_what_cannot_be_rendered_is_never_kept(ehr: SyntheticEHR, value: Any) -> None:
    """Responses are rendered with orjson (254 levels, 64-bit integers): keeping more would poison later answers."""
    if isinstance(value, list):
        for _ in range(300):
            value = [value]
    ehr.consume(msg("PatientAdmin", "NewPatient", Patient={
        "Identifiers": [{"ID": "DEEP-1", "IDType": "MR"}], "Notes": value}))
    assert by_mrn(ehr, "DEEP-1") == {}  # the event was dropped, not half-applied
    ehr.consume(msg("PatientAdmin", "NewPatient", Patient={"Identifiers": [{"ID": "DEEP-2"}], "Notes": ["kept"]}))
    assert search(ehr, Identifiers=[{"ID": "DEEP-2"}])["Patient"]["Notes"] == ["kept"]


def test_reset_restores_the_seeded_state(ehr: SyntheticEHR) -> None:
    pristine_visits = booked(ehr)
    at = free_granite_slot(ehr)
    ehr.consume(new_patient("5550004"))
    ehr.consume(visit_event("New", "V-5", at))
    ehr.consume(msg("PatientAdmin", "PatientUpdate", Patient={
        "Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}], "Demographics": {"FirstName": "Tim"}}))
    james = DUPLICATE_GROUPS[1]
    ehr.consume(msg("PatientAdmin", "PatientMerge", Patient={
        "Identifiers": [{"ID": james.mrns[0], "IDType": "MR"}],
        "PreviousIdentifiers": [{"ID": james.mrns[1], "IDType": "MR"}]}))
    ehr.reset()
    assert by_mrn(ehr, "5550004") == {}
    assert by_mrn(ehr, BIXBY_MRN)["Demographics"]["FirstName"] == "Timothy"
    assert mrn(by_mrn(ehr, james.mrns[1])) == james.mrns[1]
    assert booked(ehr) == pristine_visits
    assert len(ehr.state.patients) == 200


def test_concurrent_events_and_queries() -> None:
    ehr = SyntheticEHR(seed=2, population=50, clock=Clock())
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(25):
                ehr.consume(new_patient(f"T{worker}-{n}", first=f"W{worker}", last=f"N{n}"))
                assert by_mrn(ehr, f"T{worker}-{n}")
                booked(ehr)
        except BaseException as error:  # reported below, in the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ehr.state.patients) == 50 + 8 * 25


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=6,
)
ids = st.sampled_from([BIXBY_MRN, "0000001011", "0000001012", "5550001", "V-1"]) | st.text(max_size=6) | \
    st.integers() | json_values
identifier_lists = st.lists(st.fixed_dictionaries({"ID": ids}, optional={"IDType": st.sampled_from(
    ["MR", "mr", "EHRID", None]) | json_values}), max_size=3) | json_values
times = st.sampled_from(["2024-05-01T09:00:00.000Z", "2030-01-01", "9999-12-31T23:59:59+00:00",
                         "0001-01-01T00:00:00-23:59", "bad"]) \
    | st.datetimes().map(lambda d: d.isoformat()) | json_values
patients = st.fixed_dictionaries({}, optional={
    "Identifiers": identifier_lists,
    "PreviousIdentifiers": identifier_lists,
    "Demographics": st.fixed_dictionaries({}, optional={
        "FirstName": st.sampled_from(["Timothy", "James"]) | json_values,
        "LastName": st.sampled_from(["Bixby", "Johnson"]) | json_values,
        "DOB": st.sampled_from(["2008-01-06", "1972-11-02"]) | times,
        "Sex": json_values, "Address": st.fixed_dictionaries({}, optional={"ZIP": json_values}) | json_values,
    }) | json_values,
}) | json_values
visits = st.fixed_dictionaries({}, optional={
    "VisitNumber": ids, "OldVisitNumber": ids, "VisitDateTime": times, "Duration": json_values,
    "AttendingProvider": json_values, "AttendingProviders": json_values, "Patients": json_values,
    "Location": json_values, "Reasons": json_values, "Status": json_values,
}) | json_values
bodies = st.fixed_dictionaries({}, optional={
    "Patient": patients, "Patients": st.lists(patients, max_size=2) | json_values, "Visit": visits,
    "StartDateTime": times, "EndDateTime": times, "Provider": patients, "Orders": json_values,
    "OrderIDs": json_values, "Completion": json_values, "Document": json_values, "Directory": json_values,
})
metas = st.sampled_from(sorted(catalog.QUERIES)).map(lambda q: {"DataModel": q[0], "EventType": q[1]}) | \
    st.fixed_dictionaries({"DataModel": json_values, "EventType": json_values}) | json_values
event_metas = st.sampled_from([(m, e) for m, events in catalog.DATA_MODELS.items() for e in events]).map(
    lambda q: {"DataModel": q[0], "EventType": q[1]})

_FUZZED = SyntheticEHR(seed=3, population=40, clock=Clock())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=metas, body=bodies)
def test_fuzz_answer_raises_only_query_rejected(meta: Any, body: dict[str, Any]) -> None:
    payload = {"Meta": meta, **body}
    try:
        answer = _FUZZED.answer(payload)
    except QueryRejected as rejected:
        assert isinstance(rejected.text, str) and rejected.text
    else:
        assert answer["Meta"]["DataModel"] == meta["DataModel"]
        assert catalog.is_known(answer["Meta"]["DataModel"], answer["Meta"]["EventType"])
        orjson.dumps(answer)  # the HTTP layer can render it


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=event_metas, body=bodies)
def test_fuzz_consume_never_raises_and_state_stays_queryable(meta: dict[str, Any], body: dict[str, Any]) -> None:
    _FUZZED.consume({"Meta": meta, **body})
    assert by_mrn(_FUZZED, BIXBY_MRN)  # still exactly one patient answers to Bixby's MRN
    # Whatever was kept can still be rendered by the HTTP layer.
    orjson.dumps(booked(_FUZZED, StartDateTime="2000-01-01"))
    orjson.dumps(slots(_FUZZED))
    patient = body.get("Patient")
    if isinstance(patient, dict):
        with contextlib.suppress(QueryRejected):
            orjson.dumps(search(_FUZZED, **{k: v for k, v in patient.items() if k in ("Identifiers", "Demographics")}))


# -- write-through: the records the store keeps ------------------------------------------------------

def everything(ehr: SyntheticEHR) -> dict[str, Any]:
    """The whole state as data, in order, and how every identifier it holds resolves (typed and untyped)."""
    state = ehr.state
    ids = {(e["ID"], e.get("IDType")) for p in state.patients for e in p.identifiers}
    ids |= {(entry[1], entry[2]) for p in state.patients for entry in p.entries}
    return {
        "patients": [p.record() for p in state.patients],
        "appointments": sorted((a.record() for a in state.schedule), key=lambda r: r["VisitNumber"]),
        "resolved": {f"{i}|{t}": ([p.key for p in state.patients.find([(i, t)])],
                                  [p.key for p in state.patients.find([(i, None)])]) for i, t in sorted(ids, key=str)},
    }


def test_the_records_consume_returns_rebuild_the_same_state(ehr: SyntheticEHR) -> None:
    """What a restart restores (the seeded population with the kept records over it) is what the live
    EHR held: patients, merges, charts, appointments, and which patient a shared identifier names."""
    records: list[Any] = []
    at = free_granite_slot(ehr)
    james = DUPLICATE_GROUPS[1]
    for event in (
        new_patient("5560001"),
        new_patient("5560001", last="Quillon", event="PatientUpdate"),
        new_patient("SHARED-1"),
        # A seeded patient gains an identifier a newer patient already holds: the newer one keeps it.
        msg("PatientAdmin", "PatientUpdate", Patient={"Identifiers": [{"ID": "0000001021", "IDType": "MR"},
                                                                      {"ID": "SHARED-1", "IDType": "MR"}]}),
        msg("PatientAdmin", "PatientMerge", Patient={"Identifiers": [{"ID": james.mrns[0], "IDType": "MR"}],
                                                     "PreviousIdentifiers": [{"ID": james.mrns[1], "IDType": "MR"}]}),
        msg("PatientAdmin", "PatientMerge", Patient={
            "Identifiers": [{"ID": "7770002", "IDType": "MR"}],
            "PreviousIdentifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}, {"ID": "NEVER-KNOWN", "IDType": "MR"}]}),
        msg("Results", "New", Patient={"Identifiers": [{"ID": "5560001", "IDType": "MR"}]},
            Orders=[{"ID": "ORD-R1", "Status": "Resulted", "Results": [{"Code": "718-7", "Value": "13.1"}]}]),
        visit_event("New", "V-R1", at, patient_mrn="5560001"),
        visit_event("Reschedule", "V-R1b", at + 86400, OldVisitNumber="V-R1", patient_mrn="5560001"),
        visit_event("New", "V-R2", at + 3600, patient_mrn="UNKNOWN-9"),
        visit_event("Cancel", "V-R2", at + 3600, patient_mrn="UNKNOWN-9"),
        new_patient("5560003"),
    ):
        records.extend(ehr.consume(event))
    restored = SyntheticEHR(seed=1, population=200, clock=ehr.clock, saved=records)
    assert everything(restored) == everything(ehr)
    assert search(restored, Identifiers=[{"ID": "SHARED-1"}]) == search(ehr, Identifiers=[{"ID": "SHARED-1"}])
    assert booked(restored) == booked(ehr)
    # What comes after a restore goes on from it: keys and versions do not collide with the kept ones.
    more = restored.consume(new_patient("5560004"))
    assert [r[0] for r in more] == ["patient"] and more[0][2] > max(r[2] for r in records)
    assert more[0][1] not in {p.key for p in ehr.state.patients}


def test_only_what_changed_is_handed_to_the_store(ehr: SyntheticEHR) -> None:
    first = ehr.consume(new_patient("5560010"))
    assert [(kind, version) for kind, _, version, _ in first] == [("patient", 1)]
    assert ehr.consume(new_patient("5560010")) == ()  # a feed resending the same patient changes nothing
    assert ehr.consume(msg("Device", "New", Device={"ID": "d"})) == ()  # an event the EHR keeps nothing for
    ehr.answer(msg("PatientSearch", "Query", Patient={"Identifiers": [{"ID": "5560010", "IDType": "MR"}]}))
    ehr.consume(visit_event("New", "V-C1", free_granite_slot(ehr)))
    renamed = ehr.consume(visit_event("Reschedule", "V-C1b", free_granite_slot(ehr), OldVisitNumber="V-C1"))
    assert sorted((kind, key, data is None) for kind, key, _, data in renamed) == [
        ("appointment", "V-C1", True), ("appointment", "V-C1b", False)]


_CHANGES = st.sampled_from([
    new_patient("H-1"), new_patient("H-2", first="Bea"), new_patient("H-1", last="Other", event="PatientUpdate"),
    msg("PatientAdmin", "PatientUpdate", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"},
                                                                  {"ID": "H-2", "IDType": "MR"}]}),
    msg("PatientAdmin", "PatientMerge", Patient={"Identifiers": [{"ID": "H-1", "IDType": "MR"}],
                                                 "PreviousIdentifiers": [{"ID": "H-2", "IDType": "MR"}]}),
    msg("PatientAdmin", "PatientMerge", Patient={"Identifiers": [{"ID": "H-3", "IDType": "MR"}],
                                                 "PreviousIdentifiers": [{"ID": "H-1", "IDType": "MR"}]}),
    msg("PatientAdmin", "Registration", Patient={"Identifiers": [{"ID": "H-4"}], "Demographics": {"FirstName": "Cy"}}),
    msg("Results", "New", Patient={"Identifiers": [{"ID": "H-1", "IDType": "MR"}]}, Orders=[{"ID": "O-1"}]),
    msg("Results", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
        Orders=[{"ID": "O-2", "Results": [{"Code": "718-7", "Value": "13.1"}]}]),
    msg("Order", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
        Order={"ID": "O-2", "Status": "Canceled"}),
    msg("Order", "New", Patient={"Identifiers": [{"ID": "H-1", "IDType": "MR"}]}, Order={"ID": "O-3"}),
    msg("Notes", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
        Note={"DocumentID": "N-1", "FileContents": "one"}),
    msg("Notes", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
        Note={"DocumentID": "N-1", "FileContents": "two"}),
    msg("Scheduling", "New", Patient={"Identifiers": [{"ID": "H-2", "IDType": "MR"}]},
        Visit={"VisitNumber": "HV-1", "VisitDateTime": "2031-01-06T15:00:00Z"}),
    msg("Scheduling", "Reschedule", Visit={"VisitNumber": "HV-2", "OldVisitNumber": "HV-1",
                                           "VisitDateTime": "2031-01-07T15:00:00Z"}),
    msg("Scheduling", "Cancel", Visit={"VisitNumber": "HV-2"}),
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_CHANGES, max_size=12), more=st.lists(_CHANGES, max_size=6))
def test_any_sequence_of_events_restores_to_the_state_it_made(events: list[dict[str, Any]],
                                                               more: list[dict[str, Any]]) -> None:
    live = SyntheticEHR(seed=3, population=20, clock=Clock())
    records = [r for event in events for r in live.consume(orjson.loads(orjson.dumps(event)))]
    restored = SyntheticEHR(seed=3, population=20, clock=live.clock, saved=records)
    assert everything(restored) == everything(live)
    # A restored EHR goes on where the live one was: what it writes next restores as well.
    records += [r for event in more for r in restored.consume(orjson.loads(orjson.dumps(event)))]
    for event in more:
        live.consume(orjson.loads(orjson.dumps(event)))
    assert everything(SyntheticEHR(seed=3, population=20, clock=live.clock, saved=records)) == everything(live)


def test_a_write_to_a_long_chart_stores_what_it_added_not_the_chart(ehr: SyntheticEHR) -> None:
    """Each result filed is one chart-item record; the patient's record lists the items by number, items
    appended one after another as one run, so it does not grow with the chart."""
    def filed(i: int) -> tuple[Any, ...]:
        return ehr.consume(msg("Results", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
                               Orders=[{"ID": f"LONG-{i}", "Results": [{"Code": "718-7", "Value": str(i)}]}]))

    def patient_record(records: tuple[Any, ...]) -> bytes:
        return next(r[3] for r in records if r[0] == "patient")

    first = filed(0)
    for i in range(1, 200):
        last = filed(i)
        if i == 100:
            halfway = last
    assert len(patient_record(last)) == len(patient_record(halfway))  # item numbers of as many digits
    assert sorted(kind for kind, *_ in last) == ["chart-item", "patient"]
    [item] = [r for r in last if r[0] == "chart-item"]
    assert orjson.loads(item[3])["ID"] == "LONG-199"
    assert sum(len(r[3]) for r in last) < sum(len(r[3]) for r in first)  # the first stored the whole chart


def test_a_chart_listed_number_by_number_restores_as_one_listed_in_runs(ehr: SyntheticEHR) -> None:
    """A layout-7 store's patient record lists each item number alone; it restores to the same chart."""
    records = [r for i in range(5) for r in ehr.consume(msg(
        "Results", "New", Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]},
        Orders=[{"ID": f"RUN-{i}", "Results": [{"Code": "718-7", "Value": str(i)}]}]))]
    newest = max((r for r in records if r[0] == "patient"), key=lambda r: r[2])
    record = orjson.loads(newest[3])
    assert any(isinstance(run, list) for run in record["ChartItems"]["Results"])
    record["ChartItems"] = {section: [n for run in runs for n in (range(run[0], run[1] + 1) if isinstance(run, list)
                                                                  else [run])]
                            for section, runs in record["ChartItems"].items()}
    one_by_one = [*(r for r in records if r[0] != "patient"), ("patient", newest[1], newest[2],
                                                               orjson.dumps(record))]
    restored = SyntheticEHR(seed=1, population=200, clock=ehr.clock, saved=records)
    assert everything(SyntheticEHR(seed=1, population=200, clock=ehr.clock, saved=one_by_one)) == \
        everything(restored) == everything(ehr)


def test_a_section_shrunk_in_place_is_stored_again_whole() -> None:
    """Handlers do not shrink a section in place; if code did, the store still ends up with the chart."""
    from emulator.ehr.patients import Patient

    patient = Patient("k", [{"ID": "1", "IDType": "MR"}], {}, {}, {"Results": [{"ID": f"R-{i}"} for i in range(4)]})
    items: dict[int, Any] = {}

    def store() -> dict[str, Any]:
        record, changed = patient.stored()
        items.update(changed)
        return orjson.loads(orjson.dumps(record))

    store()
    del patient.chart["Results"][1]
    record = store()
    kept = {n: orjson.loads(d) for n, d in items.items() if d is not None}
    assert Patient.restore(record, kept, max(items)).chart["Results"] == [{"ID": "R-0"}, {"ID": "R-2"}, {"ID": "R-3"}]
    assert len(kept) == 3  # the first four numbers are tombstones, three new ones live


def test_seeded_charts_have_immunizations_procedures_and_insurance_that_queries_answer(ehr: SyntheticEHR) -> None:
    patients = list(ehr.state.patients.active())
    assert sum(bool(p.chart.get("Immunizations")) for p in patients) > len(patients) // 3
    assert sum(bool(p.chart.get("Procedures")) for p in patients) > len(patients) // 10
    assert sum(bool(p.extra.get("Insurances")) for p in patients) > len(patients) // 2
    answer = ehr.answer(msg("Vaccination", "PatientQuery",
                            Patient={"Identifiers": [{"ID": BIXBY_MRN, "IDType": "MR"}]}))
    assert [(v["Product"]["Code"], v["Product"]["Codeset"], v["DateTime"][:10])
            for v in answer["Patient"]["Vaccinations"]] == [("115", "CVX", "2019-02-04"), ("141", "CVX", "2024-10-15")]
    assert answer["Patient"]["Vaccinations"][0]["Route"]["Name"] == "Intramuscular"
    bixby = by_mrn(ehr, BIXBY_MRN)
    assert [i["Company"]["Name"] for i in bixby["Insurances"]] == ["Blue Cross Blue Shield of Wisconsin"]
    # The same seed gives the same items: another EHR built from it agrees.
    other = SyntheticEHR()
    assert [p.chart.get("Immunizations") for p in other.state.patients.active()] == \
           [p.chart.get("Immunizations") for p in patients]
