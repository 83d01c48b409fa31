"""Browser-facing defaults: the Host header is checked, cross-site writes and CORS-simple bodies refused."""

from __future__ import annotations

import pytest

from tests.api.conftest import ORIGIN, MakeClient, TestClient

JOB = {"kind": "test.add", "params": {"x": 1, "y": 2}}
# What Chromium sends with the web UI's fetch(): same origin, JSON.
UI = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}


def problem(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    return str(response.json()["detail"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "LOCALHOST:8000",
        "localhost.:8000",
        "127.0.0.1:8000",
        "127.0.0.1",
        "[::1]:8000",
        "[::1]",
    ],
)
def test_loopback_hosts_are_answered(open_client: TestClient, host: str) -> None:
    assert open_client.get("/api/v1/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8000",
        "127.0.0.1.evil.example",
        "localhost.evil.example:8000",
        "[::2]:8000",
        "[::1",
        "::1",
        "localhost:80:80",
        "localhost:notaport",
        "local\xe9host",
        "",
        "x" * 5000,
    ],
)
def test_other_hosts_are_refused_naming_the_setting(open_client: TestClient, host: str) -> None:
    response = open_client.get("/api/v1/jobs", headers=[(b"host", host.encode("latin-1"))])
    assert "MEDIAJOBS_ALLOWED_HOSTS" in problem(response, 400) or host == ""


def test_the_host_check_covers_the_ui_docs_and_metrics(open_client: TestClient) -> None:
    for path in ("/", "/docs", "/openapi.json", "/metrics", "/api/v1/media"):
        problem(open_client.get(path, headers={"Host": "rebound.example"}), 400)


def test_two_host_headers_are_refused(open_client: TestClient) -> None:
    headers = [(b"host", b"localhost:8000"), (b"host", b"evil.example")]
    problem(open_client.get("/api/v1/jobs", headers=headers), 400)


def test_probes_answer_any_host_for_orchestrators(open_client: TestClient) -> None:
    # Kubernetes probes send the pod IP as Host; the answers carry no data worth rebinding for.
    assert open_client.get("/healthz", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    assert open_client.get("/readyz", headers={"Host": "10.1.2.3:8000"}).status_code in (200, 503)


def test_allowed_hosts_and_the_configured_host_are_answered(make_client: MakeClient) -> None:
    client = make_client(allowed_hosts="media.example.com, [2001:db8::5]", host="192.0.2.7")
    for host in ("media.example.com", "Media.Example.com:443", "[2001:db8::5]:8000", "192.0.2.7:8000"):
        assert client.get("/api/v1/jobs", headers={"Host": host}).status_code == 200, host
    problem(client.get("/api/v1/jobs", headers={"Host": "other.example.com"}), 400)
    assert (
        make_client(allowed_hosts="*").get("/api/v1/jobs", headers={"Host": "any.example"}).status_code == 200
    )


def test_the_same_origin_ui_and_programs_can_post(open_client: TestClient) -> None:
    assert open_client.post("/api/v1/jobs", json=JOB, headers=UI).status_code == 202
    # curl, httpx and the CLI send no Origin and no Sec-Fetch-* headers.
    assert open_client.post("/api/v1/jobs", json=JOB).status_code == 202
    assert open_client.post("/api/v1/jobs", json=JOB, headers={"Sec-Fetch-Site": "none"}).status_code == 202
    ipv6 = {"Host": "[::1]:8000", "Origin": "http://[::1]:8000", "Sec-Fetch-Site": "same-origin"}
    assert open_client.post("/api/v1/jobs", json=JOB, headers=ipv6).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost:8000"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:9999"},
        {"Origin": "https://localhost:8000"},
        {"Origin": "http://localhost:8000.evil.example"},
        {"Origin": "http://[::1"},
        {"Origin": "garbage"},
        {"Origin": "http://localhost:8000", "Sec-Fetch-Site": "CROSS-SITE"},
    ],
)
def test_cross_site_writes_are_refused(open_client: TestClient, headers: dict[str, str]) -> None:
    for method, path in [
        ("POST", "/api/v1/jobs"),
        ("DELETE", "/api/v1/jobs/00000000-0000-0000-0000-000000000000"),
        ("POST", "/api/v1/media/uploads?filename=x.mp4"),
        ("PUT", "/api/v1/jobs"),
        ("PATCH", "/api/v1/jobs"),
    ]:
        response = open_client.request(method, path, json=JOB, headers=headers)
        assert "cross-site" in problem(response, 403)
    # Reading stays possible (a <video> on another site may play a file), only writes are refused.
    assert open_client.get("/api/v1/jobs", headers=headers).status_code == 200


def test_two_origin_headers_are_refused_when_either_is_foreign(open_client: TestClient) -> None:
    headers = [
        (b"origin", ORIGIN.encode()),
        (b"origin", b"https://evil.example"),
        (b"content-type", b"application/json"),
    ]
    problem(open_client.post("/api/v1/jobs", content=b"{}", headers=headers), 403)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "TEXT/PLAIN",
    ],
)
def test_cors_simple_bodies_are_refused_on_json_routes(open_client: TestClient, content_type: str) -> None:
    # What a <form> or a no-cors fetch() can send from any page without a preflight.
    body = b'{"kind": "test.add", "params": {"x": 1, "y": 2}}'
    for path in (
        "/api/v1/jobs",
        "/api/v1/media/imports",
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000/retry",
    ):
        response = open_client.post(path, content=body, headers={"Content-Type": content_type})
        assert "application/json" in problem(response, 415)
    assert open_client.get("/api/v1/jobs?limit=1").json()["items"] == []


def test_uploads_still_take_raw_and_multipart_bodies(open_client: TestClient) -> None:
    # The route takes any Content-Type (what decides is the file's first bytes, here Matroska's): never a
    # 415 for the type, nor a 403.
    media = b"\x1a\x45\xdf\xa3" + b"hello"
    raw = open_client.post(
        "/api/v1/media/uploads?filename=a.txt", content=media, headers={"Content-Type": "text/plain"}
    )
    form = open_client.post("/api/v1/media/uploads", files={"file": ("a.mp4", media, "video/mp4")})
    assert raw.status_code == 202 and form.status_code == 202


def test_every_answer_says_nosniff(open_client: TestClient) -> None:
    for response in (
        open_client.get("/api/v1/jobs"),
        open_client.get("/api/v1/jobs/nope"),
        open_client.get("/healthz"),
        open_client.get("/docs"),
        open_client.get("/", headers={"Host": "evil.example"}),
        open_client.post("/api/v1/jobs", content=b"x", headers={"Content-Type": "text/plain"}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"


def test_every_html_answer_forbids_framing(make_client: MakeClient) -> None:
    # Clickjacking: a page elsewhere must not show the UI (or /docs) in a frame and trick a click through it.
    for client in (make_client(), make_client(api_keys="k")):
        pages = ["/", "/ui/", "/ui/index.html", "/docs", "/docs/"]
        answers = [client.get(path) for path in pages]
        answers.append(client.get("/", headers={"Host": "evil.example"}))  # refusals too
        html = [r for r in answers if r.headers.get("content-type", "").startswith("text/html")]
        assert len(html) >= 4, [(r.url, r.status_code, r.headers.get("content-type")) for r in answers]
        for response in html:
            where = f"{response.url} {response.status_code}"
            assert response.headers["x-frame-options"] == "DENY", where
            assert response.headers["content-security-policy"] == "frame-ancestors 'none'", where
    # Every other answer says DENY too (a JSON or media answer framed is no use to anyone).
    api = make_client().get("/api/v1/jobs")
    assert api.headers["x-frame-options"] == "DENY"
