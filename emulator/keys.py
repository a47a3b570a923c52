"""Public keys for signed-JWT client assertions: a JWK Set per client, and key-pair generation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.errors import ControlError

if TYPE_CHECKING:  # PyJWT and cryptography (12 MB resident) are imported when a first key is parsed or made
    import jwt

# The members RFC 7638 hashes for a thumbprint, per key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}
ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
_ALGORITHM_FOR = {kty: alg for alg, kty in ALGORITHMS.items()}
MIN_RSA_BITS = 2048


class KeyRegistry:
    """client_id -> kid -> public key. Replaced whole per client, as Redox's dashboard does."""

    def __init__(self) -> None:
        self._keys: dict[str, dict[str, jwt.PyJWK]] = {}
        self._raw: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def set_jwks(self, client_id: str, jwks: Any) -> list[str]:
        """Register a JWK Set of public keys for a client; returns the kids. ControlError if invalid."""
        keys = parse_jwks(jwks)
        with self._lock:
            self._keys[client_id] = keys
            self._raw[client_id] = [dict(k) for k in jwks["keys"]]
        return list(keys)

    def find(self, client_id: str, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(client_id, {}).get(kid)

    def jwks(self, client_id: str) -> dict[str, Any]:
        return {"keys": list(self._raw.get(client_id, []))}

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._raw.clear()


def parse_jwks(jwks: Any) -> dict[str, jwt.PyJWK]:
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ControlError('expected a JWK Set: {"keys": [ ... ]}')
    import jwt

    parsed: dict[str, jwt.PyJWK] = {}
    for i, jwk in enumerate(jwks["keys"]):
        where = f"keys[{i}]"
        if not isinstance(jwk, Mapping):
            raise ControlError(f"{where}: a JWK must be an object")
        if _PRIVATE_MEMBERS & set(jwk):
            raise ControlError(f"{where}: this JWK holds private key material; register the public key only")
        kty = jwk.get("kty")
        if not isinstance(kty, str) or kty not in _THUMBPRINT_MEMBERS:
            raise ControlError(f"{where}: kty must be RSA or EC, found {kty!r}")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ControlError(f"{where}: kid is required (Redox looks keys up by kid)")
        if kid in parsed:
            raise ControlError(f"{where}: kid {kid!r} is already used by an earlier key of this set")
        alg = _ALGORITHM_FOR[kty]
        if jwk.get("alg", alg) != alg:
            raise ControlError(f"{where}: alg must be {alg} for an {kty} key (Redox verifies RS384 and ES384), "
                               f"found {jwk.get('alg')!r}")
        if jwk.get("use", "sig") != "sig":
            raise ControlError(f'{where}: use must be "sig" for a signature key, found {jwk.get("use")!r}')
        try:
            key = jwt.PyJWK(dict(jwk), algorithm=alg)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, ArithmeticError, LookupError) as exc:
            raise ControlError(f"{where}: not a usable public key ({exc})") from None
        _check_strength(where, key.key)
        parsed[kid] = key
    return parsed


def _check_strength(where: str, key: Any) -> None:
    """Only keys that can verify RS384 or ES384, the algorithms Redox accepts."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ControlError(f"{where}: RSA keys must be at least {MIN_RSA_BITS} bits, found {key.key_size}")
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP384R1):
        raise ControlError(f"{where}: EC keys must be on curve P-384 (for ES384), found {key.curve.name}")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable kid for a key."""
    members = {k: jwk[k] for k in _THUMBPRINT_MEMBERS[str(jwk["kty"])]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def new_key_pair(alg: str = "RS384") -> tuple[bytes, dict[str, Any]]:
    """A private key as PEM and its public JWK (with kid, alg and use)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if alg == "RS384":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "ES384":
        private = ec.generate_private_key(ec.SECP384R1())
        public = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        raise ValueError(f"unsupported algorithm {alg!r}: use RS384 or ES384")
    public = {**public, "kid": thumbprint(public), "alg": alg, "use": "sig"}
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem, public


def write_key_pair(client_id: str, out: Path, alg: str = "RS384", *, force: bool = False
                   ) -> tuple[str, Path, Path]:
    """Write `<client_id>.private.pem` and `<client_id>.jwks.json` into `out`; returns (kid, pem, jwks).

    An existing private key is kept (FileExistsError) unless `force`: losing it silently breaks a client.
    """
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_id)
    pem_path, jwks_path = out / f"{safe}.private.pem", out / f"{safe}.jwks.json"
    if pem_path.exists() and not force:
        raise FileExistsError(f"{pem_path} exists; pass --force to replace it")
    pem, public = new_key_pair(alg)
    out.mkdir(parents=True, exist_ok=True)
    # Created owner-only, never readable by others even for a moment.
    fd = os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(pem)
    jwks_path.write_text(json.dumps({"keys": [public]}, indent=2) + "\n", encoding="utf-8")
    return str(public["kid"]), pem_path, jwks_path
