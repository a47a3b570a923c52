"""The Redox data models and event types (SPEC section 6), and which of them are queries.

Names are exact, including the space in "Clinical Summary" and the hyphen in "Sign-On".
"""

from __future__ import annotations

import difflib

DATA_MODELS: dict[str, tuple[str, ...]] = {
    "PatientAdmin": (
        "Arrival", "Cancel", "CensusQuery", "CensusQueryResponse", "Discharge", "NewPatient",
        "PatientMerge", "PatientUpdate", "PreAdmit", "Registration", "Transfer", "VisitMerge",
        "VisitQuery", "VisitQueryResponse", "VisitUpdate",
    ),
    "PatientSearch": ("Query", "Response", "LocationQuery", "LocationQueryResponse"),
    "Clinical Summary": (
        "PatientQuery", "PatientQueryResponse", "PatientPush", "VisitQuery", "VisitQueryResponse",
        "VisitPush", "DocumentQuery", "DocumentQueryResponse", "DocumentGet", "DocumentGetResponse",
    ),
    "Order": ("New", "Update", "Cancel", "GroupedOrders", "Query", "QueryResponse"),
    "Results": ("New", "NewUnsolicited", "Query", "QueryResponse"),
    "Scheduling": (
        "New", "Reschedule", "Modification", "Cancel", "NoShow", "Booked", "BookedResponse",
        "AvailableSlots", "AvailableSlotsResponse", "PushSlots",
    ),
    "SurgicalScheduling": ("New", "Reschedule", "Modification", "Cancel", "NoShow"),
    "Flowsheet": ("New",),
    "Notes": ("New", "Replace", "Delete", "Query", "QueryResponse"),
    "Media": ("New", "Replace", "Delete", "Query", "QueryResponse"),
    "Medications": ("New", "Update", "Cancel", "Administration"),
    "Vaccination": ("New", "Administration", "PatientQuery", "PatientQueryResponse"),
    "Financial": ("Transaction", "AccountUpdate"),
    "Claim": ("Submission", "SubmissionBatch", "Payment", "PaymentBatch"),
    "Device": ("New",),
    "Inventory": ("Update", "Deplete"),
    "Referral": ("New", "Modify", "Cancel", "Query", "QueryResponse", "AuthReview", "AuthResponse"),
    "Provider": ("New", "Update", "Activate", "Deactivate", "ProviderQuery", "ProviderQueryResponse"),
    "Organization": ("New", "Update", "Query", "QueryResponse"),
    "Research": ("Study", "SubjectUpdate"),
    "ClinicalDecisions": ("Request", "Response"),
    "Enrichment": (
        "NormalizationQuery", "NormalizationQueryResponse",
        "NaturalLanguageProcessingQuery", "NaturalLanguageProcessingQueryResponse",
    ),
    "PatientEducation": ("New", "Update", "Delete"),
    "SSO": ("Sign-On",),
}  # fmt: skip

# Synchronous event types: the destination answers in the HTTP response (a Redox "query").
_QUERY_EVENTS: dict[str, tuple[str, ...]] = {
    "PatientAdmin": ("CensusQuery", "VisitQuery"),
    "PatientSearch": ("Query", "LocationQuery"),
    "Clinical Summary": ("PatientQuery", "VisitQuery", "DocumentQuery", "DocumentGet"),
    "Order": ("Query",),
    "Results": ("Query",),
    "Scheduling": ("Booked", "AvailableSlots"),
    "Notes": ("Query",),
    "Media": ("Query",),
    "Vaccination": ("PatientQuery",),
    "Referral": ("Query",),
    "Provider": ("ProviderQuery",),
    "Organization": ("Query",),
    "ClinicalDecisions": ("Request",),
    "Enrichment": ("NormalizationQuery", "NaturalLanguageProcessingQuery"),
}
# Spellings Redox's own published payloads use beside the names above; accepted as the same thing.
MODEL_ALIASES = {"Clinical Decisions": "ClinicalDecisions"}
EVENT_ALIASES = {("SSO", "Sign-on"): "Sign-On"}
QUERIES: frozenset[tuple[str, str]] = frozenset(
    (model, event) for model, events in _QUERY_EVENTS.items() for event in events
)


def _response(data_model: str, event_type: str) -> str:
    for candidate in (f"{event_type}Response", "Response"):
        if candidate in DATA_MODELS[data_model]:
            return candidate
    raise ValueError(f"query {data_model}.{event_type} has no response event type")  # a catalog mistake


# The event type whose contract a query's answer keeps: PatientSearch.Query -> PatientSearch.Response,
# Scheduling.Booked -> BookedResponse. (The answer's Meta.EventType may still say the query's name, as
# real Redox answers do: see `ehr.queries.response_event`.)
RESPONSES: dict[tuple[str, str], tuple[str, str]] = {
    (model, event): (model, _response(model, event)) for model, event in sorted(QUERIES)
}


def _canonical(data_model: str, event_type: str) -> tuple[str, str]:
    model = MODEL_ALIASES.get(data_model, data_model)
    return model, EVENT_ALIASES.get((model, event_type), event_type)


# Every accepted spelling of every known (DataModel, EventType), aliases included, to its canonical
# pair: on the request path, "is it known" and "what is it" are one look-up.
KINDS: dict[tuple[str, str], tuple[str, str]] = {
    (spelling, event): _canonical(spelling, event)
    for spelling in [*DATA_MODELS, *MODEL_ALIASES]
    for event in [*DATA_MODELS[MODEL_ALIASES.get(spelling, spelling)],
                  *(alias for (model, alias) in EVENT_ALIASES if model == MODEL_ALIASES.get(spelling, spelling))]
}


def canonical(data_model: str, event_type: str) -> tuple[str, str]:
    return KINDS.get((data_model, event_type)) or _canonical(data_model, event_type)


def is_model(data_model: str) -> bool:
    return data_model in DATA_MODELS or data_model in MODEL_ALIASES


def is_known(data_model: str, event_type: str) -> bool:
    return (data_model, event_type) in KINDS


def is_query(data_model: str, event_type: str) -> bool:
    return canonical(data_model, event_type) in QUERIES


def did_you_mean(name: str, choices: object) -> str:
    """` Did you mean "X"?` or an empty string; case-insensitive, as typos often are."""
    options = list(choices)  # type: ignore[call-overload]
    by_lower = {o.lower(): o for o in options}
    if name.lower() in by_lower:
        return f' Did you mean "{by_lower[name.lower()]}"?'
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f' Did you mean "{by_lower[close[0]]}"?' if close else ""


# ---- FHIR notifications (FHIR.md 5) ------------------------------------------------------------------
# What a destination with `format: fhir` receives: Redox's name for each (the DataModel and EventType its
# logs and subscriptions use), the EventDefinition its MessageHeader.eventUri names, and the data-model
# event the synthetic EHR builds one from when it is pushed by name. Names Redox's pages show verbatim:
# FHIR.Message.PatientAdmin, FHIR.Event.Order, the event types, PatientAdminPatient{Arrived,Created,
# Registered,Transferred}, ResultCreated, DocumentReferenceCreated, ServiceRequestCreated; the rest follow
# the same patterns (docs/fhir.md lists which are inferred).
FHIR_PATIENT_ADMIN = "FHIR.Message.PatientAdmin"
FHIR_ORDER = "FHIR.Event.Order"
FHIR_NOTIFICATIONS: dict[tuple[str, str], tuple[str, tuple[str, str]]] = {
    (FHIR_PATIENT_ADMIN, "patient-arrived"): ("PatientAdminPatientArrived", ("PatientAdmin", "Arrival")),
    (FHIR_PATIENT_ADMIN, "patient-created"): ("PatientAdminPatientCreated", ("PatientAdmin", "NewPatient")),
    (FHIR_PATIENT_ADMIN, "patient-discharged"): ("PatientAdminPatientDischarged", ("PatientAdmin", "Discharge")),
    (FHIR_PATIENT_ADMIN, "patient-merged"): ("PatientAdminPatientMerged", ("PatientAdmin", "PatientMerge")),
    (FHIR_PATIENT_ADMIN, "patient-pre-admitted"): ("PatientAdminPatientPreAdmitted", ("PatientAdmin", "PreAdmit")),
    (FHIR_PATIENT_ADMIN, "patient-registered"): ("PatientAdminPatientRegistered", ("PatientAdmin", "Registration")),
    (FHIR_PATIENT_ADMIN, "patient-transferred"): ("PatientAdminPatientTransferred", ("PatientAdmin", "Transfer")),
    (FHIR_PATIENT_ADMIN, "patient-updated"): ("PatientAdminPatientUpdated", ("PatientAdmin", "PatientUpdate")),
    ("FHIR.Message.Scheduling", "appointment-booked"): ("AppointmentBooked", ("Scheduling", "New")),
    ("FHIR.Message.Scheduling", "appointment-updated"): ("AppointmentUpdated", ("Scheduling", "Reschedule")),
    ("FHIR.Message.Scheduling", "appointment-cancelled"): ("AppointmentCancelled", ("Scheduling", "Cancel")),
    ("FHIR.Message.Result", "result-created"): ("ResultCreated", ("Results", "New")),
    ("FHIR.Message.Document", "document-created"): ("DocumentReferenceCreated", ("Notes", "New")),
    ("FHIR.Message.Document", "document-replaced"): ("DocumentReferenceReplaced", ("Notes", "Replace")),
    ("FHIR.Message.Document", "document-deleted"): ("DocumentReferenceDeleted", ("Notes", "Delete")),
    ("FHIR.Message.Financial", "financial-new"): ("FinancialNew", ("Financial", "Transaction")),
    (FHIR_ORDER, "service-request-created"): ("ServiceRequestCreated", ("Order", "New")),
    (FHIR_ORDER, "service-request-updated"): ("ServiceRequestUpdated", ("Order", "Update")),
    (FHIR_ORDER, "service-request-cancelled"): ("ServiceRequestCancelled", ("Order", "Cancel")),
    (FHIR_ORDER, "medication-request-created"): ("MedicationRequestCreated", ("Medications", "New")),
    (FHIR_ORDER, "medication-request-updated"): ("MedicationRequestUpdated", ("Medications", "Update")),
    (FHIR_ORDER, "medication-request-cancelled"): ("MedicationRequestCancelled", ("Medications", "Cancel")),
    (FHIR_ORDER, "device-request-created"): ("DeviceRequestCreated", ("Device", "New")),
    (FHIR_ORDER, "device-request-updated"): ("DeviceRequestUpdated", ("Device", "New")),
    (FHIR_ORDER, "device-request-cancelled"): ("DeviceRequestCancelled", ("Device", "New")),
    (FHIR_ORDER, "referral-requested"): ("ReferralRequested", ("Referral", "New")),
    (FHIR_ORDER, "referral-schedule-updated"): ("ReferralScheduleUpdated", ("Referral", "Modify")),
    (FHIR_ORDER, "referral-request-cancelled"): ("ReferralRequestCancelled", ("Referral", "Cancel")),
    (FHIR_ORDER, "referral-accepted"): ("ReferralAccepted", ("Referral", "Modify")),
    (FHIR_ORDER, "referral-declined"): ("ReferralDeclined", ("Referral", "Modify")),
    (FHIR_ORDER, "referral-completed"): ("ReferralCompleted", ("Referral", "Modify")),
    (FHIR_ORDER, "referral-confirm-cancelled"): ("ReferralConfirmCancelled", ("Referral", "Cancel")),
    (FHIR_ORDER, "referral-acknowledged"): ("ReferralAcknowledged", ("Referral", "Modify")),
}  # fmt: skip
FHIR_MODELS: dict[str, tuple[str, ...]] = {}
for _model, _event in FHIR_NOTIFICATIONS:
    FHIR_MODELS[_model] = (*FHIR_MODELS.get(_model, ()), _event)

# The notification a data-model event (from the EHR or a client's /endpoint) becomes; events not listed
# have none, and a FHIR destination is not subscribed to them. Each notification's own source event maps to it,
# except where two share one source (device-request-*, the referral answers): there the first one listed.
FHIR_FOR: dict[tuple[str, str], tuple[str, str]] = {}
for _key, (_uri, _source) in FHIR_NOTIFICATIONS.items():
    FHIR_FOR.setdefault(_source, _key)
FHIR_FOR.update({
    ("Scheduling", "Modification"): ("FHIR.Message.Scheduling", "appointment-updated"),
    ("Scheduling", "NoShow"): ("FHIR.Message.Scheduling", "appointment-updated"),
    ("Results", "NewUnsolicited"): ("FHIR.Message.Result", "result-created"),
})
FHIR_BY_URI = {f"https://fhir.redoxengine.com/EventDefinition/{uri}": key
               for key, (uri, _) in FHIR_NOTIFICATIONS.items()}
del _model, _event, _key, _uri, _source


def fhir_by_uri(bundle: dict[str, object]) -> tuple[str | None, str | None]:
    """The (DataModel, EventType) of a notification Bundle, from its MessageHeader's eventUri."""
    entries = bundle.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, dict) else None
    uri = resource.get("eventUri") if isinstance(resource, dict) else None
    return FHIR_BY_URI.get(uri, (None, None)) if isinstance(uri, str) else (None, None)
