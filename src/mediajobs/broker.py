"""The broker, transport only: the Celery app built from the Settings it is given, and sending messages.

Messages carry a job id and attempt only; the job row says what to do (`jobs/outbox.py` makes a message of a
job). Publishing needs no task code, so this module knows the task by name and the worker (`worker/app.py`)
registers what runs it. It knows nothing of job kinds: the longest time limit among them is passed in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from celery import Celery
from kombu import Queue

from mediajobs.config import Settings

QUEUES = ("default", "io", "cpu")
TASK_NAME = "mediajobs.run"
# A redelivered message is harmless (the worker's conditional start drops it), but redelivering a two-hour
# transcode every hour would waste a slot; so the visibility timeout sits above the longest hard time limit.
VISIBILITY_MARGIN_S = 3600


@dataclass(frozen=True)
class Message:
    job_id: str
    attempt: int
    queue: str
    priority: int
    soft_time_limit_s: float | None
    time_limit_s: float | None
    # Shown as the task's name in worker logs, events and Flower (the task itself is always TASK_NAME).
    kind: str = ""


def celery_config(settings: Settings, *, longest_time_limit_s: float) -> dict[str, object]:
    """Celery's configuration; `longest_time_limit_s` is the longest hard time limit of any job kind."""
    visibility_timeout = int(longest_time_limit_s + VISIBILITY_MARGIN_S)
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
        # Task events are how Flower learns of tasks, but each costs its sender ~0.2 ms of CPU (three a job
        # on the worker's main process, one more on the publisher), listened to or not. So they start off
        # and Flower turns them on in every worker (its `enable_events` every 5 s) while it runs; workers
        # always send their heartbeat events (one per 2 s), which is how Flower sees them online.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_enable_remote_control": True,
    }


class Broker:
    """The Celery app for one Settings, and the one place that sends job messages."""

    def __init__(self, settings: Settings, *, longest_time_limit_s: float) -> None:
        self.settings = settings
        self.celery = Celery("mediajobs", set_as_current=True)
        self.celery.conf.update(celery_config(settings, longest_time_limit_s=longest_time_limit_s))

    def publish(self, message: Message) -> None:
        """Send one message; raises when the broker cannot take it."""
        self.celery.send_task(
            TASK_NAME,
            args=[message.job_id, message.attempt],
            queue=message.queue,
            priority=9 - message.priority,
            soft_time_limit=message.soft_time_limit_s,
            time_limit=message.time_limit_s,
            shadow=message.kind or None,
            retry=False,
        )


_brokers: dict[tuple[str, float], Broker] = {}
_lock = threading.Lock()


def broker_for(settings: Settings, *, longest_time_limit_s: float) -> Broker:
    """The Broker of these settings, one per broker URL and time limit in a process (connections pool)."""
    key = (settings.effective_broker_url, longest_time_limit_s)
    with _lock:
        broker = _brokers.get(key)
        if broker is None:
            broker = _brokers[key] = Broker(settings, longest_time_limit_s=longest_time_limit_s)
        return broker
