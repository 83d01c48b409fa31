"""Reading a compose file as `docker compose` does: `.env` variables, interpolation, services, durations."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mediajobs.testing.stacks import CHECKOUT

COMPOSE_FILE = CHECKOUT / "deploy" / "compose.yaml"
ENV_EXAMPLE = CHECKOUT / "deploy" / ".env.example"
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_EXPRESSION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])(.*))?", re.S)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ComposeError(Exception):
    """The compose file says something this reader refuses, or its stack did not come up as it says."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as `docker compose` reads `.env` (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """`${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `${NAME?error}`, `$NAME`, `$$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        if match["named"]:
            return variables.get(match["named"], "")
        parsed = _EXPRESSION.fullmatch(match["braced"])
        if parsed is None:
            raise ComposeError(f"invalid interpolation {match[0]}")
        name, colon, operator, argument = parsed.groups()
        current = variables.get(name)
        unset = current is None or (bool(colon) and current == "")
        if operator == "-":
            return argument if unset else str(current)
        if operator == "?":
            if unset:
                raise ComposeError(f"required variable {name} is missing a value: {argument}")
            return str(current)
        if operator == "+":
            return "" if unset else argument
        return current or ""

    return _VARIABLE.sub(replace, value)


def duration_s(value: str | None, default: float) -> float:
    if not value:
        return default
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ComposeError(f"invalid duration {value!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class Healthcheck:
    test: list[str]
    interval_s: float
    timeout_s: float
    retries: int
    start_period_s: float

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Healthcheck | None:
        test = raw.get("test")
        if raw.get("disable") or test in (None, ["NONE"]):
            return None
        if isinstance(test, str):
            argv = ["sh", "-c", test]
        elif test[0] == "CMD":
            argv = [str(a) for a in test[1:]]
        elif test[0] == "CMD-SHELL":
            argv = ["sh", "-c", str(test[1])]
        else:
            raise ComposeError(f"healthcheck test must start with CMD or CMD-SHELL: {test}")
        return cls(
            test=argv,
            interval_s=duration_s(raw.get("interval"), 30.0),
            timeout_s=duration_s(raw.get("timeout"), 30.0),
            retries=int(raw.get("retries", 3)),
            start_period_s=duration_s(raw.get("start_period"), 0.0),
        )

    @property
    def deadline_s(self) -> float:
        """How long compose would wait at most before calling the service unhealthy."""
        return self.start_period_s + self.interval_s * self.retries + self.timeout_s


@dataclass
class Service:
    name: str
    image: str
    build: bool
    command: list[str]
    environment: dict[str, str]
    depends_on: dict[str, str]
    healthcheck: Healthcheck | None
    entrypoint: list[str] = field(default_factory=list)
    # Each secret granted to the service, by name, with its value (compose mounts it at /run/secrets/NAME).
    secrets: dict[str, str] = field(default_factory=dict)
    # Published ports as written ("127.0.0.1:5555:5555").
    ports: list[str] = field(default_factory=list)

    @property
    def repository(self) -> str:
        """The image's repository without registry, tag or digest: `minio/minio`, `postgres`."""
        name = self.image.split("@", 1)[0]
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name = name[: -len(last)] + last.split(":", 1)[0]
        for prefix in ("docker.io/", "library/", "quay.io/"):
            name = name.removeprefix(prefix)
        return name


def _argv(value: Any) -> list[str]:
    if not value:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(c) for c in value]


def _secrets(document: dict[str, Any], granted: list[Any], variables: Mapping[str, str]) -> dict[str, str]:
    """Granted secrets' values: `environment: VAR` (from the variables, as compose reads .env) or `file:`."""
    values = {}
    for item in granted:
        name = item if isinstance(item, str) else item["source"]
        source = (document.get("secrets") or {}).get(name)
        if source is None:
            raise ComposeError(f"secret {name} is not defined at the top level")
        if "environment" in source:
            if source["environment"] not in variables:
                raise ComposeError(f"secret {name}: variable {source['environment']} is not set")
            values[name] = variables[source["environment"]]
        elif "file" in source:
            values[name] = (COMPOSE_FILE.parent / source["file"]).read_text()
        else:
            raise ComposeError(f"secret {name}: only `environment` and `file` sources are modelled")
    return values


def load(path: Path = COMPOSE_FILE, variables: Mapping[str, str] | None = None) -> dict[str, Service]:
    """The services of a compose file, interpolated (merge keys and anchors resolved by the YAML loader)."""
    variables = variables or {}
    document = interpolate(yaml.safe_load(path.read_text()), variables)
    services = {}
    for name, raw in document["services"].items():
        command = raw.get("command") or []
        environment = raw.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        depends = raw.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        services[name] = Service(
            name=name,
            image=str(raw.get("image", "")),
            build="build" in raw,
            command=shlex.split(command) if isinstance(command, str) else [str(c) for c in command],
            environment={k: "" if v is None else str(v) for k, v in environment.items()},
            depends_on={d: (c or {}).get("condition", "service_started") for d, c in depends.items()},
            healthcheck=Healthcheck.parse(raw["healthcheck"]) if raw.get("healthcheck") else None,
            entrypoint=_argv(raw.get("entrypoint")),
            secrets=_secrets(document, raw.get("secrets") or [], variables),
            ports=[str(p) for p in raw.get("ports") or []],
        )
    for service in services.values():
        for dependency, condition in service.depends_on.items():
            if dependency not in services:
                raise ComposeError(f"{service.name} depends on {dependency}, which is not a service")
            if condition == "service_healthy" and services[dependency].healthcheck is None:
                raise ComposeError(
                    f"{service.name} waits for {dependency} to be healthy; it has no healthcheck"
                )
    return services
