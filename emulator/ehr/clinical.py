"""Clinical content of the synthetic chart: allergies, problems, medications, lab results,
immunizations, procedures; and the patient's insurance.

Small hand-written code tables (SNOMED CT, RxNorm, ICD-10-CM, LOINC codes chosen for plausibility,
not for clinical use) drawn from with the population's seeded `random.Random`. Dates are fixed
history (before `REFERENCE_DATE`), never relative to the clock, so a seed always gives the same chart.
Also renders the Clinical Summary document and Results orders in Redox's shape.
"""

from __future__ import annotations

import random
import uuid
from datetime import date
from typing import Any
from xml.sax.saxutils import escape

REFERENCE_DATE = date(2025, 1, 1)  # "today" for ages and chart history

SNOMED = ("2.16.840.1.113883.6.96", "SNOMED CT")
RXNORM = ("2.16.840.1.113883.6.88", "RxNorm")
ICD10 = ("2.16.840.1.113883.6.90", "ICD-10-CM")
LOINC = ("2.16.840.1.113883.6.1", "LOINC")
NCI = ("2.16.840.1.113883.3.26.1.1", "NCI Thesaurus")
CVX = ("2.16.840.1.113883.12.292", "CVX")
CPT = ("2.16.840.1.113883.6.12", "CPT")


def code(value: str, name: str, system: tuple[str, str]) -> dict[str, Any]:
    return {"Code": value, "CodeSystem": system[0], "CodeSystemName": system[1], "Name": name,
            "AltCodes": []}


def iso_date(day: date) -> str:
    return f"{day.isoformat()}T00:00:00.000Z"


# name, code, system, allergy type (code, name)
_ALLERGENS = (
    ("Penicillin", "70618", RXNORM, ("419511003", "Propensity to adverse reaction to drug")),
    ("Sulfamethoxazole", "10180", RXNORM, ("419511003", "Propensity to adverse reaction to drug")),
    ("Codeine", "2670", RXNORM, ("419511003", "Propensity to adverse reaction to drug")),
    ("Aspirin", "1191", RXNORM, ("419511003", "Propensity to adverse reaction to drug")),
    ("Peanut", "256349002", SNOMED, ("414285001", "Allergy to food")),
    ("Latex", "111088007", SNOMED, ("419199007", "Allergy to substance")),
)
_REACTIONS = (("247472004", "Hives"), ("271807003", "Rash"), ("267036007", "Shortness of breath"),
              ("422587007", "Nausea"), ("39579001", "Anaphylaxis"))
_SEVERITIES = (("255604002", "Mild"), ("6736007", "Moderate"), ("24484000", "Severe"))
_ACTIVE = ("55561003", "Active")

# name, SNOMED, ICD-10-CM, minimum age, medication key or None
_PROBLEMS = (
    ("Essential hypertension", "59621000", "I10", 30, "lisinopril"),
    ("Type 2 diabetes mellitus", "44054006", "E11.9", 35, "metformin"),
    ("Hyperlipidemia", "55822004", "E78.5", 35, "atorvastatin"),
    ("Asthma", "195967001", "J45.909", 0, "albuterol"),
    ("Depressive disorder", "35489007", "F32.9", 15, "sertraline"),
    ("Gastroesophageal reflux disease", "235595009", "K21.9", 18, "omeprazole"),
    ("Allergic rhinitis", "61582004", "J30.9", 0, "cetirizine"),
    ("Hypothyroidism", "40930008", "E03.9", 25, "levothyroxine"),
    ("Osteoarthritis of knee", "239873007", "M17.9", 50, None),
)

# key: product name, RxNorm, dose quantity, units, route (NCI code, name), every N hours, PRN
_MEDICATIONS: dict[str, tuple[str, str, str, str, tuple[str, str], str, bool]] = {
    "lisinopril": ("Lisinopril 10 MG Oral Tablet", "314076", "10", "mg", ("C38288", "Oral"), "24", False),
    "metformin": ("Metformin hydrochloride 500 MG Oral Tablet", "861007", "500", "mg", ("C38288", "Oral"),
                  "12", False),
    "atorvastatin": ("Atorvastatin 20 MG Oral Tablet", "617310", "20", "mg", ("C38288", "Oral"), "24",
                     False),
    "albuterol": ("Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "745679", "2", "puff",
                  ("C38216", "Respiratory (inhalation)"), "6", True),
    "sertraline": ("Sertraline 50 MG Oral Tablet", "312940", "50", "mg", ("C38288", "Oral"), "24", False),
    "omeprazole": ("Omeprazole 20 MG Delayed Release Oral Capsule", "198053", "20", "mg",
                   ("C38288", "Oral"), "24", False),
    "cetirizine": ("Cetirizine hydrochloride 10 MG Oral Tablet", "1014678", "10", "mg", ("C38288", "Oral"),
                   "24", True),
    "levothyroxine": ("Levothyroxine sodium 0.05 MG Oral Tablet", "966222", "0.05", "mg",
                      ("C38288", "Oral"), "24", False),
}

# panel LOINC, panel name, [(LOINC, name, units, low, high, decimals)]
_PANELS = (
    ("58410-2", "CBC panel - Blood by Automated count", (
        ("718-7", "Hemoglobin", "g/dL", 12.0, 17.0, 1),
        ("6690-2", "Leukocytes", "10*3/uL", 4.0, 11.0, 1),
        ("777-3", "Platelets", "10*3/uL", 150.0, 400.0, 0),
    )),
    ("51990-0", "Basic metabolic panel - Blood", (
        ("2345-7", "Glucose", "mg/dL", 70.0, 99.0, 0),
        ("2951-2", "Sodium", "mmol/L", 135.0, 145.0, 0),
        ("2823-3", "Potassium", "mmol/L", 3.5, 5.1, 1),
        ("2160-0", "Creatinine", "mg/dL", 0.6, 1.3, 2),
    )),
)


# CVX, name, minimum age, dose (mL); all intramuscular
_VACCINES = (
    ("141", "Influenza, seasonal, injectable", 0, "0.5"),
    ("208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
     12, "0.3"),
    ("115", "Tdap", 11, "0.5"),
    ("43", "Hepatitis B vaccine, adult dosage", 19, "1"),
    ("187", "Zoster vaccine recombinant", 50, "0.5"),
    ("33", "Pneumococcal polysaccharide vaccine, 23 valent", 65, "0.5"),
)
_INTRAMUSCULAR = ("C28161", "Intramuscular")

# CPT, name, minimum age
_PROCEDURES = (
    ("94010", "Spirometry", 6),
    ("93000", "Electrocardiogram, routine ECG with at least 12 leads; with interpretation and report", 18),
    ("45378", "Colonoscopy, flexible; diagnostic", 45),
    ("77067", "Screening mammography, bilateral", 40),
    ("11102", "Tangential biopsy of skin, single lesion", 18),
    ("29881", "Arthroscopy, knee, surgical; with meniscectomy", 30),
)

# company, company ID, plan ID, plan name, plan type
_PAYERS = (
    ("Aetna", "60054", "AET-CHOICE-POS", "Aetna Choice POS II", "POS"),
    ("Blue Cross Blue Shield of Wisconsin", "00450", "BCBS-PPO-500", "Blue Preferred PPO 500", "PPO"),
    ("UnitedHealthcare", "87726", "UHC-HMO-CORE", "UnitedHealthcare Core HMO", "HMO"),
    ("Medicare", "MEDICARE", "MCR-PART-B", "Medicare Part B", "Medicare"),
)


def age(dob: date) -> int:
    return REFERENCE_DATE.year - dob.year - ((REFERENCE_DATE.month, REFERENCE_DATE.day) < (dob.month, dob.day))


def _history_date(rng: random.Random, dob: date) -> date:
    start = max(dob, date(2012, 1, 1)).toordinal()
    return date.fromordinal(rng.randint(start, REFERENCE_DATE.toordinal() - 1))


def allergy(name: str, severity: int, reaction: int, since: date) -> dict[str, Any]:
    _, value, system, (type_code, type_name) = next(a for a in _ALLERGENS if a[0] == name)
    sev_code, sev_name = _SEVERITIES[severity]
    severity_code = {k: v for k, v in code(sev_code, sev_name, SNOMED).items() if k != "AltCodes"}
    return {
        "Type": code(type_code, type_name, SNOMED),
        "Substance": code(value, name, system),
        "Reaction": [{**code(*_REACTIONS[reaction], SNOMED), "Severity": severity_code}],
        "Severity": severity_code,
        "Status": {k: v for k, v in code(*_ACTIVE, SNOMED).items() if k != "AltCodes"},
        "StartDate": iso_date(since),
        "Comments": [],
    }


def problem(name: str, since: date) -> dict[str, Any]:
    _, snomed, icd10, _, _ = next(p for p in _PROBLEMS if p[0] == name)
    item = code(snomed, name, SNOMED)
    item["AltCodes"] = [{k: v for k, v in code(icd10, name, ICD10).items() if k != "AltCodes"}]
    return {
        "StartDate": iso_date(since),
        "EndDate": None,
        **item,
        "Category": code("55607006", "Problem", SNOMED),
        "Status": {k: v for k, v in code(*_ACTIVE, SNOMED).items() if k != "AltCodes"},
        "Comments": [],
    }


def medication(key: str, indication: dict[str, Any], since: date) -> dict[str, Any]:
    name, rxnorm, quantity, units, route, hours, prn = _MEDICATIONS[key]
    return {
        "Prescription": True,
        "Dose": {"Quantity": quantity, "Units": units},
        "Rate": {},
        "Route": code(route[0], route[1], NCI),
        "StartDate": iso_date(since),
        "EndDate": None,
        "Frequency": {"Period": hours, "Unit": "h"},
        "IsPRN": prn,
        "Product": code(rxnorm, name, RXNORM),
        "Indications": [{k: indication[k] for k in ("Code", "CodeSystem", "CodeSystemName", "Name")}],
        "SupplyOrder": {},
    }


def lab_order(rng: random.Random, order_id: str, panel: int, when: date, provider: dict[str, Any],
              ) -> dict[str, Any]:
    """A resulted lab order as Results.QueryResponse lists it; about one value in five is abnormal."""
    loinc, panel_name, analytes = _PANELS[panel]
    stamp = f"{when.isoformat()}T{rng.randint(13, 21):02d}:{rng.choice((0, 15, 30, 45)):02d}:00.000Z"
    results = []
    for analyte, name, units, low, high, decimals in analytes:
        spread = (high - low) * 0.3
        value = round(rng.uniform(low - spread, high + spread), decimals)
        flag = "Low" if value < low else "High" if value > high else "Normal"
        results.append({
            "Code": analyte, "Codeset": "LOINC", "Description": name,
            "Value": f"{value:.{decimals}f}", "ValueType": "Numeric", "Units": units,
            "ReferenceRange": {"Low": low, "High": high, "Text": f"{low:g}-{high:g}"},
            "AbnormalFlag": flag, "Status": "Final", "Notes": [],
            "CompletionDateTime": stamp,
        })
    return {
        "ID": order_id,
        "TransactionDateTime": stamp,
        "CollectionDateTime": stamp,
        "CompletionDateTime": stamp,
        "Notes": [],
        "ResultsStatus": "Final",
        "Procedure": {"Code": loinc, "Codeset": "LOINC", "Description": panel_name},
        "Provider": {"NPI": provider["ID"], "FirstName": provider["FirstName"],
                     "LastName": provider["LastName"]},
        "Status": "Resulted",
        "Priority": "Routine",
        "Results": results,
    }


def chart(rng: random.Random, dob: date, first_order: int, pcp: dict[str, Any]) -> dict[str, list[Any]]:
    """A seeded chart: more problems (and so more medications) with age, a few allergies, labs."""
    years = age(dob)
    eligible = [p for p in _PROBLEMS if p[3] <= years]
    count = rng.choice((0, 0, 1, 1, 2)) if years < 40 else rng.choice((1, 1, 2, 3, 4))
    problems, medications = [], []
    for name, _, _, _, med in rng.sample(eligible, min(count, len(eligible))):
        since = _history_date(rng, dob)
        item = problem(name, since)
        problems.append(item)
        if med is not None:
            medications.append(medication(med, item, since))
    allergies = [allergy(name, rng.randrange(len(_SEVERITIES)), rng.randrange(len(_REACTIONS)),
                         _history_date(rng, dob))
                 for name, *_ in rng.sample(_ALLERGENS, rng.choice((0, 0, 0, 1, 1, 2)))]
    labs = [lab_order(rng, str(first_order + i), rng.randrange(len(_PANELS)), _history_date(rng, dob), pcp)
            for i in range(rng.choice((0, 1, 1, 2)) if years >= 18 else 0)]
    return {"Allergies": allergies, "Problems": problems, "Medications": medications, "Results": labs}


def immunization(cvx: str, when: date) -> dict[str, Any]:
    """A vaccine given, in the Clinical Summary's Immunizations shape (`vaccination` turns it into the
    Vaccination model's)."""
    _, name, _, dose = next(v for v in _VACCINES if v[0] == cvx)
    return {"DateTime": iso_date(when), "Status": "Complete", "Product": code(cvx, name, CVX),
            "Route": code(*_INTRAMUSCULAR, NCI), "Dose": {"Quantity": dose, "Units": "mL"}}


def vaccination(item: dict[str, Any]) -> dict[str, Any]:
    """A chart immunization as Vaccination.PatientQueryResponse lists it."""
    product, route = item.get("Product") or {}, item.get("Route") or {}
    return {"DateTime": item.get("DateTime"), "Dose": item.get("Dose") or {},
            "Product": {"Code": product.get("Code"), "Codeset": product.get("CodeSystemName"),
                        "Description": product.get("Name")},
            "Route": {"Code": route.get("Code"), "Codeset": route.get("CodeSystemName"), "Name": route.get("Name")}}


def procedure(cpt: str, when: date) -> dict[str, Any]:
    """A procedure performed, in the Clinical Summary's Procedures.Procedures shape."""
    _, name, _ = next(p for p in _PROCEDURES if p[0] == cpt)
    return {"DateTime": iso_date(when), "Status": "Completed", **code(cpt, name, CPT), "Comments": []}


def insurance(payer: int, member: str, group: str, since: date) -> dict[str, Any]:
    """The patient's own insurance (the subscriber is the patient), in PatientSearch's Insurances shape."""
    company, company_id, plan_id, plan_name, plan_type = _PAYERS[payer]
    return {"Plan": {"ID": plan_id, "IDType": "Payer Plan ID", "Name": plan_name, "Type": plan_type},
            "MemberNumber": member, "Company": {"ID": company_id, "IDType": "Payer ID", "Name": company},
            "GroupNumber": group, "GroupName": f"{company} group {group}", "Priority": "Primary",
            "EffectiveDate": since.isoformat(), "ExpirationDate": None, "Insured": {"Relationship": "Self"}}


def extras(key: str, dob: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Immunizations, procedures and insurances of a seeded patient, drawn from a generator of its own
    seeded by the patient's key: the same key gives the same items, and adding them did not move any
    draw of the population's own generator (every other seeded value stayed as it was)."""
    rng = random.Random(f"chart-extras:{key}")
    years = age(dob)
    vaccines = [v for v in _VACCINES if v[2] <= years]
    immunizations = sorted((immunization(cvx, _history_date(rng, dob))
                            for cvx, *_ in rng.sample(vaccines, min(len(vaccines), rng.choice((0, 1, 2, 3))))),
                           key=lambda i: str(i["DateTime"]))
    eligible = [p for p in _PROCEDURES if p[2] <= years]
    count = min(len(eligible), rng.choice((0, 0, 1)) if years < 40 else rng.choice((0, 1, 1, 2)))
    procedures = sorted((procedure(cpt, _history_date(rng, dob)) for cpt, *_ in rng.sample(eligible, count)),
                        key=lambda p: str(p["DateTime"]))
    insurances = []
    if rng.random() < 0.85:
        payer = 3 if years >= 65 else rng.randrange(3)
        insurances.append(insurance(payer, f"{rng.randrange(10**9):09d}", f"{rng.randrange(10**5):05d}",
                                    _history_date(rng, dob)))
    return immunizations, procedures, insurances


_SUMMARY_TITLE = "Synthetic EHR: Health Summary"
_SUMMARY_TYPE = ("34133-9", "Summarization of Episode Note")
_EMPTY_SECTIONS = ("AdvanceDirectives", "CareTeams", "Encounters", "FamilyHistory", "Goals",
                   "HealthConcerns", "Insurances", "MedicalEquipment",
                   "ResolvedProblems", "Results", "VitalSigns")


def summary(patient: dict[str, Any], chart_: dict[str, list[Any]], *, document_id: str, now: str,
            author: dict[str, Any]) -> dict[str, Any]:
    """The body of a Clinical Summary PatientQueryResponse (or VisitQueryResponse), without Meta."""
    body: dict[str, Any] = {
        "Header": {
            "Document": {
                "Author": author,
                "ID": document_id,
                "Locale": "US",
                "Title": _SUMMARY_TITLE,
                "DateTime": now,
                "Type": _SUMMARY_TYPE[1],
                "TypeCode": {"Code": _SUMMARY_TYPE[0], "CodeSystem": LOINC[0], "CodeSystemName": LOINC[1],
                             "Name": _SUMMARY_TYPE[1]},
                "Confidentiality": {"Code": "N", "CodeSystem": "2.16.840.1.113883.5.25",
                                    "CodeSystemName": "Confidentiality", "Name": "normal"},
                "Custodian": {"Name": "Redox Emulator Synthetic EHR", "Identifiers": [], "Address": {},
                              "Telecom": []},
            },
            "Patient": patient,
        },
    }
    body["Allergies"] = chart_.get("Allergies", [])
    body["Problems"] = chart_.get("Problems", [])
    body["Medications"] = chart_.get("Medications", [])
    body["Immunizations"] = chart_.get("Immunizations", [])
    for section in _EMPTY_SECTIONS:
        body[section] = []
    body["Procedures"] = {"Observations": [], "Procedures": chart_.get("Procedures", []), "Services": []}
    return body


def document_id(key: str) -> str:
    """A stable document ID per patient, so repeated queries return the same document."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"redox-emulator:summary:{key}"))


def header_patient(patient: dict[str, Any]) -> dict[str, Any]:
    """A patient (as PatientAdmin carries one) in the shape of a Clinical Summary header (a CDA header).

    The two data models differ: e-mail addresses are objects `{"Address": ...}` there (Redox's
    Clinical Summary samples), ethnicity is a name rather than `IsHispanic`. What the header has no
    place for (Citizenship, an office phone) the caller's `shape.fit` leaves out.
    """
    demographics = dict(patient.get("Demographics") or {})
    emails = demographics.get("EmailAddresses")
    if isinstance(emails, list):
        demographics["EmailAddresses"] = [{"Address": e} if isinstance(e, str) else e for e in emails]
    hispanic = demographics.pop("IsHispanic", None)
    if isinstance(hispanic, bool) and not demographics.get("Ethnicity"):
        demographics["Ethnicity"] = "Hispanic or Latino" if hispanic else "Not Hispanic or Latino"
    return {**patient, "Demographics": demographics}


def document_entry(document_id_: str, now: str, author: dict[str, Any]) -> dict[str, Any]:
    """The patient's summary document as a Clinical Summary DocumentQueryResponse lists it."""
    return {"ID": document_id_, "Title": _SUMMARY_TITLE, "DateTime": now, "Locale": "US",
            "FileType": "text/xml", "Author": author,
            "Type": {"Code": _SUMMARY_TYPE[0], "Codeset": LOINC[1], "Name": _SUMMARY_TYPE[1]}}


def cda(document_id_: str, now: str, patient: dict[str, Any], author: dict[str, Any]) -> str:
    """The summary document as DocumentGet hands it over: a CDA R2 header (`Data`, FileType text/xml).

    A header only: the same document's sections are what PatientQuery answers as JSON.
    """
    demographics = patient.get("Demographics") or {}
    ids = "".join(f'<id extension="{_attr(i.get("ID"))}" assigningAuthorityName="{_attr(i.get("IDType"))}"/>'
                  for i in patient.get("Identifiers") or [] if isinstance(i, dict))
    sex = {"Male": "M", "Female": "F"}.get(str(demographics.get("Sex")), "UN")
    born = str(demographics.get("DOB") or "").replace("-", "")
    stamp = now[:19].replace("-", "").replace(":", "").replace("T", "")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3">'
        '<typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>'
        f'<id root="{_attr(document_id_)}"/>'
        f'<code code="{_SUMMARY_TYPE[0]}" codeSystem="{LOINC[0]}" codeSystemName="{LOINC[1]}" '
        f'displayName="{_SUMMARY_TYPE[1]}"/>'
        f"<title>{_text(_SUMMARY_TITLE)}</title>"
        f'<effectiveTime value="{stamp}"/>'
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>'
        '<languageCode code="en-US"/>'
        f"<recordTarget><patientRole>{ids}<patient><name>"
        f"<given>{_text(demographics.get('FirstName'))}</given>"
        f"<family>{_text(demographics.get('LastName'))}</family></name>"
        f'<administrativeGenderCode code="{sex}" codeSystem="2.16.840.1.113883.5.1"/>'
        f'<birthTime value="{_attr(born)}"/></patient></patientRole></recordTarget>'
        f'<author><time value="{stamp}"/><assignedAuthor><id extension="{_attr(author.get("ID"))}" '
        'root="2.16.840.1.113883.4.6"/><assignedPerson><name>'
        f"<given>{_text(author.get('FirstName'))}</given>"
        f"<family>{_text(author.get('LastName'))}</family></name></assignedPerson></assignedAuthor>"
        "</author>"
        "<custodian><assignedCustodian><representedCustodianOrganization>"
        "<name>Redox Emulator Synthetic EHR</name>"
        "</representedCustodianOrganization></assignedCustodian></custodian>"
        "</ClinicalDocument>"
    )


def _text(value: object) -> str:
    return escape("" if value is None else str(value))


def _attr(value: object) -> str:
    return escape("" if value is None else str(value), {'"': "&quot;"})
