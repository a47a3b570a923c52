"""A YAML file read into plain values, remembering where in the file every value and key came from.

PyYAML's `compose()` keeps a start mark on every node; walking the node tree ourselves (rather than
`safe_load`) lets every later problem name its file, line and column, and lets us refuse duplicate
keys, which `safe_load` silently overwrites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a scenario file is first read: a fresh emulator seldom reads one (1 MB)
    import yaml

Path = tuple[str | int, ...]  # a JSON path as keys and indexes: ("rules", 0, "when")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, in the `file:line:column: message` shape editors understand."""

    file: str
    line: int
    column: int
    path: Path
    message: str

    def __str__(self) -> str:
        where = f" {dotted(self.path)}:" if self.path else ""
        return f"{self.file}:{self.line}:{self.column}:{where} {self.message}"


@dataclass(slots=True)
class Document:
    file: str
    data: Any = None
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)  # value -> (line, column), 1-based
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)  # the key of a mapping entry
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """The mark of `path`, or of its nearest ancestor that has one (a missing key: its mapping)."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if key and end == len(path) and prefix in self.key_marks:
                return self.key_marks[prefix]
            if prefix in self.marks:
                return self.marks[prefix]
        return (1, 1)

    def problem(self, path: Path, message: str, *, key: bool = False) -> Problem:
        line, column = self.where(path, key=key)
        found = Problem(self.file, line, column, path, message)
        self.problems.append(found)
        return found


def read(file: str, text: str) -> Document:
    """Parse `text`; YAML syntax errors and duplicate keys end up in `Document.problems`."""
    import yaml

    doc = Document(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _value(loader, node, (), doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "invalid YAML"
        doc.problems.append(Problem(file, line, column, (), f"YAML syntax error: {what}"))
    except yaml.YAMLError as exc:  # a reader error (bad character) has no problem_mark
        doc.problems.append(Problem(file, 1, 1, (), f"YAML syntax error: {exc}"))
    finally:
        loader.dispose()
    return doc


def _value(loader: yaml.SafeLoader, node: yaml.Node, path: Path, doc: Document) -> Any:
    import yaml  # loaded by read(): a dictionary look-up
    doc.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)  # YAML allows `200:` or `yes:`; the schema then names it as text
            child = (*path, key)
            doc.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                line, column = doc.key_marks[child]
                doc.problems.append(Problem(doc.file, line, column, child, f"duplicate key {key!r}"))
            result[key] = _value(loader, value_node, child, doc)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_value(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    # A scenario is JSON-shaped: YAML's unquoted dates (DOB: 2008-01-06) stay the text they were written as.
    return node.value if isinstance(value, date | datetime) else value


def dotted(path: Path) -> str:
    """("rules", 0, "when", "json", "$.Meta.x") -> rules[0].when.json["$.Meta.x"]"""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out
