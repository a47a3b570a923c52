"""The Redox authentication flows (SPEC 5.1) as plain Python: legacy API key, refresh, OAuth 2.0.

The HTTP layer parses requests into these calls and renders what they return or raise:
`AuthError` for the legacy routes (401 "Invalid request"), `OAuthError` for /v2/auth/token.
"""

from __future__ import annotations

import functools
import hmac
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from emulator.clock import Clock, iso
from emulator.errors import AuthError, OAuthError
from emulator.keys import ALGORITHMS, KeyRegistry
from emulator.settings import Settings, Source
from emulator.tokens import Grant, TokenStore

if TYPE_CHECKING:  # PyJWT (and cryptography, 12 MB resident) is imported for the first signed-JWT assertion
    import jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
IAT_WINDOW = 300.0  # an assertion's iat must be within the last five minutes...
SKEW = 10.0  # ...give or take this much clock skew
NO_KEY = "Public key not found, check client_id, kid and Redox dashboard settings"
_HS384 = "HS384"


@functools.cache
def _jws() -> jwt.PyJWS:
    """Verifies signatures only: the claims are checked by `_check_claims`, on the emulator's clock.
    RSA keys under 2048 bits never get here: `keys.parse_jwks` refuses them."""
    import jwt
    from jwt.algorithms import HMACAlgorithm

    class _ClientSecretHMAC(HMACAlgorithm):
        """HS384 keyed with the client secret as configured, however short.

        RFC 7518 recommends a 48-byte key; PyJWT warns below that, which is the client's choice to
        make, not a reason for the emulator to warn on (or, with warnings as errors, fail) every request.
        """

        def check_key_length(self, key: bytes) -> str | None:
            return None

    jws = jwt.PyJWS(algorithms=list(ALGORITHMS))
    jws.register_algorithm(_HS384, _ClientSecretHMAC(HMACAlgorithm.SHA384))
    return jws


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The fields of a /v2/auth/token request, already read from the form or Basic header."""

    grant_type: str | None
    client_id: str | None = None
    client_secret: str | None = None
    assertion_type: str | None = None
    assertion: str | None = None
    token_url: str = ""  # the URL the client called, which `aud` must equal


class Authenticator:
    def __init__(self, settings: Settings, clock: Clock, tokens: TokenStore, keys: KeyRegistry) -> None:
        self._settings = settings
        self._clock = clock
        self._tokens = tokens
        self._keys = keys
        self._by_api_key = {s.api_key: s for s in settings.sources if s.api_key}
        self._by_client_id = {s.client_id: s for s in settings.sources if s.client_id}

    def use_settings(self, settings: Settings) -> None:
        """Token lifetimes changed by a scenario's setup; sources and keys stay as they were built."""
        self._settings = settings

    def register_configured_keys(self) -> None:
        for source in self._settings.sources:
            if source.jwks is not None and source.client_id:
                self._keys.set_jwks(source.client_id, source.jwks)

    def source_for_client(self, client_id: str) -> Source | None:
        return self._by_client_id.get(client_id)

    # ---- legacy ---------------------------------------------------------------------------
    def authenticate(self, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            raise AuthError("body is not a JSON object")
        api_key, secret = body.get("apiKey"), body.get("secret")
        if not isinstance(api_key, str) or not isinstance(secret, str):
            raise AuthError("apiKey and secret are required")
        source = self._by_api_key.get(api_key)
        if source is None or not _same(secret, source.api_secret or ""):
            raise AuthError("unknown apiKey or wrong secret")
        return self._legacy_tokens(source, api_key)

    def refresh(self, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            raise AuthError("body is not a JSON object")
        api_key, refresh_token = body.get("apiKey"), body.get("refreshToken")
        if not isinstance(api_key, str) or not isinstance(refresh_token, str):
            raise AuthError("apiKey and refreshToken are required")
        source_id = self._tokens.redeem_refresh(refresh_token, api_key)
        source = self._by_api_key.get(api_key)
        if source_id is None or source is None:
            raise AuthError("unknown refresh token for this apiKey")
        return self._legacy_tokens(source, api_key)

    def _legacy_tokens(self, source: Source, api_key: str) -> dict[str, str]:
        grant = self._tokens.issue(source.id, self._settings.legacy_token_lifetime, "legacy")
        return {
            "accessToken": grant.token,
            "expires": iso(grant.expires_at),
            "refreshToken": self._tokens.issue_refresh(source.id, api_key),
        }

    # ---- OAuth 2.0 ------------------------------------------------------------------------
    def token(self, request: TokenRequest) -> dict[str, Any]:
        if request.grant_type is None:
            raise OAuthError("Missing grant_type parameter")
        if request.grant_type != "client_credentials":
            raise OAuthError("The grant_type parameter should equal 'client_credentials'")
        if request.assertion_type is not None or request.assertion is not None or request.client_secret is None:
            source = self._verify_assertion(request)
        else:
            source = self._verify_secret(request)
        grant = self._tokens.issue(source.id, self._settings.oauth_token_lifetime, "oauth")
        return {
            "access_token": grant.token,
            "token_type": "Bearer",
            "expires_in": int(self._settings.oauth_token_lifetime),
            "scope": "",
        }

    def _verify_secret(self, request: TokenRequest) -> Source:
        source = self._by_client_id.get(request.client_id or "")
        if source is None or not _same(request.client_secret or "", source.client_secret or ""):
            raise OAuthError("Invalid client credentials, check client_id and client_secret", status=401)
        return source

    def _verify_assertion(self, request: TokenRequest) -> Source:
        if request.assertion_type is None:
            raise OAuthError("Missing client assertion type")
        if request.assertion_type != ASSERTION_TYPE:
            raise OAuthError("Invalid client assertion type")
        if not request.assertion:
            raise OAuthError("Missing client assertion")
        import jwt  # see _jws()

        try:
            header = jwt.get_unverified_header(request.assertion)
            claims = jwt.decode(request.assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            # The request is complete; its credential is not a JWT: client authentication failed
            # (RFC 7523 section 3.2), 401 like any bad credential. Redox does not document the status.
            raise OAuthError("Malformed client assertion: not a JWT", status=401) from None
        alg = header.get("alg")
        if alg not in (*ALGORITHMS, _HS384):
            raise OAuthError(f"JWT algorithm {alg!r} is not allowed: use RS384, ES384 or HS384", status=401)
        kid = header.get("kid")
        if alg != _HS384 and not kid:
            raise OAuthError("JWT header kid property is required")
        client_id = claims.get("iss")
        source = self._by_client_id.get(client_id) if isinstance(client_id, str) else None
        if source is None or not isinstance(client_id, str):
            raise OAuthError(NO_KEY, status=401)
        if request.client_id is not None and request.client_id != client_id:  # RFC 7521 section 4.2
            raise OAuthError("Invalid client assertion: iss must equal the client_id parameter", status=401)
        key: Any
        if alg == _HS384:
            key = source.client_secret
        else:
            found = self._keys.find(client_id, str(kid))
            key = found.key if found is not None else None
            if found is not None and found.key_type != ALGORITHMS[alg]:
                raise OAuthError(f"Invalid client assertion: the key {kid!r} is an {found.key_type} key, "
                                 f"which cannot verify {alg}", status=401)
        if not key:
            raise OAuthError(NO_KEY, status=401)
        try:
            _jws().decode(request.assertion, key, algorithms=[alg])
        except (jwt.PyJWTError, TypeError, ValueError):  # PyJWT raises TypeError for a key of the wrong type
            raise OAuthError("Invalid client assertion: signature verification failed", status=401) from None
        self._check_claims(claims, client_id, request.token_url)
        return source

    def _check_claims(self, claims: dict[str, Any], client_id: str, token_url: str) -> None:
        now = self._clock.now()
        if claims.get("sub") != client_id:
            raise OAuthError("Invalid client assertion: iss and sub must both equal the client_id", status=401)
        aud = claims.get("aud")
        if aud != token_url and not (isinstance(aud, list) and token_url in aud):
            raise OAuthError(f"Invalid client assertion: aud must be {token_url}", status=401)
        iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
        if not _number(iat):
            raise OAuthError("Invalid client assertion: iat (a NumericDate) is required", status=401)
        if iat < now - IAT_WINDOW - SKEW or iat > now + SKEW:
            raise OAuthError("Invalid client assertion: iat must be within the last 5 minutes", status=401)
        if not _number(exp):
            raise OAuthError("Invalid client assertion: exp (a NumericDate) is required", status=401)
        if exp <= now - SKEW:
            raise OAuthError("Invalid client assertion: the assertion has expired (exp)", status=401)
        if not isinstance(jti, str) or not jti:
            raise OAuthError("Invalid client assertion: jti is required", status=401)
        if not self._tokens.remember_jti(client_id, jti, until=max(exp, iat + IAT_WINDOW) + SKEW):
            raise OAuthError("Invalid client assertion: jti has already been used", status=401)

    # ---- bearer tokens --------------------------------------------------------------------
    def bearer(self, authorization: str | None) -> Grant:
        if not authorization:
            raise AuthError("missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization is not a Bearer token")
        grant, why = self._tokens.check(token.strip())
        if grant is None:
            raise AuthError(why)
        return grant


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _number(value: object) -> TypeGuard[float]:
    """A NumericDate: PyJWT reads JSON with `json.loads`, which also accepts NaN and Infinity."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
