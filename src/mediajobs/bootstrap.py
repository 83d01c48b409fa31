"""What an API or worker process starts the engine with: every job kind, the listeners, and the Services.

The built-in kinds are imported here, above the layers that define them, rather than named by the registry:
the engine (`jobs/`) knows no kind of the layers above it. Importing `webhooks` registers its listeners of
job and asset events. The entry points (`api`, `worker`, `doctor`) call `services(settings)` once and hand the
result down; nothing below them looks the database, settings or broker up.
"""

from __future__ import annotations

from mediajobs.broker import Broker, broker_for
from mediajobs.config import Settings
from mediajobs.db.session import get_db
from mediajobs.jobs import builtin, registry
from mediajobs.jobs.hooks import Services
from mediajobs.media.kinds import housekeeping, imports, operations, outputs, transcode
from mediajobs.webhooks import delivery, events

# Imported for what importing them does: they register their kinds, and `events` its listeners.
BUILTIN = (builtin, imports, housekeeping, transcode, operations, outputs, delivery, events)


def load_kinds(settings: Settings) -> registry.Registry:
    """The registry with the built-in kinds and the application's (MEDIAJOBS_KIND_MODULES)."""
    return registry.load_kinds(settings.kind_modules)


def broker(settings: Settings) -> Broker:
    """The broker of these settings, its visibility timeout above the longest time limit of their kinds."""
    kinds = load_kinds(settings)
    return broker_for(settings, longest_time_limit_s=kinds.longest_time_limit_s())


def services(settings: Settings) -> Services:
    """This process's Services for these settings: its database and broker (one per URL), kinds loaded."""
    return Services(db=get_db(settings.effective_database_url), settings=settings, broker=broker(settings))
