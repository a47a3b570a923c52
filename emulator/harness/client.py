"""`redox-client.yaml`: how the harness runs a client under test (SPEC 7.4; docs/clients.md).

    name: billing-service (node)              # shown in reports (default: the file's name)
    description: The billing team's Redox integration
    send: python3 app.py send                # the client's outbound work; exit 0 when done
    serve: python3 app.py serve --port {port} # starts its webhook receiver (optional)
    webhook_url: http://127.0.0.1:{port}/redox
    ready_url: http://127.0.0.1:{port}/health # polled until it answers < 500
    probe: python3 app.py probe               # optional: prints JSON about what the client processed
    env: {LOG_LEVEL: debug}                   # extra variables for every command
    timeout: 30                               # seconds a send or probe may take (then its group is killed)
    ready_timeout: 10
    apis: [data-model, fhir]                  # the Redox APIs it uses; contracts of others are skipped

Every problem is reported as `file:line:column: key: message`, like `redox-emulator check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emulator import catalog
from emulator.errors import LoadError
from emulator.scenarios.document import Problem, read

KEYS = ("name", "description", "send", "serve", "webhook_url", "ready_url", "probe", "env", "timeout", "ready_timeout",
        "workdir", "apis")
APIS = ("data-model", "fhir")  # a scenario's `client.api`: the Data Model API (/endpoint, webhooks), the FHIR API


class ClientError(LoadError):
    """A client description that cannot be used; one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ClientSpec:
    send: str
    serve: str | None = None
    webhook_url: str | None = None  # with `{port}`: the port the harness picks for `serve`
    ready_url: str | None = None
    probe: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    ready_timeout: float = 10.0
    directory: Path = Path()  # commands run here (the file's folder unless `workdir` says otherwise)
    source: str = "<client>"
    name: str = "client"  # for reports: `name`, else the file's stem
    description: str = ""
    apis: tuple[str, ...] = ("data-model",)  # contracts of another API are skipped, not run

    def with_port(self, text: str | None, port: int) -> str | None:
        return None if text is None else text.replace("{port}", str(port))


def load(path: str | Path) -> ClientSpec:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError([Problem(str(path), 1, 1, (), f"cannot read the client description: {exc}")]) from None
    doc = read(str(path), text)
    data = doc.data
    if not doc.problems and not isinstance(data, dict):
        doc.problem((), "a client description is a mapping (send, serve, webhook_url, ready_url, probe, env)")
    if doc.problems:
        raise ClientError(doc.problems)
    assert isinstance(data, dict)
    for key in data:
        if key not in KEYS:
            doc.problem((key,), f"unknown key {key!r}.{catalog.did_you_mean(str(key), KEYS)} Known: {', '.join(KEYS)} "
                        "(docs/clients.md#clientyaml)", key=True)
    if "send" not in data:
        doc.problem((), "`send` is required: the command that does the client's outbound work")
    for key in ("name", "send", "serve", "webhook_url", "ready_url", "probe", "workdir"):
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            doc.problem((key,), f"expected a non-empty string, found {data[key]!r}")
    if "description" in data and not isinstance(data["description"], str):
        doc.problem(("description",), f"expected text, found {data['description']!r}")
    for key in ("timeout", "ready_timeout"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int | float) or data[key] <= 0):
            doc.problem((key,), f"expected seconds above 0, found {data[key]!r}")
    apis = data.get("apis", ["data-model"])
    if not isinstance(apis, list) or not apis or not all(isinstance(a, str) for a in apis):
        doc.problem(("apis",), f"expected a list of Redox APIs ({', '.join(APIS)}), found {apis!r}")
        apis = ["data-model"]
    for i, api in enumerate(apis):
        if api not in APIS:
            doc.problem(("apis", i), f"unknown API {api!r}.{catalog.did_you_mean(api, APIS)} Known: {', '.join(APIS)}")
    env = data.get("env", {})
    if not isinstance(env, dict):
        doc.problem(("env",), f"expected a mapping of variable names to values, found {env!r}")
        env = {}
    serve = data.get("serve")
    if isinstance(serve, str):
        if not isinstance(data.get("webhook_url"), str):
            doc.problem(("serve",), "a client that serves needs `webhook_url` (where Redox delivers)", key=True)
        if "{port}" not in serve:
            doc.problem(("serve",), "the serve command must take the port the harness picks: put {port} in it")
    elif "webhook_url" in data or "ready_url" in data:
        doc.problem(("webhook_url" if "webhook_url" in data else "ready_url",),
                    "a webhook_url or ready_url without `serve`: nothing would listen there", key=True)
    for key in ("webhook_url", "ready_url"):
        value = data.get(key)
        if isinstance(value, str) and not value.startswith(("http://", "https://")):
            doc.problem((key,), f"expected an http:// URL, found {value!r}")
    if doc.problems:
        raise ClientError(doc.problems)
    directory = file.resolve().parent
    if "workdir" in data:
        directory = (directory / data["workdir"]).resolve()
    return ClientSpec(
        send=data["send"], serve=serve, webhook_url=data.get("webhook_url"), ready_url=data.get("ready_url"),
        probe=data.get("probe"), env={str(k): str(v) for k, v in env.items()},
        timeout=float(data.get("timeout", 30)), ready_timeout=float(data.get("ready_timeout", 10)),
        directory=directory, source=str(path), name=str(data.get("name", file.stem)).strip(),
        description=str(data.get("description", "")).strip(), apis=tuple(apis),
    )
