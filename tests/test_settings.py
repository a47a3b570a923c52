"""Settings: embedded defaults, the YAML file, REDOX_EMULATOR_* variables, flags, and errors that teach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator import settings
from emulator.errors import ConfigError
from emulator.keys import new_key_pair


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emulator.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_embedded_defaults_are_the_redox_sandbox() -> None:
    s = settings.load(env={})
    assert (s.host, s.port, s.db) == ("127.0.0.1", 8787, ".emulator/emulator.db")
    [source] = s.sources
    assert (source.id, source.name) == ("7ce6f387-c33c-417d-8682-81e83628cbd9", "Redox Dev Tools")
    assert (source.api_key, source.api_secret) == ("sandbox-api-key", "sandbox-secret")
    assert (source.client_id, source.client_secret) == ("sandbox-client", "sandbox-client-secret")
    [destination] = s.destinations
    assert (destination.id, destination.name) == ("af394f14-b34a-464f-8d24-895f370af4c9", "Redox EMR")
    assert destination.verification_token == "sandbox-verification-token"
    assert destination.subscribes("Clinical Summary", "PatientQuery")
    assert (s.legacy_token_lifetime, s.oauth_token_lifetime, s.payload_limit) == (86400, 300, 10 * 1024 * 1024)


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 9000\nseed: 7\nrate_limit: 10\n")
    s = settings.load(path, env={"REDOX_EMULATOR_SEED": "8", "REDOX_EMULATOR_DB": ":memory:"}, rate_limit=None)
    assert (s.port, s.seed, s.db, s.rate_limit) == (9000, 8, ":memory:", 10)
    assert settings.load(path, env={"REDOX_EMULATOR_PORT": "9100"}, port=9200).port == 9200
    assert settings.load(env={"REDOX_EMULATOR_CONFIG": str(path)}).port == 9000


def test_sources_destinations_and_a_jwks_file(tmp_path: Path) -> None:
    _, jwk = new_key_pair("ES384")
    (tmp_path / "app.jwks.json").write_text(json.dumps({"keys": [jwk]}))
    path = write(tmp_path, """
sources:
  - id: 11111111-1111-1111-1111-111111111111
    name: My App
    client_id: my-app
    client_secret: shh
    jwks_path: app.jwks.json
destinations:
  - id: 22222222-2222-2222-2222-222222222222
    name: Lab
    subscriptions:
      Results: all
      Order: [New, Cancel]
""")
    s = settings.load(path, env={})
    [source], [destination] = s.sources, s.destinations
    assert source.client_id == "my-app" and source.jwks == {"keys": [jwk]}
    assert destination.subscribes("Results", "NewUnsolicited") and destination.subscribes("Order", "Cancel")
    assert not destination.subscribes("Order", "Update") and not destination.subscribes("PatientAdmin", "Arrival")


@pytest.mark.parametrize(("text", "message"), [
    ("prot: 1\n", "unknown setting 'prot'. Did you mean \"port\"?"),
    ("port: eighty\n", "port must be a number, found 'eighty'"),
    ("port: [1\n", ":2:1: YAML syntax error"),
    ("- 1\n", "the config file must be a mapping"),
    ("destinations: {}\n", "destinations must be a list"),
    ("destinations:\n  - nmae: Lab\n", "destinations[0]: unknown key 'nmae'. Did you mean \"name\"?"),
    ("destinations:\n  - subscriptions: {Reslts: all}\n", "unknown DataModel 'Reslts'. Did you mean \"Results\"?"),
    ("destinations:\n  - subscriptions: {Order: [Nw]}\n", "unknown EventType 'Nw'. Did you mean \"New\"?"),
    ("sources:\n  - id: a\n  - id: a\n", "two sources share the ID a"),
])
def test_config_errors_name_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        settings.load(path, env={})
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        settings.load(tmp_path / "absent.yaml", env={})


def test_bad_environment_value_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="payload_limit must be a number"):
        settings.load(env={"REDOX_EMULATOR_PAYLOAD_LIMIT": "lots"})


def test_db_sync_is_normal_by_default_full_on_request_and_nothing_else() -> None:
    assert settings.load(env={}).db_sync == "normal"
    assert settings.load(env={"REDOX_EMULATOR_DB_SYNC": "full"}).db_sync == "full"
    with pytest.raises(ConfigError, match=r"db_sync must be one of normal, full, found 'fulll'.*full"):
        settings.load(env={"REDOX_EMULATOR_DB_SYNC": "fulll"})
