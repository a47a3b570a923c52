"""`redox-emulator keys new`: a key pair on disk whose JWK Set registers and whose PEM gets a token."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from emulator.cli import main
from emulator.keys import thumbprint

TOKEN_PATH = "/v2/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def keys_new(*args: str) -> Any:
    result = CliRunner().invoke(main, ["keys", "new", *args])
    return result


def read_pair(out: Path, client_id: str) -> tuple[bytes, dict[str, Any]]:
    pem = (out / f"{client_id}.private.pem").read_bytes()
    jwks = json.loads((out / f"{client_id}.jwks.json").read_text(encoding="utf-8"))
    return pem, jwks


def get_token(client: httpx.Client, pem: bytes, alg: str, kid: str,
              client_id: str = "sandbox-client") -> httpx.Response:
    now = int(client.get("/__emulator/clock").json()["payload"]["epoch"])
    assertion = jwt.encode({"iss": client_id, "sub": client_id, "aud": str(client.base_url).rstrip("/") + TOKEN_PATH,
                            "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}, pem, algorithm=alg,
                           headers={"kid": kid})
    return client.post(TOKEN_PATH, data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                         "client_assertion": assertion})


@pytest.mark.parametrize(("alg", "kty", "key_type"), [
    ("RS384", "RSA", rsa.RSAPrivateKey),
    ("ES384", "EC", ec.EllipticCurvePrivateKey),
])
def test_keys_new_end_to_end(client: httpx.Client, tmp_path: Path, alg: str, kty: str, key_type: type) -> None:
    out = tmp_path / "keys"
    result = keys_new("--client-id", "sandbox-client", "--out", str(out), "--alg", alg)
    assert result.exit_code == 0, result.output
    kid = result.stdout.strip()
    assert kid and "\n" not in kid  # stdout is the kid alone, for `KID=$(redox-emulator keys new ...)`
    assert str(out / "sandbox-client.jwks.json") in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["sandbox-client.jwks.json", "sandbox-client.private.pem"]

    pem, jwks = read_pair(out, "sandbox-client")
    assert stat.S_IMODE((out / "sandbox-client.private.pem").stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert isinstance(private, key_type)
    [jwk] = jwks["keys"]
    assert jwk["kid"] == kid == thumbprint(jwk)
    assert jwk["kty"] == kty and jwk["alg"] == alg and jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(jwk)
    # the public JWK is the private key's public half
    assert jwt.PyJWK(jwk).key.public_numbers() == private.public_key().public_numbers()

    r = client.put("/__emulator/clients/sandbox-client/jwks", content=(out / "sandbox-client.jwks.json").read_bytes(),
                   headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["payload"] == {"client_id": "sandbox-client", "kids": [kid]}
    token = get_token(client, pem, alg, kid)
    assert token.status_code == 200, token.text
    sent = client.post("/endpoint", headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                       json={"Meta": {"DataModel": "PatientAdmin", "EventType": "NewPatient", "Test": True,
                                      "Destinations": [{"ID": "af394f14-b34a-464f-8d24-895f370af4c9"}]},
                             "Patient": {"Identifiers": []}})
    assert sent.status_code == 200, sent.text


def test_default_algorithm_is_rs384(tmp_path: Path) -> None:
    result = keys_new("--client-id", "sandbox-client", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    _, jwks = read_pair(tmp_path, "sandbox-client")
    assert jwks["keys"][0]["alg"] == "RS384" and jwks["keys"][0]["kty"] == "RSA"
    assert jwt.PyJWK(jwks["keys"][0]).key.key_size >= 2048


def test_each_run_makes_a_new_key(tmp_path: Path) -> None:
    first = keys_new("--client-id", "a", "--out", str(tmp_path / "1"), "--alg", "ES384").stdout.strip()
    second = keys_new("--client-id", "a", "--out", str(tmp_path / "2"), "--alg", "ES384").stdout.strip()
    assert first != second


def test_a_key_signed_for_another_client_is_refused(client: httpx.Client, tmp_path: Path) -> None:
    """A key registered for sandbox-client does not let an assertion claim to be another client."""
    result = keys_new("--client-id", "sandbox-client", "--out", str(tmp_path), "--alg", "ES384")
    pem, jwks = read_pair(tmp_path, "sandbox-client")
    assert client.put("/__emulator/clients/sandbox-client/jwks", json=jwks).status_code == 200
    r = get_token(client, pem, "ES384", result.stdout.strip(), client_id="someone-else")
    assert r.status_code == 401
    assert r.json()["error_description"] == "Public key not found, check client_id, kid and Redox dashboard settings"


def test_client_id_cannot_escape_the_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = keys_new("--client-id", "../../evil/x", "--out", str(out))
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out/.._.._evil_x.jwks.json", "out/.._.._evil_x.private.pem"]


def test_out_directory_is_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c"
    assert keys_new("--client-id", "c1", "--out", str(out)).exit_code == 0
    assert (out / "c1.private.pem").is_file() and (out / "c1.jwks.json").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "{tmp}"], "Missing option '--client-id'"),
    (["--client-id", "x"], "Missing option '--out'"),
    (["--client-id", "x", "--out", "{tmp}", "--alg", "HS384"], "Invalid value for '--alg'"),
    (["--client-id", "x", "--out", "{tmp}", "--alg", "RS256"], "Invalid value for '--alg'"),
    (["--client-id", "x", "--out", "{file}"], "is a file"),
])
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "a-file").write_text("x")
    args = [a.format(tmp=tmp_path / "out", file=tmp_path / "a-file") for a in args]
    result = keys_new(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_the_installed_command(client: httpx.Client, tmp_path: Path) -> None:
    """The console entry point, as a user runs it: the kid on stdout, the instructions on stderr."""
    done = subprocess.run([sys.executable, "-m", "emulator", "keys", "new", "--client-id", "sandbox-client",
                           "--out", str(tmp_path), "--alg", "ES384"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    kid = done.stdout.strip()
    pem, jwks = read_pair(tmp_path, "sandbox-client")
    assert jwks["keys"][0]["kid"] == kid
    assert "curl -X PUT" in done.stderr and "/__emulator/clients/sandbox-client/jwks" in done.stderr
    assert client.put("/__emulator/clients/sandbox-client/jwks", json=jwks).status_code == 200
    assert get_token(client, pem, "ES384", kid).status_code == 200


def test_thumbprint_matches_rfc_7638() -> None:
    """The RFC 7638 section 3.1 example: the kid `keys new` prints is the standard JWK thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXj"
             "BZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8"
             "KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_x"
             "BniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_an_existing_private_key_is_kept_unless_forced(tmp_path: Path) -> None:
    pem_path = tmp_path / "sandbox-client.private.pem"
    pem_path.write_text("old")
    pem_path.chmod(0o644)
    refused = CliRunner().invoke(main, ["keys", "new", "--client-id", "sandbox-client", "--out", str(tmp_path)])
    assert refused.exit_code == 1 and "pass --force to replace it" in refused.output
    assert pem_path.read_text() == "old"
    assert keys_new("--client-id", "sandbox-client", "--out", str(tmp_path), "--force").exit_code == 0
    assert stat.S_IMODE(pem_path.stat().st_mode) == 0o600
    assert pem_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
