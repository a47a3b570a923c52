"""Settings: the embedded sandbox defaults (SPEC section 4), a YAML file, `REDOX_EMULATOR_*` variables.

Precedence, lowest first: defaults, the config file, environment variables, CLI flags.
Scalars live at the top level so each has one obvious variable (`port` -> `REDOX_EMULATOR_PORT`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emulator import catalog
from emulator.errors import ConfigError

ENV_PREFIX = "REDOX_EMULATOR_"
ALL = "all"
WEBHOOK_ID = "0f8c9a3e-5b1d-4c7e-9a2f-6d3b8e1c4a70"  # the destination `--webhook-url` registers
WEBHOOK_NAME = "Webhook"
CONTRACT_MODES = ("redox", "strict", "off")
DEFAULT_DESTINATION_ID = "af394f14-b34a-464f-8d24-895f370af4c9"
FHIR = "fhir"  # a destination format: FHIR notification Bundles instead of the data model's events
DEFAULT_FHIR_SLUG = "redox-fhir-sandbox"  # Redox's FHIR sandbox, the default destination's FHIR slug
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DB_SYNC_MODES = ("normal", "full")  # SQLite synchronous levels for the store: see docs/config.md


@dataclass(frozen=True, slots=True)
class Source:
    """An application sending to Redox, with every credential it may authenticate with."""

    id: str = "7ce6f387-c33c-417d-8682-81e83628cbd9"
    name: str = "Redox Dev Tools"
    api_key: str | None = "sandbox-api-key"
    api_secret: str | None = "sandbox-secret"
    client_id: str | None = "sandbox-client"
    client_secret: str | None = "sandbox-client-secret"
    jwks: Mapping[str, Any] | None = None  # a JWK Set of public keys for signed-JWT assertions


@dataclass(frozen=True, slots=True)
class Destination:
    id: str = DEFAULT_DESTINATION_ID
    name: str = "Redox EMR"
    # "all", or {DataModel: "all" | [EventType, ...]}
    subscriptions: str | Mapping[str, Any] = ALL
    verification_token: str = "sandbox-verification-token"
    url: str | None = None  # the application's webhook; None: the synthetic EHR consumes
    handshake: str = "post"  # how the verification handshake is sent: "post" (JSON body) or "get" (query)
    fhir_slug: str | None = None  # its FHIR API at /fhir/R4/{slug}/...; the default destination: redox-fhir-sandbox
    format: str = "json"  # what a webhook receives: "json" (the data model's events) or "fhir" (notification Bundles)
    notifications: str = "detailed"  # for format fhir: "detailed" (the resources) or "lightweight" (references)

    @property
    def slug(self) -> str | None:
        """The FHIR slug it answers on: its own, or Redox's sandbox one for the default destination."""
        if self.fhir_slug is not None:
            return self.fhir_slug
        return DEFAULT_FHIR_SLUG if self.id == DEFAULT_DESTINATION_ID and self.url is None else None

    def subscribes(self, data_model: str, event_type: str) -> bool:
        """Whether a data-model event reaches it (a FHIR destination: as its notification, if it has one)."""
        if self.format == FHIR:
            notification = catalog.FHIR_FOR.get((data_model, event_type))
            return notification is not None and self.subscribes_to(*notification)
        return self.subscribes_to(data_model, event_type)

    def subscribes_to(self, data_model: str, event_type: str) -> bool:
        """Whether its subscriptions name this DataModel and EventType (a FHIR destination's: Redox's FHIR names)."""
        if self.subscriptions == ALL:
            return True
        assert isinstance(self.subscriptions, Mapping)
        events = self.subscriptions.get(data_model)
        return events == ALL or (isinstance(events, list) and event_type in events)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8787
    db: str = ".emulator/emulator.db"  # ":memory:" keeps nothing on disk
    db_sync: str = "normal"  # normal: commits survive a crash of the emulator; full: a power loss too
    admin_token: str | None = None  # required for /__emulator/ when bound beyond loopback
    seed: int = 1  # the synthetic EHR's faker seed: same seed, same patients
    population: int = 200
    payload_limit: int = 10 * 1024 * 1024
    rate_limit: int = 7500  # requests per client IP per rolling window
    rate_window: float = 300.0
    legacy_token_lifetime: float = 24 * 3600.0
    oauth_token_lifetime: float = 300.0
    sync_timeout: float = 120.0  # a query the EHR answers later than this gets 504 (emulator's clock)
    log_level: str = "info"
    webhook_url: str | None = None  # shorthand: the developer's app as a destination subscribed to everything
    delivery_timeout: float = 30.0  # seconds a webhook may take to answer a delivery (real time: a socket wait)
    scenarios_dir: str = "scenarios"  # where scenario names are looked up; files there reload on change
    scenarios: tuple[str, ...] = ()  # names or files, active from start-up (and again after a reset)
    contract_mode: str = "redox"  # redox | strict | off: how /endpoint payloads are held to their data model
    contracts_dir: str = ".emulator/contracts"  # where `contracts import` puts a team's official schema bundle
    sources: tuple[Source, ...] = (Source(),)
    destinations: tuple[Destination, ...] = (Destination(),)

    def all_destinations(self) -> tuple[Destination, ...]:
        """The configured destinations, and the `webhook_url` shorthand's one."""
        if not self.webhook_url:
            return self.destinations
        return (*self.destinations, Destination(id=WEBHOOK_ID, name=WEBHOOK_NAME, url=self.webhook_url))


_LISTS = ("sources", "destinations", "scenarios")
_SCALARS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in _LISTS}


def load(config: str | Path | None = None, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
    """Defaults, then the YAML file, then `REDOX_EMULATOR_*` variables, then CLI flags."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    where = "defaults"
    path = config or env.get(ENV_PREFIX + "CONFIG")
    if path:
        where = str(path)
        raw.update(_read_yaml(Path(path)))
    for name in (*_SCALARS, "scenarios"):
        value = env.get(ENV_PREFIX + name.upper())
        if value is not None:
            raw[name] = value
    raw.update({k: v for k, v in flags.items() if v is not None})
    return _build(raw, where)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # only a config file needs it: an emulator built from Settings() never does (1 MB)

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: YAML syntax error: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file must be a mapping, found {type(data).__name__}")
    base = path.parent
    for source in data.get("sources") or []:
        if isinstance(source, dict) and "jwks_path" in source:
            source["jwks"] = _read_jwks(base / str(source.pop("jwks_path")))
    return data


def _read_jwks(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the JWK Set ({exc})") from exc


def _build(raw: Mapping[str, Any], where: str) -> Settings:
    known = {*_SCALARS, *_LISTS}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}.{catalog.did_you_mean(key, known)}")
    values: dict[str, Any] = {name: _coerce(where, name, raw[name]) for name in _SCALARS if name in raw}
    if "sources" in raw:
        values["sources"] = tuple(_record(Source, item, f"{where}: sources[{i}]")
                                  for i, item in enumerate(_list(raw["sources"], where, "sources")))
    if "destinations" in raw:
        values["destinations"] = tuple(parse_destination(item, f"{where}: destinations[{i}]")
                                       for i, item in enumerate(_list(raw["destinations"], where, "destinations")))
    if "scenarios" in raw:
        values["scenarios"] = _names(raw["scenarios"], where)
    settings = Settings(**values)
    if settings.contract_mode not in CONTRACT_MODES:
        raise ConfigError(f"{where}: contract_mode must be one of {', '.join(CONTRACT_MODES)}, found "
                          f"{settings.contract_mode!r}.{catalog.did_you_mean(settings.contract_mode, CONTRACT_MODES)}")
    if settings.db_sync not in DB_SYNC_MODES:
        raise ConfigError(f"{where}: db_sync must be one of {', '.join(DB_SYNC_MODES)}, found "
                          f"{settings.db_sync!r}.{catalog.did_you_mean(settings.db_sync, DB_SYNC_MODES)}")
    _check_unique(where, "source", [s.id for s in settings.sources])
    _check_unique(where, "destination", [d.id for d in settings.all_destinations()])
    slugs = [d.slug for d in settings.all_destinations() if d.slug]
    for slug in {s for s in slugs if slugs.count(s) > 1}:
        raise ConfigError(f"{where}: two destinations share the fhir_slug {slug}")
    if settings.webhook_url and not _is_http_url(settings.webhook_url):
        raise ConfigError(f"{where}: webhook_url must be an http:// or https:// URL, found {settings.webhook_url!r}")
    return settings


def _coerce(where: str, name: str, value: Any) -> Any:
    kind = _SCALARS[name].type
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind in ("str", "str | None"):
            return None if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} must be {'a number' if kind in ('int', 'float') else kind}, "
                          f"found {value!r}") from None
    return value


def _names(value: Any, where: str) -> tuple[str, ...]:
    """A list of scenario names or files; from a variable, comma-separated."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: scenarios must be a list of scenario names or files, found {value!r}")


def _list(value: Any, where: str, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {name} must be a list, found {type(value).__name__}")
    return value


def _record(cls: type[Any], item: Any, where: str) -> Any:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: must be a mapping, found {type(item).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in item:
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}.{catalog.did_you_mean(str(key), names)}")
    if "id" in item:
        item = {**item, "id": str(item["id"])}
    return cls(**item)


HEADER_VALUE = "^[!-~]([ -~]*[!-~])?$"  # printable ASCII, as an HTTP header value keeps it
_HEADER_VALUE = re.compile(HEADER_VALUE)


def parse_destination(item: Any, where: str) -> Destination:
    """A destination from its config mapping (the YAML file, the control plane); ConfigError names `where`."""
    destination: Destination = _record(Destination, item, where)
    for name in ("id", "name", "verification_token"):
        if not isinstance(getattr(destination, name), str) or not getattr(destination, name):
            raise ConfigError(f"{where}: {name} must be a non-empty string")
    if not _HEADER_VALUE.match(destination.verification_token):  # it is sent as a header on every delivery
        raise ConfigError(f"{where}: verification_token must be printable ASCII with no leading or trailing "
                          f"space (it goes in the verification-token header), found {destination.verification_token!r}")
    if destination.url is not None and not _is_http_url(destination.url):
        raise ConfigError(f"{where}: url must be an http:// or https:// URL, found {destination.url!r}")
    if destination.fhir_slug is not None:
        if not isinstance(destination.fhir_slug, str) or not _SLUG.match(destination.fhir_slug):
            raise ConfigError(f"{where}: fhir_slug must be letters, digits, '.', '_' or '-' (as in "
                              f"{DEFAULT_FHIR_SLUG}), found {destination.fhir_slug!r}")
        if destination.url is not None:
            raise ConfigError(f"{where}: fhir_slug is for a destination the synthetic EHR answers (no url): "
                              "the FHIR API reads the EHR's state")
    if destination.handshake not in ("post", "get"):
        raise ConfigError(f"{where}: handshake must be \"post\" or \"get\", found {destination.handshake!r}")
    _check_format(destination, where)
    subs = destination.subscriptions
    if subs == ALL:
        return destination
    if not isinstance(subs, dict):
        raise ConfigError(f"{where}: subscriptions must be \"all\" or a mapping of DataModel to event types")
    # A FHIR destination subscribes by Redox's FHIR notification names (FHIR.Message.PatientAdmin: patient-arrived).
    models = catalog.FHIR_MODELS if destination.format == FHIR else catalog.DATA_MODELS
    for model, events in subs.items():
        if model not in models:
            hint = (" A destination with format: fhir subscribes to FHIR notifications, e.g. "
                    f"{catalog.FHIR_PATIENT_ADMIN}." if destination.format == FHIR else "")
            raise ConfigError(f"{where}: subscriptions: unknown DataModel {model!r}."
                              f"{catalog.did_you_mean(str(model), models)}{hint}")
        if events == ALL:
            continue
        if not isinstance(events, list):
            raise ConfigError(f"{where}: subscriptions.{model} must be \"all\" or a list of event types")
        for event in events:
            if event not in models[model]:
                raise ConfigError(f"{where}: subscriptions.{model}: unknown EventType {event!r}."
                                  f"{catalog.did_you_mean(str(event), models[model])}")
    return destination


FORMATS = ("json", FHIR)
NOTIFICATION_KINDS = ("detailed", "lightweight")


def _check_format(destination: Destination, where: str) -> None:
    if destination.format not in FORMATS:
        raise ConfigError(f"{where}: format must be \"json\" (the data model's events) or \"fhir\" (FHIR "
                          f"notification Bundles), found {destination.format!r}")
    if destination.notifications not in NOTIFICATION_KINDS:
        raise ConfigError(f"{where}: notifications must be \"detailed\" or \"lightweight\", "
                          f"found {destination.notifications!r}")
    if destination.format != FHIR and destination.notifications != "detailed":
        raise ConfigError(f"{where}: notifications is for a destination with format: fhir")
    if destination.format == FHIR and destination.url is None:
        raise ConfigError(f"{where}: format: fhir is for a webhook destination (give its url): the synthetic "
                          "EHR consumes the data model's events")


def _is_http_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def destination_config(destination: Destination) -> dict[str, Any]:
    """The mapping `parse_destination` reads back: how a run-time destination is stored."""
    config = dataclasses.asdict(destination)
    if isinstance(destination.subscriptions, Mapping):
        config["subscriptions"] = dict(destination.subscriptions)
    return config


def _check_unique(where: str, what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for id_ in ids:
        if id_ in seen:
            raise ConfigError(f"{where}: two {what}s share the ID {id_}")
        seen.add(id_)


DEFAULTS = Settings()
__all__ = ["DEFAULTS", "Destination", "Settings", "Source", "destination_config", "load", "parse_destination"]
