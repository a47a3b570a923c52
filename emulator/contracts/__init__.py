"""Data-model contracts: a JSON Schema per Redox DataModel and EventType, and what enforces them.

    schemas.py    the contract files: bundled (contracts/schemas/) or a team's imported bundle
    relax.py      published schema -> what Redox enforces (nulls, Meta.Message...); strict variant
    validator.py  ContractValidator: fast yes/no, Redox-worded Meta.Errors when no; the modes
    bundle.py     `redox-emulator contracts import schemas.zip`
    payloads.py   valid, realistic payloads for every event type, from the synthetic EHR's patients
    generate.py   writes contracts/schemas/ from the `redox` package (a generator-only dependency)
"""
