"""Access tokens: issued by the auth flows, checked on every Redox route, on the emulator's clock."""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass

from emulator.clock import Clock

PRUNE_AT = 10_000  # entries in a table before it is first swept of expired ones
MAX_REFRESH_TOKENS = 100_000  # unspent refresh tokens kept; the oldest go first (Redox states no lifetime)


@dataclass(slots=True)
class Grant:
    token: str
    source_id: str
    expires_at: float
    flow: str  # "legacy" | "oauth"
    revoked: bool = False


class TokenStore:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, tuple[str, str]] = {}  # refresh token -> (source ID, api key)
        self._jtis: dict[str, float] = {}  # (client_id, jti) seen -> forget after this time
        # Sweep dead entries when a table outgrows its mark, then move the mark past what is still live,
        # so that many live tokens cost one sweep per doubling, not one per issued token.
        self._access_mark = self._jti_mark = PRUNE_AT
        self._lock = threading.Lock()

    def issue(self, source_id: str, lifetime: float, flow: str) -> Grant:
        token = str(uuid.uuid4()) if flow == "legacy" else secrets.token_urlsafe(32)
        grant = Grant(token, source_id, self._clock.now() + lifetime, flow)
        with self._lock:
            if len(self._access) > self._access_mark:
                now = self._clock.now()
                self._access = {t: g for t, g in self._access.items() if g.expires_at > now and not g.revoked}
                self._access_mark = max(PRUNE_AT, 2 * len(self._access))
            self._access[token] = grant
        return grant

    def issue_refresh(self, source_id: str, api_key: str) -> str:
        token = str(uuid.uuid4())
        with self._lock:
            if len(self._refresh) >= MAX_REFRESH_TOKENS:  # dicts keep insertion order: drop the oldest
                del self._refresh[next(iter(self._refresh))]
            self._refresh[token] = (source_id, api_key)
        return token

    def redeem_refresh(self, refresh_token: str, api_key: str) -> str | None:
        """The source ID, and the refresh token is spent; None if unknown or for another key."""
        with self._lock:
            owner = self._refresh.get(refresh_token)
            if owner is None or owner[1] != api_key:
                return None
            del self._refresh[refresh_token]
            return owner[0]

    def check(self, token: str) -> tuple[Grant | None, str]:
        """The live grant for a bearer token, or None and why not."""
        grant = self._access.get(token)
        if grant is None:
            return None, "unknown token"
        if grant.revoked:
            return None, "revoked token"
        if grant.expires_at <= self._clock.now():
            return None, "expired token"
        return grant, ""

    def revoke(self, token: str) -> bool:
        grant = self._access.get(token)
        if grant is None:
            return False
        grant.revoked = True
        return True

    def expire(self, token: str) -> bool:
        grant = self._access.get(token)
        if grant is None:
            return False
        grant.expires_at = self._clock.now()
        return True

    def remember_jti(self, client_id: str, jti: str, until: float) -> bool:
        """False if this assertion ID was already used by this client (a replay)."""
        key = f"{client_id}\x00{jti}"
        with self._lock:
            now = self._clock.now()
            if len(self._jtis) > self._jti_mark:
                self._jtis = {k: t for k, t in self._jtis.items() if t > now}
                self._jti_mark = max(PRUNE_AT, 2 * len(self._jtis))
            if self._jtis.get(key, now) > now:
                return False
            self._jtis[key] = until
            return True

    def clear(self) -> None:
        with self._lock:
            self._access.clear()
            self._refresh.clear()
            self._jtis.clear()
            self._access_mark = self._jti_mark = PRUNE_AT
