"""The Celery app. It carries job ids only; the job row in the database says what to do."""

from __future__ import annotations

import threading

from celery import Celery
from kombu import Queue

from mediajobs.config import Settings, get_settings
from mediajobs.jobs.registry import QUEUES, load_kinds

TASK_NAME = "mediajobs.run"
# A redelivered message is harmless (the worker's conditional start drops it), but redelivering a two-hour
# transcode every hour would waste a slot; so the visibility timeout sits above the longest hard time limit.
VISIBILITY_MARGIN_S = 3600


def celery_config(settings: Settings) -> dict[str, object]:
    kinds = load_kinds(settings.kind_modules)
    visibility_timeout = int(kinds.longest_time_limit_s() + VISIBILITY_MARGIN_S)
    transport = {
        # Must be the same in all three places or the shortest wins (Celery docs, Redis caveats).
        "visibility_timeout": visibility_timeout,
        # Ten priority lists per queue; we send 9 - priority so that 9 is the most urgent.
        "priority_steps": list(range(10)),
        "sep": ":",
        "queue_order_strategy": "priority",
        # Detect a dead Redis connection instead of waiting on it forever.
        "socket_keepalive": True,
        "health_check_interval": 10,
        "socket_connect_timeout": 3,
    }
    return {
        "broker_url": settings.effective_broker_url,
        "broker_transport_options": transport,
        "result_backend_transport_options": {"visibility_timeout": visibility_timeout},
        "visibility_timeout": visibility_timeout,
        # The database is the result store; Celery's own results would be a second source of truth.
        "task_ignore_result": True,
        # Ack after the job ran, so a message is not lost when a worker dies mid-job; the job row's
        # conditional start makes the redelivery a no-op and the reaper decides what happens next.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Long jobs: take one message at a time so others are not held (and aged) in a busy worker.
        "worker_prefetch_multiplier": 1,
        # Keep reconnecting to Redis forever; a broker outage must not stop the workers for good.
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # A Redis blip must not abort a running transcode: redelivered messages are dropped by the row.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_default_queue": "default",
        "task_queues": [Queue(name) for name in QUEUES],
        "task_create_missing_queues": False,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_enable_remote_control": True,
    }


def create_celery(settings: Settings) -> Celery:
    app = Celery("mediajobs", set_as_current=True)
    app.conf.update(celery_config(settings))

    @app.task(name=TASK_NAME, ignore_result=True)
    def run(job_id: str, attempt: int) -> None:
        from mediajobs.worker.runner import run_job

        run_job(job_id, attempt)

    return app


_lock = threading.Lock()
_app: Celery | None = None


def get_celery() -> Celery:
    global _app
    with _lock:
        if _app is None:
            _app = create_celery(get_settings())
        return _app
