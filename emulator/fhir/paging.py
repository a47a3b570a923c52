"""searchset Bundles and Redox's paging links: `{base}/page/{Resource}/search/{uuid}.{relation}`.

Each page answered gets a token (a UUID) that remembers the search and where the page starts; its
links are that token with `.search` and `.first` (the first page), `.self`, `.next` (when more follow)
and `.previous` (HL7's, when it is not the first). Following a link runs the search again on the EHR's
state of that moment (HL7 allows a server that), so a page reflects what changed since. Tokens are kept
for the most recent `MAX_TOKENS` pages and forgotten on reset.

A searchset is encoded once per EHR generation (`template`): the page's token is the only part that
differs from one answer to the next, so it is a placeholder in the kept JSON, filled in per answer.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

MAX_TOKENS = 10_000
RELATIONS = ("search", "next", "previous", "first", "self")
# Tokens name a page, they guard nothing: a PRNG seeded once, not uuid4's os.urandom (a system call that
# costs more here than the rest of a search by identifier).
_RANDOM = random.Random()


@dataclass(frozen=True, slots=True)
class Page:
    kind: str
    pairs: tuple[tuple[str, str], ...]  # the search's parameters as given
    offset: int
    count: int
    base: str  # the FHIR base URL the search was made on: its links are valid there only


class Pages:
    def __init__(self) -> None:
        self._tokens: OrderedDict[str, tuple[str, tuple[tuple[str, str], ...], int, int, str]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, page: Page) -> str:
        token = new_token()
        # Kept as a plain tuple of strings and numbers, which the garbage collector stops tracking: as
        # `Page` objects the MAX_TOKENS kept pages would be walked again by every full collection.
        kept = (page.kind, page.pairs, page.offset, page.count, page.base)
        with self._lock:
            self._tokens[token] = kept
            while len(self._tokens) > MAX_TOKENS:
                self._tokens.popitem(last=False)
        return token

    def get(self, token: str) -> Page | None:
        with self._lock:
            kept = self._tokens.get(token)
        return None if kept is None else Page(*kept)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


def new_token() -> str:
    """A random (version 4) UUID as text: what `str(uuid.UUID(int=..., version=4))` gives, in a third of
    its time."""
    n = (_RANDOM.getrandbits(128) & ~(0xF000 << 64 | 0xC000 << 48)) | (0x4000 << 64 | 0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def follow(page: Page, relation: str) -> Page:
    """The page a link of `page` leads to."""
    if relation in ("search", "first"):
        offset = 0
    elif relation == "next":
        offset = page.offset + page.count
    elif relation == "previous":
        offset = max(0, page.offset - page.count)
    else:
        offset = page.offset
    return Page(page.kind, page.pairs, offset, page.count, page.base)


def bundle(token: str, page: Page, total: int, matches: list[dict[str, Any]],
           included: list[dict[str, Any]]) -> dict[str, Any]:
    def url(relation: str) -> str:
        return f"{page.base}/page/{page.kind}/search/{token}.{relation}"

    entries = [{"fullUrl": f"{page.base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": mode}}
               for mode, group in (("match", matches), ("include", included)) for r in group]
    links = [{"relation": "search", "url": url("search")}]
    if page.count and page.offset + page.count < total:
        links.append({"relation": "next", "url": url("next")})
    if page.offset > 0:
        links.append({"relation": "previous", "url": url("previous")})
    links += [{"relation": "first", "url": url("first")}, {"relation": "self", "url": url("self")}]
    found: dict[str, Any] = {"resourceType": "Bundle", "id": token, "type": "searchset", "total": total}
    if entries:
        found["entry"] = entries
    found["link"] = links
    return found


# Stands for the token in a kept searchset: UUID-shaped (the JSON around it is what a real token gives)
# and checked to occur only where the token goes (see `template`).
PLACEHOLDER = "00000000-0000-4000-8000-0000f41c7e11"
_PLACEHOLDER = PLACEHOLDER.encode()


@dataclass(frozen=True, slots=True)
class Template:
    """A searchset Bundle encoded as JSON, cut where its token goes."""

    parts: tuple[bytes, ...]

    def fill(self, token: str) -> bytes:
        return token.encode().join(self.parts)

    @property
    def size(self) -> int:
        return sum(map(len, self.parts))


def template(page: Page, total: int, matches: list[dict[str, Any]], included: list[dict[str, Any]]) -> Template | None:
    """`bundle` encoded with a placeholder token; None if the placeholder occurs anywhere but in the Bundle's
    id and its links (a resource that carries it: that searchset is then encoded per answer)."""
    found = bundle(PLACEHOLDER, page, total, matches, included)
    parts = tuple(orjson.dumps(found).split(_PLACEHOLDER))
    return Template(parts) if len(parts) == 2 + len(found["link"]) else None
