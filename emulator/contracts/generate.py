"""Write `contracts/schemas/` from the `redox` package's Pydantic models (`make contracts`).

    python -m emulator.contracts.generate [--check]

Each event type's model emits a JSON Schema (`model_json_schema()`); this module inlines its `$defs`
and relaxes it the way real Redox traffic needs (see `relax.py`). Event types the package does not
model get a permissive schema that requires only Meta (listed in contracts/README.md). The `redox`
package is a generator dependency only (extra `contracts`); serving reads the committed files.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from emulator import catalog
from emulator.contracts import relax
from emulator.contracts.schemas import BUNDLED, file_name

DRAFT_04 = "http://json-schema.org/draft-04/schema#"


def model_class(data_model: str, event_type: str) -> Any | None:
    """The `redox` package's model for one event type, or None when the package has none."""
    module_name = "redox." + data_model.replace(" ", "").lower()
    class_name = event_type.replace("-", "")  # SSO Sign-On is `SignOn` there
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    return getattr(module, class_name, None)


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """The schema with every `$ref` replaced by its definition (Redox's models are not recursive)."""
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            raise ValueError(f"recursive model {name}: cannot inline")
        return _inline(defs[name], defs, (*seen, name))
    return {key: _inline(value, defs, seen) for key, value in node.items() if key != "$defs"}


def _from_model(cls: Any) -> dict[str, Any]:
    emitted = cls.model_json_schema(by_alias=True)
    return _inline(emitted, emitted.get("$defs", {}))  # type: ignore[no-any-return]


def permissive() -> dict[str, Any]:
    """For an event type the `redox` package lacks: Meta checked, the rest left open."""
    return {"type": "object", "required": ["Meta"], "properties": {"Meta": relax.meta_schema()},
            "x-permissive": True}


def build(data_model: str, event_type: str) -> dict[str, Any]:
    cls = model_class(data_model, event_type)
    schema = relax.relax(permissive() if cls is None else _from_model(cls))
    return {"$schema": DRAFT_04, "title": f"{data_model}.{event_type}", **schema}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> text, for every DataModel and EventType of the catalog."""
    return {file_name(model, event): render(build(model, event))
            for model, events in catalog.DATA_MODELS.items() for event in events}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED, help="directory to write (default %(default)s)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files are stale")
    args = parser.parse_args(argv)
    files = generate()
    stale = sorted(name for name, text in files.items()
                   if not (args.out / name).is_file() or (args.out / name).read_text(encoding="utf-8") != text)
    extra = sorted(p.name for p in args.out.glob("*.json") if p.name not in files) if args.out.is_dir() else []
    if args.check:
        for name in stale + extra:
            sys.stderr.write(f"stale: {args.out / name} (run `make contracts`)\n")
        return 1 if stale or extra else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in extra:
        (args.out / name).unlink()
    for name in stale:
        (args.out / name).write_text(files[name], encoding="utf-8")
    sys.stdout.write(f"{len(files)} schemas in {args.out} ({len(stale)} written, {len(extra)} removed)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
