"""Server commands: up, api, worker, migrate, doctor.

Each command imports what it runs when it runs, for start-up cost alone: every `mediajobs` command loads this
module, and `mediajobs jobs ls` has no use for FastAPI, Celery or Alembic.
"""

from __future__ import annotations

import ipaddress
import logging

import click

from mediajobs.config import EXAMPLE_SECRET, Settings, get_settings

INSECURE_HELP = (
    "listen on a non-loopback address without MEDIAJOBS_API_KEYS (something in front must authenticate)"
)


def _logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_open_bind(settings: Settings, host: str, insecure_no_auth: bool) -> None:
    """Exit non-zero, before anything starts, when `host` is reachable and nothing authenticates."""
    if is_loopback(host) or settings.api_key_list or insecure_no_auth:
        return
    raise click.UsageError(
        f"refusing to listen on {host} without MEDIAJOBS_API_KEYS: anyone who reaches this address could run "
        "jobs, import URLs and read every stored file. Set MEDIAJOBS_API_KEYS, set MEDIAJOBS_HOST=127.0.0.1, "
        "or pass --insecure-no-auth if a proxy in front authenticates."
    )


def refuse_example_secrets(settings: Settings) -> None:
    """Exit non-zero, before anything starts, while a secret still has deploy/.env.example's value."""
    if names := settings.example_secrets():
        raise click.ClickException(
            f"refusing to start: {', '.join(names)} still holds an example secret (it starts with "
            f"{EXAMPLE_SECRET!r}, as in deploy/.env.example). Replace it with a secret of your own, e.g. "
            "the output of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )


@click.command()
@click.option("--insecure-no-auth", is_flag=True, help=INSECURE_HELP)
def up(insecure_no_auth: bool) -> None:
    """Run the whole stack on this machine: managed Redis, API, workers and web UI."""
    from mediajobs.supervisor import Supervisor

    settings = get_settings()
    refuse_open_bind(settings, settings.host, insecure_no_auth)
    refuse_example_secrets(settings)
    _logging()
    raise SystemExit(Supervisor(settings, insecure_no_auth=insecure_no_auth).run())


@click.command()
@click.option("--host", default=None, help="default: MEDIAJOBS_HOST")
@click.option("--port", type=int, default=None, help="default: MEDIAJOBS_PORT")
@click.option("--no-migrate", is_flag=True, help="do not upgrade the schema first")
@click.option("--insecure-no-auth", is_flag=True, help=INSECURE_HELP)
@click.option("--quiet", is_flag=True, help="log warnings and errors only")
def api(host: str | None, port: int | None, no_migrate: bool, insecure_no_auth: bool, quiet: bool) -> None:
    """Run the HTTP API (and web UI)."""
    import uvicorn

    from mediajobs.api.app import create_app
    from mediajobs.api.serving import protocol_for
    from mediajobs.db.migrate import migrate
    from mediajobs.db.session import get_db

    settings = get_settings()
    # The app answers to the Host it listens on, so it is built with the address given here.
    settings = settings.model_copy(update={"host": host or settings.host, "port": port or settings.port})
    refuse_open_bind(settings, settings.host, insecure_no_auth)
    refuse_example_secrets(settings)
    _logging("WARNING" if quiet else "INFO")
    if not no_migrate:
        migrate(get_db(settings.effective_database_url))
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning" if quiet else "info",
        access_log=False,
        timeout_graceful_shutdown=3,
        # Bounds on what a connection may hold before a request exists: see api/serving.py.
        http=protocol_for(settings),
    )


@click.command()
@click.option("--queues", "-Q", default="io,cpu,default", show_default=True, help="comma-separated queues")
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="pool size; default: matched to the cores for cpu, wider for io/default",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--no-migrate", is_flag=True, help="do not upgrade the schema first")
@click.option("--quiet", is_flag=True, help="no Celery banner; log warnings and errors only")
def worker(queues: str, concurrency: int | None, loglevel: str, no_migrate: bool, quiet: bool) -> None:
    """Run a Celery worker consuming QUEUES."""
    from mediajobs.worker.main import parse_queues, run_worker

    settings = get_settings()
    refuse_example_secrets(settings)
    loglevel = "WARNING" if quiet else loglevel
    _logging(loglevel)
    try:
        names = parse_queues(queues)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--queues") from exc
    if concurrency is None:
        concurrency = (
            settings.effective_cpu_concurrency if names == ["cpu"] else settings.effective_io_concurrency
        )
    run_worker(
        queues=names, concurrency=concurrency, loglevel=loglevel, migrate_first=not no_migrate, quiet=quiet
    )


@click.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    from mediajobs.db.migrate import head_revision
    from mediajobs.db.migrate import migrate as run_migrate
    from mediajobs.db.session import get_db

    db = get_db(get_settings().effective_database_url)
    applied = run_migrate(db)
    click.echo(f"schema {'upgraded to' if applied else 'already at'} {head_revision(db)}")


@click.command()
def doctor() -> None:
    """Print the effective configuration and check database, broker, storage, tools and queues."""
    from mediajobs.doctor import run_doctor

    raise SystemExit(run_doctor(get_settings(), click.echo))


COMMANDS: list[click.Command] = [up, api, worker, migrate, doctor]
