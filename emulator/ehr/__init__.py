"""The synthetic EHR behind the default "Redox EMR" destination (SPEC 5.3).

Interface used by the rest of the emulator (keep it stable):

    ehr = SyntheticEHR(seed=1, population=200, clock=clock)
    ehr.consume(payload)      # an async event routed to the EHR; may change its state
    ehr.answer(payload) -> dict  # a query; the response body, whose Meta carries DataModel and EventType
    ehr.reset()               # back to the seeded population
    QueryRejected(text)       # raised by answer(): rendered as 400, Type "transmission", Module "Send"
"""

from emulator.ehr.service import QueryRejected, SyntheticEHR

__all__ = ["QueryRejected", "SyntheticEHR"]
