"""The registry of job kinds: their names, queues, params and time limits."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from mediajobs.broker import QUEUES
from mediajobs.jobs.hooks import EndHook, end_hook

if TYPE_CHECKING:  # the context runs handlers of this registry: a cycle, for the annotation only
    from mediajobs.jobs.context import JobContext


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


Handler = Callable[["JobContext", Any], Any]


@dataclass(frozen=True)
class Kind:
    """A registered kind of job."""

    name: str
    handler: Handler
    params: type[BaseModel] = NoParams
    queue: str = "default"
    soft_time_limit_s: float = 3600.0
    time_limit_s: float = 3660.0
    max_attempts: int = 3
    priority: int = 5
    public: bool = True
    # Called as `on_end(job, services)` once the job reaches a terminal state (in whichever process made it
    # terminal), before the job-ended listeners of `jobs/hooks.py`.
    on_end: EndHook | None = None
    # The kind's own delays before attempts 2, 3, ... (the last repeats), instead of exponential backoff;
    # written for the default MEDIAJOBS_RETRY_BACKOFF_BASE_S and scaled with it.
    retry_delays_s: tuple[float, ...] | None = None
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


class UnknownKind(KeyError):
    """No job kind of that name is registered."""


class Registry:
    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def add(self, kind: Kind) -> Kind:
        if kind.queue not in QUEUES:
            raise ValueError(f"kind {kind.name!r}: queue must be one of {', '.join(QUEUES)}")
        if kind.time_limit_s <= kind.soft_time_limit_s:
            raise ValueError(f"kind {kind.name!r}: time_limit_s must exceed soft_time_limit_s")
        if kind.on_end is not None:
            kind = replace(kind, on_end=end_hook(kind.on_end))
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> Kind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKind(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self, *, public_only: bool = False) -> list[str]:
        return sorted(k.name for k in self._kinds.values() if k.public or not public_only)

    def all(self) -> Iterable[Kind]:
        return self._kinds.values()

    def longest_time_limit_s(self) -> float:
        return max((k.time_limit_s for k in self._kinds.values()), default=3660.0)


registry = Registry()


def job_kind(
    name: str,
    *,
    params: type[BaseModel] = NoParams,
    queue: str = "default",
    soft_time_limit_s: float = 3600.0,
    time_limit_s: float | None = None,
    max_attempts: int = 3,
    priority: int = 5,
    public: bool = True,
    on_end: Callable[..., None] | None = None,
    retry_delays_s: tuple[float, ...] | None = None,
) -> Callable[[Handler], Handler]:
    """Register the decorated function `fn(ctx, params)` as job kind `name`.

    `on_end(job, services)` runs once the job has ended, however it ended (`on_end(job)` works too).
    """

    def register(fn: Handler) -> Handler:
        registry.add(
            Kind(
                name=name,
                handler=fn,
                params=params,
                queue=queue,
                soft_time_limit_s=soft_time_limit_s,
                time_limit_s=time_limit_s if time_limit_s is not None else soft_time_limit_s + 60.0,
                max_attempts=max_attempts,
                priority=priority,
                public=public,
                on_end=on_end,
                retry_delays_s=retry_delays_s,
                description=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
            )
        )
        return fn

    return register


def load_kinds(modules: str) -> Registry:
    """Import the modules (comma-separated) that register kinds; the registry, with theirs added."""
    for module in filter(None, (m.strip() for m in modules.split(","))):
        importlib.import_module(module)
    return registry
