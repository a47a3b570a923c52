"""The OpenAPI entries of the FHIR writebacks: one path per operation, its body a message Bundle.

Each body schema is a subset of what the operation takes in the default `redox` mode, so that every
body the schema allows is written (schemathesis' positive data acceptance holds it to that): the
resources name Timothy Bixby (the same patient for every seed), codes come from R4's required value
sets, dates are real dates. Clients may send far more (any valid R4 resource): docs/fhir.md says what.
"""

from __future__ import annotations

from typing import Any

from emulator.ehr.population import BIXBY_EHRID
from emulator.fhir.writeback import OPERATIONS

_WORD = {"type": "string", "pattern": r"^[A-Za-z]{1,40}$"}
_DATE = {"type": "string", "pattern": r"^(19[0-9]{2}|20[0-4][0-9])-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"}
_INSTANT = {"type": "string", "pattern": r"^20[3-4][0-9]-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T(0[0-9]|1[0-9]|2[0-3])"
                                         r":[0-5][0-9]:[0-5][0-9]Z$"}
_SUBJECT = {"type": "object", "required": ["reference"], "additionalProperties": False,
            "properties": {"reference": {"const": f"Patient/{BIXBY_EHRID}"}}}
_CODE = {"type": "object", "required": ["text"], "additionalProperties": False, "properties": {"text": _WORD}}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def _enum(*values: str) -> dict[str, Any]:
    return {"enum": list(values)}


RESOURCES: dict[str, dict[str, Any]] = {
    "Patient": _obj(["resourceType", "name"], resourceType={"const": "Patient"},
                    name={"type": "array", "minItems": 1, "maxItems": 2, "items": _obj(
                        ["family"], family=_WORD, given={"type": "array", "maxItems": 2, "items": _WORD})},
                    gender=_enum("male", "female", "other", "unknown"), birthDate=_DATE,
                    identifier={"type": "array", "maxItems": 2, "items": _obj(
                        ["system", "value"], system={"const": "urn:redox:redox-fhir-sandbox:MR"},
                        value={"type": "string", "pattern": r"^[A-Za-z0-9]{1,20}$"})}),
    "Observation": _obj(["resourceType", "status", "code", "subject"], resourceType={"const": "Observation"},
                        status=_enum("preliminary", "final", "amended", "corrected"), code=_CODE, subject=_SUBJECT,
                        effectiveDateTime=_INSTANT,
                        valueQuantity=_obj(["value"], value={"type": "number", "minimum": -1e9, "maximum": 1e9},
                                           unit=_WORD)),
    "DiagnosticReport": _obj(["resourceType", "status", "code", "subject"],
                             resourceType={"const": "DiagnosticReport"},
                             status=_enum("preliminary", "final", "amended", "corrected"), code=_CODE,
                             subject=_SUBJECT, issued=_INSTANT),
    "Appointment": _obj(["resourceType", "status", "start", "participant"], resourceType={"const": "Appointment"},
                        status=_enum("booked", "pending", "arrived", "fulfilled", "cancelled", "noshow"),
                        start=_INSTANT, minutesDuration={"type": "integer", "minimum": 5, "maximum": 240},
                        description=_WORD,
                        participant={"type": "array", "minItems": 1, "maxItems": 1, "items": _obj(
                            ["actor", "status"], actor=_SUBJECT, status={"const": "accepted"})}),
    "ServiceRequest": _obj(["resourceType", "status", "intent", "subject"], resourceType={"const": "ServiceRequest"},
                           status=_enum("draft", "active", "completed"), intent=_enum("order", "plan", "proposal"),
                           code=_CODE, subject=_SUBJECT, authoredOn=_INSTANT),
    "DocumentReference": _obj(["resourceType", "status", "subject", "content"],
                              resourceType={"const": "DocumentReference"}, status=_enum("current", "superseded"),
                              subject=_SUBJECT, description=_WORD,
                              content={"type": "array", "minItems": 1, "maxItems": 1, "items": _obj(
                                  ["attachment"], attachment=_obj(
                                      ["contentType", "data"], contentType={"const": "text/plain"},
                                      data={"type": "string", "pattern": r"^([A-Za-z0-9+/]{4}){1,50}$"}))}),
}


def bundle(kind: str) -> dict[str, Any]:
    """A message Bundle of one `kind` resource (no MessageHeader: the redox mode's focus is then the resource)."""
    return _obj(["resourceType", "type", "entry"], resourceType={"const": "Bundle"}, type={"const": "message"},
                entry={"type": "array", "minItems": 1, "maxItems": 1, "items": _obj(["resource"],
                                                                                     resource=RESOURCES[kind])})


def paths(base: str, params: list[dict[str, Any]], responses: dict[str, Any]) -> dict[str, Any]:
    """`{base}/{Resource}/${operation}` -> the path item of each writeback."""
    found = {}
    for operation, (kind, event, verb) in OPERATIONS.items():
        found[f"{base}/{kind}/{operation}"] = {"post": {
            "summary": f"Writeback: {verb} a {kind} (MessageHeader eventUri "
                       f"https://fhir.redoxengine.com/EventDefinition/{event}); answered with a transaction-response",
            "tags": ["FHIR"], "parameters": params, "security": [{"bearer": []}], "responses": responses,
            "requestBody": {"required": True, "content": {
                "application/fhir+json": {"schema": bundle(kind)}, "application/json": {"schema": bundle(kind)}}}}}
    return found
