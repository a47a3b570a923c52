"""searchset Bundles and Redox's paging links: `{base}/page/{Resource}/search/{uuid}.{relation}`.

Each page answered gets a token (a UUID) that remembers the search and where the page starts; its
links are that token with `.search` and `.first` (the first page), `.self`, `.next` (when more follow)
and `.previous` (HL7's, when it is not the first). Following a link runs the search again on the EHR's
state of that moment (HL7 allows a server that), so a page reflects what changed since. Tokens are kept
for the most recent `MAX_TOKENS` pages and forgotten on reset.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

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
        self._tokens: OrderedDict[str, Page] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, page: Page) -> str:
        token = str(uuid.UUID(int=_RANDOM.getrandbits(128), version=4))
        with self._lock:
            self._tokens[token] = page
            while len(self._tokens) > MAX_TOKENS:
                self._tokens.popitem(last=False)
        return token

    def get(self, token: str) -> Page | None:
        with self._lock:
            return self._tokens.get(token)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


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
