"""Contract suites: `contracts/suites/<suite>.yaml` names a group of scenarios (auth, send, query...).

    description: What a client must do about tokens.
    scenarios: [token-expiry, token-revocation]

A name on the command line is a suite, a scenario in the library (`scenarios/`) or in
`contracts/scenarios/`, or a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from emulator import catalog, resources
from emulator.errors import LoadError
from emulator.scenarios import library

SUITES_DIR = resources.CONTRACTS / "suites"
CONTRACT_SCENARIOS = resources.CONTRACTS / "scenarios"  # only the harness needs these (a client's send, its webhook)


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    description: str
    scenarios: tuple[str, ...]


def load_all(directory: Path = SUITES_DIR) -> dict[str, Suite]:
    suites: dict[str, Suite] = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names = raw.get("scenarios") if isinstance(raw, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise LoadError(f"{path}: a suite has `scenarios`, a list of scenario names")
        suites[path.stem] = Suite(path.stem, str(raw.get("description", "")), tuple(names))
    return suites


def resolve(names: list[str], scenarios_dir: Path, suites_dir: Path = SUITES_DIR) -> list[tuple[str, Path]]:
    """(suite, scenario file) for each name given; none given: every suite (then the library's rest)."""
    suites = load_all(suites_dir)
    chosen: list[tuple[str, Path]] = []
    for name in names or list(suites):
        if name in suites:
            chosen.extend((name, scenario_file(s, scenarios_dir)) for s in suites[name].scenarios)
        else:
            try:
                chosen.append(("", scenario_file(name, scenarios_dir)))
            except LoadError as error:
                raise LoadError(f"{error}{catalog.did_you_mean(name, suites)} Suites: {', '.join(suites)}") from None
    if not names:  # library scenarios that no suite names still run
        named = {p.resolve() for _, p in chosen}
        rest = (library.resolve(n, scenarios_dir) for n in library.names(scenarios_dir))
        chosen.extend(("", path) for path in rest if path.resolve() not in named)
    seen: set[Path] = set()
    unique = []
    for suite, path in chosen:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((suite, path))
    return unique


def scenario_file(name: str, scenarios_dir: Path) -> Path:
    """The library's file of that name, else the harness's own (contracts/scenarios/), else a path."""
    if "/" not in name and not name.endswith(library.SUFFIXES) and name in library.names(CONTRACT_SCENARIOS) \
            and name not in library.names(scenarios_dir):
        return library.resolve(name, CONTRACT_SCENARIOS)
    return library.resolve(name, scenarios_dir)
