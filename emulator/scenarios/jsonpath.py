"""The JSON path subset scenario rules use: `$.Patient.Demographics.LastName`, `$.Meta.Destinations[0].ID`,
`$.Patient.Identifiers[*].ID`, `$['Clinical Summary']`. Compiled once at load time; evaluating one
is a handful of dictionary look-ups, cheap enough for every request a rule sees.
"""

from __future__ import annotations

import re
from typing import Any

Step = str | int | None  # a key, an index, or None for [*]
_TOKEN = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[\*\]|\['([^']*)'\]|\["([^"]*)"\]""")
MISSING = object()


class JSONPathError(ValueError):
    pass


def compile_path(text: str) -> tuple[Step, ...]:
    if not text.startswith("$"):
        raise JSONPathError(f"a JSON path starts with '$', like $.Patient.Demographics.LastName; found {text!r}")
    steps: list[Step] = []
    at = 1
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None:
            raise JSONPathError(f"cannot read the JSON path {text!r} from character {at + 1} ({text[at:]!r}); "
                                "use .Name, ['Name with spaces'], [0] or [*]")
        name, index, quoted1, quoted2 = found.groups()
        if name is not None:
            steps.append(name)
        elif index is not None:
            steps.append(int(index))
        elif quoted1 is not None or quoted2 is not None:
            steps.append(quoted1 if quoted1 is not None else quoted2)
        else:
            steps.append(None)
        at = found.end()
    if not steps:
        raise JSONPathError("the JSON path '$' names the whole body; name a field, like $.Meta.EventType")
    return tuple(steps)


def values(document: Any, steps: tuple[Step, ...]) -> list[Any]:
    """Every value the path reaches ([*] can reach several); empty when it reaches none."""
    current = [document]
    for step in steps:
        following: list[Any] = []
        for item in current:
            if step is None:
                if isinstance(item, list):
                    following.extend(item)
                elif isinstance(item, dict):
                    following.extend(item.values())
            elif isinstance(step, int):
                if isinstance(item, list) and step < len(item):
                    following.append(item[step])
            elif isinstance(item, dict) and step in item:
                following.append(item[step])
        if not following:
            return []
        current = following
    return current
