"""The synthetic EHR behind the default "Redox EMR" destination (SPEC 5.3).

Interface used by the rest of the emulator (keep it stable):

    ehr = SyntheticEHR(seed=1, population=200, clock=clock)
    ehr.consume(payload)      # an async event routed to the EHR; may change its state
    ehr.answer(payload) -> dict  # a query; the response body, whose Meta carries DataModel and EventType
    ehr.reset()               # back to the seeded population
    QueryRejected(text)       # raised by answer(): rendered as 400, Type "transmission", Module "Send"

Known patients for tests and scenarios, the same for every seed: `BIXBY_MRN` (Timothy Bixby, the
Redox sandbox patient) and `DUPLICATE_GROUPS` (look-alikes a demographic search cannot tell apart).

Modules: `population` (seeded patients and diary), `patients` (the patient index), `scheduling`
(appointments and slots), `clinical` (charts), `providers` (the clinician roster), `events` and
`queries` (what each event type does, how each query is answered), `service` (the facade, the lock).
"""

from emulator.ehr.population import BIXBY_MRN, DUPLICATE_GROUPS, DuplicateGroup, LookAlike
from emulator.ehr.service import QueryRejected, SyntheticEHR

__all__ = ["BIXBY_MRN", "DUPLICATE_GROUPS", "DuplicateGroup", "LookAlike", "QueryRejected", "SyntheticEHR"]
