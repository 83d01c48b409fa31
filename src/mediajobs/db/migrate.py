"""Create or upgrade the schema with Alembic; safe to call from several processes at once."""

from __future__ import annotations

import fcntl
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from mediajobs.db.session import Database

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: a worker started with --no-migrate does not pay for loading it.

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)
# Alembic says every step (plugins, "Context impl SQLiteImpl", each revision) at INFO; a start-up would print
# a page of it. One line of ours says what happened instead (and `mediajobs migrate` prints it).
logging.getLogger("alembic").setLevel(logging.WARNING)


def alembic_config(db: Database) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    cfg.attributes["engine"] = db.write_engine
    return cfg


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.write_engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(db: Database) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(db)).get_current_head()


def migrate(db: Database, *, lock_dir: Path | None = None) -> bool:
    """Upgrade to head if needed; returns True when something was applied."""
    if current_revision(db) == head_revision(db):
        return False
    if db.is_sqlite:
        lock_path = (lock_dir or Path(db.url.split("///", 1)[1]).parent) / ".migrate.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return _upgrade(db)
    with db.write_engine.connect() as conn:
        # An advisory lock makes concurrent api/worker start-ups migrate one at a time.
        conn.execute(text("SELECT pg_advisory_lock(72470001)"))
        try:
            return _upgrade(db)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(72470001)"))
            conn.commit()


def _upgrade(db: Database) -> bool:
    was, head = current_revision(db), head_revision(db)
    if was == head:
        return False
    from alembic import command

    command.upgrade(alembic_config(db), "head")
    if was is None:
        log.debug("created the database schema (%s)", head)
    else:
        log.info("upgraded the database schema from %s to %s", was, head)
    return True
