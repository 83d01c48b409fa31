"""/openapi.json tells the truth: schemathesis fuzzes the live API; a client generated from it works.

The fuzzed API runs on PostgreSQL, the stricter of the two stores, with its own Redis. A worker runs only
before the fuzzing, long enough to log a webhook delivery attempt (a receiver on loopback answers 500), so
that the delivery log has entries to describe; then the API runs alone, and nothing it accepts ever runs.
Every operation is fuzzed, event streams included (schemathesis reads the first few events of one).
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.engine
from schemathesis.engine import Status, StopReason, events

from mediajobs.testing.servers import PostgresServer, RedisServer, wait_for
from mediajobs.testing.stacks import Stack, stack_env
from tests.api.conftest import MakeClient, TestClient
from tests.webhooks.receiver import serve

CHECKS = ("not_a_server_error", "status_code_conformance", "response_schema_conformance")
# The tus routes' bodies (PATCH, and POST with creation-with-upload) are bytes, as octet-stream ones are.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@dataclass
class Fuzzed:
    stack: Stack
    webhook_id: str
    delivery_id: str

    @property
    def api_url(self) -> str:
        return self.stack.api_url

    def client(self) -> httpx.Client:
        return self.stack.client()


@pytest.fixture(scope="module")
def fuzzed_api(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[Fuzzed]:
    directory = tmp_path_factory.mktemp("fuzzed-api")
    values = stack_env(
        directory,
        broker_url=redis_server.new_url(),
        database_url=postgres_server.create_database(f"mj_{uuid.uuid4().hex[:12]}"),
        # Fuzzed import and webhook URLs are taken as given: checking them would query DNS off this host.
        import_allow_private="true",
    )
    stack = Stack(directory, values)
    try:
        with serve("127.0.0.1") as receiver:
            receiver.scripts["/hook"] = [500]
            stack.start_api()
            webhook_id, delivery_id = _log_a_delivery(stack, receiver.url("/hook"))
        yield Fuzzed(stack, webhook_id, delivery_id)
    finally:
        stack.stop()


def _log_a_delivery(stack: Stack, url: str) -> tuple[str, str]:
    """A webhook endpoint with one delivery whose attempt failed, delivered by a worker that then stops."""
    worker = stack.start_worker("io,default", 1)
    with stack.client() as api:
        endpoint = api.post("/api/v1/webhooks", json={"url": url, "events": ["job.succeeded"]}).json()
        api.post("/api/v1/jobs", json={"kind": "test.add", "params": {"x": 1, "y": 2}})

        def attempted() -> list[dict[str, Any]]:
            items = api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()["items"]
            return [d for d in items if d["attempts"]]

        [delivery] = wait_for(attempted, timeout_s=60, message="a delivery attempt")  # type: ignore[misc]
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)
    assert delivery["attempts"][0]["error"]["code"] == "http_status"
    return endpoint["id"], delivery["id"]


def _failures(event: Any) -> list[str]:
    recorder = getattr(event, "recorder", None)
    if recorder is None:
        return []
    return [
        f"{recorder.label}: {check.failure_info.failure.title}\n{check.failure_info.failure.message}\n"
        f"{check.failure_info.code_sample}"
        for checks in recorder.checks.values()
        for check in checks
        if check.status == Status.FAILURE and check.failure_info is not None
    ]


def test_schemathesis_finds_nothing_undocumented(fuzzed_api: Fuzzed) -> None:
    """Every operation, every phase (examples, coverage, fuzzing, stateful along the documented links), a few
    cases each; the delivery log's routes also with the logged delivery's ids, so that its attempts are
    checked against their schema."""
    logged = {"path.webhook_id": fuzzed_api.webhook_id, "path.delivery_id": fuzzed_api.delivery_id}
    config = schemathesis.Config.from_dict(
        {
            "workers": 1,
            # Repeatable in the suite; `schemathesis run <url>/openapi.json` without a seed explores further.
            "seed": 12,
            "generation": {"max-examples": 6, "database": "none"},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            # An event stream lasts until its job ends (none does here): its first events are enough.
            "max-stream-events": 2,
            "request-timeout": 10,
            "operations": [
                {
                    "include-operation-id": "list_deliveries",
                    "parameters": {"path.webhook_id": logged["path.webhook_id"]},
                },
                {"include-operation-id": "get_delivery", "parameters": logged},
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{fuzzed_api.api_url}/openapi.json", config=config)
    found: list[str] = []
    finished = None
    for event in schemathesis.engine.from_schema(schema).execute():
        found += _failures(event)
        if isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"{type(event).__name__}: {getattr(event, 'value', None) or event.exception}")
        if isinstance(event, events.EngineFinished):
            finished = event
    assert finished is not None and finished.stop_reason == StopReason.COMPLETED
    assert not found, "\n\n".join(dict.fromkeys(found))


def test_every_error_is_documented_as_problem_json(fuzzed_api: Fuzzed) -> None:
    spec = httpx.get(f"{fuzzed_api.api_url}/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status[0] in "45" and status != "416":  # a 416 has no body
                    where = f"{method.upper()} {path} {status}"
                    schema = response["content"]["application/problem+json"]["schema"]
                    assert schema["$ref"].rsplit("/", 1)[1] in ("Problem", "NotReady"), where
                    assert set(response["content"]) == {"application/problem+json"}, where
    database_out = spec["paths"]["/api/v1/jobs/{job_id}"]["get"]["responses"]["503"]
    assert "Retry-After" in database_out["headers"]
    assert "200" in spec["paths"]["/api/v1/jobs/{job_id}"]["delete"]["responses"]


def test_nul_characters_are_a_422_not_a_500_on_postgresql(fuzzed_api: Fuzzed) -> None:
    with fuzzed_api.client() as api:
        listed = api.get("/api/v1/jobs", params={"kind": "\x00"})
        assert listed.status_code == 422 and "NUL" in listed.json()["detail"], listed.text
        webhook = api.post("/api/v1/webhooks", json={"url": "http://a\x00b/", "events": ["job.failed"]})
        assert webhook.status_code == 422, webhook.text
        replayed = api.post("/api/v1/media/%00/analyze", headers={"Idempotency-Key": "k"})
        assert replayed.status_code == 422, replayed.text


def test_a_problem_quoting_an_unencodable_value_is_still_answered(fuzzed_api: Fuzzed) -> None:
    # A lone surrogate is valid JSON (`\ud800`) but no UTF-8: quoting it back made the answer a 500.
    body = '{"url": "http://example.test/", "events": ["job.failed\\ud800"]}'
    with fuzzed_api.client() as api:
        response = api.post("/api/v1/webhooks", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "job.failed\\ud800" in response.json()["detail"]


def test_job_params_no_answer_could_encode_are_refused(make_client: MakeClient) -> None:
    client = make_client(kind_modules="tests.kinds")  # tests.count takes a free-form `path` string
    body = '{"kind": "tests.count", "params": {"path": "x\\ud800"}}'
    response = client.post("/api/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "lone surrogate" in response.text, response.text
    assert client.get("/api/v1/jobs").status_code == 200  # nothing stored that breaks the listing


def test_method_not_allowed_names_every_method_of_the_path(fuzzed_api: Fuzzed) -> None:
    with fuzzed_api.client() as api:
        response = api.request("OPTIONS", "/api/v1/jobs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_with_api_keys_every_api_operation_documents_401(keyed_client: TestClient) -> None:
    spec = keyed_client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/"):
                assert "401" in operation["responses"], f"{method.upper()} {path}"
                assert operation["security"][0] == {"apiKey": []}
    files = spec["paths"]["/api/v1/media/{media_id}/files/{path}"]["get"]
    assert {"playbackToken": []} in files["security"] and "403" in files["responses"]
    assert keyed_client.get("/api/v1/kinds").status_code == 401


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_kinds_lists_each_kind_with_its_params_schema(stack: Stack) -> None:
    with stack.client() as api:
        kinds = {kind["name"]: kind for kind in api.get("/api/v1/kinds").json()["items"]}
        spec = api.get("/openapi.json").json()
    add = kinds["test.add"]
    assert add["public"] and add["queue"] == "default"
    assert add["params_schema"]["required"] == ["x", "y"]
    assert add["params_schema"]["properties"]["x"]["type"] == "number"
    assert kinds["media.process"]["public"] is False  # internal: listed, not submittable
    # A kind from MEDIAJOBS_KIND_MODULES (tests.kinds), in the listing and in this API's OpenAPI body.
    assert kinds["tests.count"]["params_schema"]["required"] == ["path"]
    body = spec["components"]["schemas"]["JobCreate"]
    assert body["discriminator"]["mapping"]["tests.count"] == "#/components/schemas/TestsCountJob"
    assert "media.process" not in body["discriminator"]["mapping"]
    assert spec["components"]["schemas"]["TestAddJob"]["required"] == ["kind", "params"]


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_generated_client_submits_a_job_and_reads_it_back(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "openapi.json").write_bytes(httpx.get(f"{stack.api_url}/openapi.json").content)
    (tmp_path / "generator.yaml").write_text("post_hooks: []\n")  # no formatter run over the output
    subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(tmp_path / "openapi.json"),
            "--output-path",
            str(tmp_path / "mediajobs_client"),
            "--meta",
            "none",
            "--config",
            str(tmp_path / "generator.yaml"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module("mediajobs_client")
        create_job = importlib.import_module("mediajobs_client.api.jobs.create_job")
        get_job = importlib.import_module("mediajobs_client.api.jobs.get_job")
        models = importlib.import_module("mediajobs_client.models")
        with package.Client(base_url=stack.api_url) as client:
            body = models.TestAddJob(kind="test.add", params=models.TestAddParams(x=2, y=3))
            job = create_job.sync(client=client, body=body)
            assert isinstance(job, models.JobPublic) and job.state == "queued"

            def finished() -> Any:
                found = get_job.sync(client=client, job_id=job.id)
                return found if found.state in ("succeeded", "failed") else None

            done = wait_for(finished, timeout_s=30, message="the job to finish")
            assert done.state == "succeeded" and done.result == 5  # type: ignore[attr-defined]
            missing = get_job.sync(client=client, job_id=str(uuid.uuid4()))
            assert isinstance(missing, models.Problem) and missing.status == 404
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "mediajobs_client" or n.startswith("mediajobs_client.")]:
            del sys.modules[name]
