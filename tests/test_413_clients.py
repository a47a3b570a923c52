"""An over-limit body gets Redox's 413, readable by every common client: the server reads and discards
the body (up to a bound) before it answers and closes, so no client sees a reset instead (real socket)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest

from emulator.server import Server
from emulator.settings import Settings

BIG = b'{"Meta": {"DataModel": "PatientAdmin", "x": "' + b"a" * (11 * 1024 * 1024) + b'"}}'
NODE = shutil.which("node") or ("/usr/bin/node" if shutil.which("/usr/bin/node") else None)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Server, str]]:
    with Server(Settings(db=":memory:", port=0, host="127.0.0.1")) as running:
        token = httpx.post(running.url + "/v2/auth/token", data={
            "grant_type": "client_credentials", "client_id": "sandbox-client",
            "client_secret": "sandbox-client-secret"}).json()["access_token"]
        yield running, token


def _assert_redox_413(status: int, body: bytes) -> None:
    assert status == 413
    texts = [error["Text"] for error in json.loads(body)["Meta"]["Errors"]]
    assert any(text.startswith("Payload too large") for text in texts), texts


def test_urllib_reads_the_413(server: tuple[Server, str]) -> None:
    running, token = server
    request = urllib.request.Request(running.url + "/endpoint", data=BIG, headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    _assert_redox_413(answer.value.code, answer.value.read())


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_httpx_reads_the_413(server: tuple[Server, str], chunked: bool) -> None:
    running, token = server
    content = (BIG[i:i + 65536] for i in range(0, len(BIG), 65536)) if chunked else BIG
    with httpx.Client(base_url=running.url, timeout=30) as client:
        r = client.post("/endpoint", content=content, headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        _assert_redox_413(r.status_code, r.content)
        # The body was read, so the connection stays usable.
        assert client.get("/__emulator/health").status_code == 200


def test_urllib_chunked_reads_the_413(server: tuple[Server, str]) -> None:
    running, token = server
    request = urllib.request.Request(running.url + "/endpoint", data=iter([BIG]), headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}", "Transfer-Encoding": "chunked"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    _assert_redox_413(answer.value.code, answer.value.read())


NODE_SCRIPT = """
const [url, token] = process.argv.slice(1);
const body = Buffer.concat([Buffer.from('{"Meta": {"x": "'), Buffer.alloc(11 * 1024 * 1024, 97), Buffer.from('"}}')]);
fetch(url, {method: "POST", body, headers: {"Content-Type": "application/json", Authorization: "Bearer " + token}})
  .then(async (r) => { process.stdout.write(JSON.stringify({status: r.status, body: await r.text()})); })
  .catch((e) => { process.stdout.write(JSON.stringify({error: String(e), cause: String(e.cause)})); });
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_node_fetch_reads_the_413(server: tuple[Server, str]) -> None:
    running, token = server
    assert NODE is not None
    done = subprocess.run([NODE, "-e", NODE_SCRIPT, running.url + "/endpoint", token],
                          capture_output=True, timeout=60, check=True)
    answer = json.loads(done.stdout)
    assert "error" not in answer, answer
    _assert_redox_413(answer["status"], answer["body"].encode())
