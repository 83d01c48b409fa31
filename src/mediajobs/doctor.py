"""`mediajobs doctor`: the effective configuration and a check of every part it depends on."""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import Callable

import httpx
import redis

from mediajobs import bootstrap, process
from mediajobs.broker import QUEUES
from mediajobs.config import Settings, mask_text
from mediajobs.db.migrate import current_revision, head_revision
from mediajobs.db.session import get_db
from mediajobs.nodes import NodeView, shared_config, survey
from mediajobs.storage import for_process
from mediajobs.storage.cors import check_playback

Check = tuple[str, Callable[[Settings], str]]


def check_database(settings: Settings) -> str:
    db = get_db(settings.effective_database_url)
    db.ping()
    current, head = current_revision(db), head_revision(db)
    if current != head:
        raise RuntimeError(f"schema at {current or 'nothing'}, code expects {head}: run `mediajobs migrate`")
    return f"reachable, schema at {head}"


def check_broker(settings: Settings) -> str:
    client = redis.Redis.from_url(settings.broker_client_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        info = client.info("server")
    except redis.RedisError as exc:
        if not settings.managed_broker:
            raise
        raise RuntimeError(
            f"{exc}: the managed Redis runs only while `mediajobs up` runs with the data dir "
            f"{settings.data_dir} (or set MEDIAJOBS_BROKER_URL)"
        ) from exc
    policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "?")
    note = (
        "" if policy == "noeviction" else f" (WARNING: maxmemory-policy {policy}; a broker wants noeviction)"
    )
    return f"redis {info.get('redis_version')} reachable{note}"


def check_storage(settings: Settings) -> str:
    storage = for_process(settings)
    storage.check()
    return f"{storage.describe()} writable"


def check_api(settings: Settings) -> str:
    """The API answers where the CLI will call it, and takes the CLI's key."""
    url = settings.effective_api_url.rstrip("/")
    where = "MEDIAJOBS_API_URL" if settings.api_url.strip() else "MEDIAJOBS_HOST and MEDIAJOBS_PORT"
    headers = {"Authorization": f"Bearer {settings.cli_token}"} if settings.cli_token else {}
    try:
        with httpx.Client(base_url=url, timeout=5.0, trust_env=False, headers=headers) as client:
            health = client.get("/healthz")
            jobs = client.get("/api/v1/jobs", params={"limit": 1}) if health.status_code == 200 else None
    except httpx.HTTPError as exc:
        raise RuntimeError(
            f"no API answers at {url} (from {where}): {type(exc).__name__}; start it (`mediajobs up` or "
            "`mediajobs api`) or point MEDIAJOBS_API_URL at it"
        ) from None
    if jobs is None:
        raise RuntimeError(f"{url}/healthz answered {health.status_code} (from {where}): is that mediajobs?")
    if jobs.status_code == 401:
        raise RuntimeError(
            f"the API at {url} refuses the CLI's key: set MEDIAJOBS_API_KEY (or MEDIAJOBS_API_KEYS) "
            "to one it takes"
        )
    if jobs.status_code != 200:
        raise RuntimeError(f"the API at {url} answered {jobs.status_code} to GET /api/v1/jobs")
    return f"answers at {url} (from {where})"


def tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None and argv[0] != sys.executable:
        raise RuntimeError(f"{argv[0]} not found on PATH")
    out = process.run(argv, capture_stdout=True, timeout_s=20)
    return out.stdout.strip().splitlines()[0]


def check_queues(settings: Settings) -> str:
    replies = bootstrap.broker(settings).celery.control.inspect(timeout=2.0).active_queues() or {}
    consumed = {q["name"] for queues in replies.values() for q in queues}
    missing = [q for q in QUEUES if q not in consumed]
    if missing:
        raise RuntimeError(
            f"no worker consumes {', '.join(missing)} ({len(replies)} worker(s) answered); "
            "start `mediajobs worker --queues " + ",".join(missing) + "`"
        )
    return f"{len(replies)} worker(s) consume {', '.join(sorted(consumed))}"


# What every process must share, with the words doctor names them by.
SHARED = {"database": "database", "broker": "broker", "storage": "storage", "kind_modules": "kind modules"}


def differences(own: dict[str, str], view: NodeView, *, unread: dict[str, str]) -> list[str]:
    """What `view` does not share with this host, each named: "storage s3://a differs from s3://b"."""
    found = []
    for item, label in SHARED.items():
        theirs, ours = view.config.get(item, "(unknown)"), own[item]
        if item in ("database", "broker") and item not in unread:
            # Found in this host's database (or broker) means shared, however each host spells the URL.
            if getattr(view, f"in_{item}"):
                continue
            if theirs == ours:
                found.append(
                    f"{label} {theirs} is not the one this host reaches: the same URL names another {label}"
                    " there, or that process cannot reach it"
                )
                continue
        if theirs != ours:
            found.append(f"{label} {theirs} differs from {ours}")
    return found


class Mismatch(RuntimeError):
    """Processes that must share their configuration do not."""


def check_nodes(settings: Settings) -> str:
    """Every API and worker this host can see (its database, its broker) shares its configuration."""
    views, unread = survey(get_db(settings.effective_database_url), settings)
    if len(unread) == 2:
        raise RuntimeError("cannot list the API and worker processes: " + "; ".join(unread.values()))
    own = shared_config(settings)
    problems, notes = [], []
    for view in views:
        problems += [f"{view.label}: {difference}" for difference in differences(own, view, unread=unread)]
        if view.storage_error:
            error = view.storage_error
            problems.append(
                f"{view.label}: storage fails with {error['code']} (since {error['at']}): {error['message']}"
            )
        elif own["storage"].startswith("file://") and view.hostname != socket.gethostname():
            notes.append(
                f"{view.label} runs on {view.hostname}: file storage is shared only on one shared volume"
            )
    if unread:
        notes.append(f"not read: {', '.join(unread)} (see its check)")
    if problems:
        listed = "".join(f"\n          {problem}" for problem in problems)
        raise Mismatch(f"{len(problems)} problem(s) with this configuration:{listed}")
    names = ", ".join(view.label for view in views) or "none running"
    return f"{len(views)} process(es) share this configuration ({names})" + "".join(f"; {n}" for n in notes)


CHECKS: list[Check] = [
    ("api", check_api),
    ("database", check_database),
    ("broker", check_broker),
    ("storage", check_storage),
    ("playback", check_playback),
    ("ffmpeg", lambda s: tool_version(["ffmpeg", "-hide_banner", "-version"])),
    ("ffprobe", lambda s: tool_version(["ffprobe", "-hide_banner", "-version"])),
    ("yt-dlp", lambda s: "yt-dlp " + tool_version([sys.executable, "-m", "yt_dlp", "--version"])),
    ("queues", check_queues),
    ("nodes", check_nodes),
]


def run_doctor(settings: Settings, echo: Callable[[str], None]) -> int:
    echo("configuration:")
    for name, value in settings.masked().items():
        echo(f"  {name:22} {value}")
    echo("checks:")
    failed = 0
    for name, check in CHECKS:
        try:
            echo(f"  ok    {name:10} {mask_text(check(settings))}")
        except Exception as exc:
            failed += 1
            # Error texts quote URLs (hosts, users, sometimes a password): masked like the configuration.
            echo(f"  FAIL  {name:10} {type(exc).__name__}: {mask_text(str(exc))}")
    if settings.import_public_cidrs:
        echo(
            "  WARN  MEDIAJOBS_IMPORT_PUBLIC_CIDRS is a test-only setting: imports may reach "
            f"{settings.import_public_cidrs} as if it were public; unset it outside tests"
        )
    echo("all checks passed" if not failed else f"{failed} check(s) failed")
    return 0 if not failed else 1
