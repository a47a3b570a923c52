"""Redox's FHIR R4 API, as a model with no HTTP in it: the one synthetic EHR's state as FHIR resources.

Modules: `common` (ids, systems, codings, defensive readers), one mapping module per concern
(`patient`, `clinical`, `scheduling`, `directory`), `resources` (every resource of a type, read by
id), `params` (the search parameters per type), `values` (HL7 search value types), `search` (parse,
match, narrow, include), `paging` (searchset Bundles, Redox's page links), `match` (Patient/$match),
`capability` (the CapabilityStatement), `service` (the facade the web room calls: `FhirService`).

Only `service` holds state (the page tokens); everything else reads the EHR's state under its lock.
Plain dicts, not a model library: rendering stays cheap on the request path, and the tests check
every resource against fhirclient's R4 models (strict: an unknown element or a wrong type fails).
"""

from emulator.fhir.service import Answer, FhirService

__all__ = ["Answer", "FhirService"]
