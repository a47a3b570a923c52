"""`GET metadata`: a CapabilityStatement of exactly what is served, built from the same tables search uses.

`rest.security` carries SMART's `oauth-uris` extension with the token URL (Redox's `/v2/auth/token`),
so a generic client that reads metadata first (fhirclient) finds where to get a token.
"""

from __future__ import annotations

from typing import Any

from emulator import __version__
from emulator.fhir.params import PARAMS, RESULT_PARAMS, includes, revincludes
from emulator.fhir.resources import TYPES
from emulator.fhir.writeback import EVENT_PREFIX, OPERATIONS

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
RELEASE_DATE = "2025-01-01"
_DOCS = {"token": "a token: [system]|[code]", "string": "a string: case-insensitive prefix; :exact, :contains",
         "date": "a date: prefixes eq ne gt ge lt le", "reference": "a reference: Type/id or id; chainable",
         "composite": "a composite: values joined by $"}


def statement(base: str, token_url: str) -> dict[str, Any]:
    resources = []
    for kind in TYPES:
        entry: dict[str, Any] = {
            "type": kind,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "no-version",
            "readHistory": False, "updateCreate": False, "conditionalCreate": False, "conditionalRead": "not-supported",
            "conditionalUpdate": False, "conditionalDelete": "not-supported",
            "searchInclude": includes(kind),
            "searchParam": [{"name": p.name, "type": p.type, "documentation": _DOCS[p.type]}
                            for p in PARAMS[kind].values()],
        }
        rev = revincludes(kind)
        if rev:
            entry["searchRevInclude"] = rev
        operations = [{"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match"}] \
            if kind == "Patient" else []
        # Redox publishes no OperationDefinition for its writebacks: the definition names its EventDefinition.
        operations += [{"name": op[1:], "definition": f"{EVENT_PREFIX}{event}"}
                       for op, (k, event, _) in OPERATIONS.items() if k == kind]
        if operations:
            entry["operation"] = operations
        if any(k == kind for k, _, _ in OPERATIONS.values()):
            entry["versioning"] = "versioned"  # written resources carry meta.versionId
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": RELEASE_DATE,
        "publisher": "Redox sandbox emulator",
        "kind": "instance",
        "software": {"name": "redox-emulator", "version": __version__},
        "implementation": {"description": "A local Redox FHIR R4 API on the emulator's synthetic EHR", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Search with POST {Resource}/_search (form, JSON or no body) or GET {Resource}?...; "
                             f"result parameters {', '.join(RESULT_PARAMS)}; paging links "
                             "{base}/page/{Resource}/search/{uuid}.next",
            "security": {
                "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                         "code": "SMART-on-FHIR"}], "text": "OAuth 2.0 client credentials (Redox)"}],
                "description": f"Authorization: Bearer <token> from POST {token_url} (client secret, HTTP Basic or a "
                               "signed JWT assertion) or a legacy /auth/authenticate token",
            },
            "resource": resources,
        }],
    }
