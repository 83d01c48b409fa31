from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from mediajobs import bootstrap
from mediajobs.config import Settings
from mediajobs.webhooks import signing
from mediajobs.webhooks.delivery import SCHEDULE_S
from mediajobs.webhooks.events import DELIVER_KIND
from mediajobs.worker.runner import backoff_s


def test_secret_is_whsec_and_base64_of_32_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert signing.new_secret() != secret


def test_signed_headers_verify_with_the_standardwebhooks_package() -> None:
    secret = signing.new_secret()
    body = '{"type":"job.succeeded","data":{"id":"x","name":"caf\u00e9"}}'.encode()
    headers = signing.signed_headers(secret, msg_id="msg_1", timestamp=int(time.time()), body=body)
    assert Webhook(secret).verify(body, headers)["data"]["name"] == "café"
    # And byte for byte what the package itself would sign.
    now = datetime.now(UTC)
    ours = signing.signature(secret, msg_id="msg_2", timestamp=int(now.timestamp()), body=body)
    assert ours == Webhook(secret).sign("msg_2", now, body.decode())


def test_delivery_retries_follow_the_schedule_for_more_than_a_day() -> None:
    settings = Settings()
    kind = bootstrap.load_kinds(settings).get(DELIVER_KIND)
    assert kind.queue == "io"
    assert kind.max_attempts == len(SCHEDULE_S) + 1
    # At the default backoff base the kind's delays are the schedule as written.
    delays = [backoff_s(settings, attempt, kind) for attempt in range(1, kind.max_attempts)]
    assert delays == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    assert sum(delays) >= 24 * 3600
