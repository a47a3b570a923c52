"""`redox-emulator validate FILE...` and `redox-emulator contracts import schemas.zip`, as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from emulator.contracts import payloads
from emulator.contracts.validator import ContractValidator
from emulator.sandbox import Sandbox
from emulator.settings import Settings


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "emulator", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_validate_passes_valid_files_and_names_file_path_and_text_for_invalid_ones(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(payloads.build("Device", "New", seed=1)))
    broken = payloads.build("Device", "New", seed=1)
    del broken["Device"]["ID"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken))
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"Meta": {"DataModel": "Device", "EventType": "Neww"}}))
    (tmp_path / "junk.json").write_text("{not json")

    ok = cli("validate", str(good), cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == ""

    failed = cli("validate", str(good), str(bad), str(typo), "junk.json", cwd=tmp_path)
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert f"{bad}: $.Device.ID: Required field missing - Device.ID in Device:New" in lines
    assert any(line.startswith(f'{typo}: $.Meta.EventType: Unknown EventType "Neww"') for line in lines)
    assert any(line.startswith("junk.json: not JSON") for line in lines)
    assert not any(line.startswith(str(good)) for line in lines)
    assert "4 files, 3 invalid" in failed.stderr


def test_validate_strict_mode_reports_unknown_fields(tmp_path: Path) -> None:
    payload = payloads.build("Device", "New", seed=1)
    payload["Device"]["Serial"] = "X"
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(payload))
    assert cli("validate", str(path), cwd=tmp_path).returncode == 0
    strict = cli("validate", "--contract-mode", "strict", str(path), cwd=tmp_path)
    assert strict.returncode == 1
    assert f"{path}: $.Device.Serial: Unknown field - Device.Serial in Device:New" in strict.stdout


# A team's official bundle, as small as a test can make it: Device.New demands a Serial, and
# PatientAdmin.NewPatient, in a folder, demands Patient.Demographics.FirstName.
DEVICE = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object", "required": ["Meta", "Device"],
          "properties": {"Meta": {"type": "object", "required": ["DataModel", "EventType"],
                                  "properties": {"DataModel": {"type": "string"}, "EventType": {"type": "string"}}},
                         "Device": {"type": "object", "required": ["ID", "Serial"],
                                    "properties": {"ID": {"type": "string"}, "Serial": {"type": "string"}}}}}
NEW_PATIENT = {"type": "object", "required": ["Meta", "Patient"], "properties": {
    "Meta": {"type": "object"},
    "Patient": {"type": "object", "required": ["Demographics"], "properties": {
        "Demographics": {"type": "object", "required": ["FirstName"], "properties": {
            "FirstName": {"type": "string"}}}}}}}


def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "schemas.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schemas/device-new.json", json.dumps(DEVICE))
        archive.writestr("schemas/PatientAdmin/NewPatient.json", json.dumps(NEW_PATIENT))
        archive.writestr("schemas/README.txt", "not a schema")
        archive.writestr("schemas/shared-types.json", "{}")
    return path


def test_an_imported_bundle_replaces_the_bundled_contracts_of_its_event_types(tmp_path: Path) -> None:
    imported = tmp_path / "contracts"
    r = cli("contracts", "import", str(bundle(tmp_path)), "--contracts-dir", str(imported), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 event types imported" in r.stdout
    assert "skipped: schemas/shared-types.json" in r.stderr
    assert sorted(p.name for p in imported.glob("*.json")) == ["Device.New.json", "PatientAdmin.NewPatient.json",
                                                              "bundle.json"]

    sandbox = Sandbox(Settings(db=":memory:", contracts_dir=str(imported)))
    try:
        device = payloads.build("Device", "New", seed=1)
        [problem] = sandbox.contracts.problems(device, "Device", "New")
        assert (problem.text, problem.path) == ("Required field missing - Device.Serial in Device:New",
                                                "$.Device.Serial")
        device["Device"]["Serial"] = "SN-1"
        assert sandbox.contracts.problems(device, "Device", "New") == []
        # Strict holds the bundle's Meta to what it lists, plus Message and Transmission as Redox sends them.
        strict = {p.path for p in sandbox.contracts.problems(device, "Device", "New", "strict")}
        assert "$.Meta.Destinations" in strict
        assert "$.Meta.Message" not in strict
        patient = payloads.build("PatientAdmin", "NewPatient", seed=1)
        assert sandbox.contracts.problems(patient, "PatientAdmin", "NewPatient") == []
        del patient["Patient"]["Demographics"]["FirstName"]
        assert [p.path for p in sandbox.contracts.problems(patient, "PatientAdmin", "NewPatient")] == [
            "$.Patient.Demographics.FirstName"]
        # Event types the bundle lacks keep the bundled contract.
        results = payloads.build("Results", "New", seed=1)
        del results["Orders"]
        assert sandbox.contracts.problems(results, "Results", "New") != []
    finally:
        sandbox.close()


def test_a_bundle_with_a_broken_schema_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "schemas.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Device.New.json", json.dumps({"type": "no-such-type"}))
    r = cli("contracts", "import", str(path), "--contracts-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 1
    assert "Device.New.json: not a usable JSON Schema" in r.stderr
    assert not (tmp_path / "c").exists()
    not_zip = tmp_path / "x.zip"
    not_zip.write_text("plain text")
    r = cli("contracts", "import", str(not_zip), "--contracts-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 1 and "not a readable zip file" in r.stderr


def test_contract_mode_comes_from_config_env_and_flags(tmp_path: Path) -> None:
    from emulator import settings

    assert settings.load(None, {}).contract_mode == "redox"
    assert settings.load(None, {"REDOX_EMULATOR_CONTRACT_MODE": "strict"}).contract_mode == "strict"
    assert settings.load(None, {"REDOX_EMULATOR_CONTRACT_MODE": "strict"}, contract_mode="off").contract_mode == "off"
    config = tmp_path / "emulator.yaml"
    config.write_text("contract_mode: strickt\n")
    r = cli("serve", "--config", str(config), cwd=tmp_path)
    assert r.returncode == 1
    assert 'contract_mode must be one of redox, strict, off, found \'strickt\'. Did you mean "strict"?' in r.stderr
    validator = ContractValidator(payloads.bundled(), "strict")
    validator.mode = "off"
    validator.reset()
    assert validator.mode == "strict"
