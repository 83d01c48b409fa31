"""Issue 18: a 20 s clip out of a 10-minute 1080p30 H.264/AAC upload, through the whole stack.

The stack is `mediajobs up` itself (its managed Redis, API and workers, laid out as a user runs it), on a data
directory of its own. The source is uploaded once with only a thumbnail (its own ladder would keep the one cpu
slot busy for an hour here, and a clip reads the original, not the ladder): it is ready and idle, as a
library's assets are. Then, for each round, a clip of 20 s from the middle (its ends between keyframes, so
both are re-encoded) is asked for, and two times are measured from the clip request's answer: until Chromium's
native player, given the clip's master URL as soon as the API shows it, is playing it (aim <= 3 s); and until
the clip's asset is ready (its whole ladder). The job result says how the clip was rendered. Median of 3; each
clip is deleted before the next round.

Imports nothing from tests/: it drives the product as a user would.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

ROUNDS = 3
SOURCE_S = 600
CLIP = (300.5, 320.5)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mediajobs-bench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def source() -> Path:
    """10 minutes of 1080p30 testsrc2 with a tone, 2 s GOPs (the fast_start benchmark's file, shared)."""
    out = cache_dir() / f"fast-start-{SOURCE_S}s-1080p30-h264.mp4"
    if out.exists():
        return out
    partial = out.with_suffix(".part.mp4")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={SOURCE_S}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SOURCE_S}",
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "60",
         "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mediajobs_up() -> Iterator[tuple[httpx.Client, int]]:
    """`mediajobs up` on a fresh data directory; a client for its API. SIGTERM stops it as Ctrl-C does (a
    background shell's children ignore SIGINT)."""
    with tempfile.TemporaryDirectory(prefix="mj-bench-clip-") as tmp:
        port = free_port()
        env = {**os.environ, "MEDIAJOBS_DATA_DIR": tmp, "MEDIAJOBS_PORT": str(port)}
        env = {k: v for k, v in env.items() if not (k.startswith("MEDIAJOBS_") and k not in (
            "MEDIAJOBS_DATA_DIR", "MEDIAJOBS_PORT"))}  # fmt: skip
        log = open(Path(tmp) / "up.log", "wb")  # noqa: SIM115 - closed below
        up = subprocess.Popen(
            [sys.executable, "-m", "mediajobs", "up"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
        try:
            deadline = time.monotonic() + 120
            while True:
                if up.poll() is not None:
                    raise RuntimeError(f"mediajobs up exited: {(Path(tmp) / 'up.log').read_text()[-2000:]}")
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("mediajobs up did not become ready in 120 s")
                time.sleep(0.2)
            yield client, up.pid
        finally:
            client.close()
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()
            log.close()


def wait_state(client: httpx.Client, media_id: str, *states: str, timeout_s: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        media: dict[str, Any] = client.get(f"/api/v1/media/{media_id}").json()
        if media["state"] in states:
            return media
        if media["state"] == "failed":
            raise RuntimeError(f"media {media_id} failed: {media['error']}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"media {media_id} is still {media['state']}")
        time.sleep(0.05)


def upload(client: httpx.Client, path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        response = client.post(
            "/api/v1/media/uploads", params={"filename": path.name, "pipeline": "thumbnail"}, content=f,
            headers={"Content-Type": "video/mp4"},
        )  # fmt: skip
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and every live process under it, with the children they have reaped."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    total = 0.0
    for pid, cpu in times.items():
        walk = pid
        while walk not in (0, 1, root):
            walk = parents.get(walk, 0)
        if walk == root:
            total += cpu
    return total


@dataclass
class Round:
    plays_s: float  # from the clip request's answer until Chromium plays it
    ready_s: float  # until the clip's asset is ready
    plays_cpu_s: float  # CPU the stack spent until it plays
    clip_job_s: float  # the clip job's own run time (render and store)
    result: dict[str, Any]


def job_s(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    return (datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")) - started).total_seconds()


def one_clip(page: Page, client: httpx.Client, source_id: str, up_pid: int) -> Round:
    cpu_before = tree_cpu_s(up_pid)
    response = client.post(f"/api/v1/media/{source_id}/clip", json={"start": CLIP[0], "end": CLIP[1]})
    response.raise_for_status()
    asked = time.perf_counter()
    answer = response.json()
    clip_id = answer["media"]["id"]
    while True:
        media = client.get(f"/api/v1/media/{clip_id}").json()
        if media["state"] == "failed":
            raise RuntimeError(f"the clip failed: {media['error']}")
        if media["hls"]:
            break
        time.sleep(0.02)
    page.evaluate("url => { const v = document.querySelector('video'); v.src = url; v.play(); }",
                  media["hls"]["master_url"])  # fmt: skip
    page.wait_for_function(
        "() => document.querySelector('video').currentTime > 0", timeout=300_000, polling=20
    )
    plays = time.perf_counter() - asked
    plays_cpu = tree_cpu_s(up_pid) - cpu_before
    wait_state(client, clip_id, "ready")
    ready = time.perf_counter() - asked
    job = client.get(f"/api/v1/jobs/{answer['job']['id']}").json()
    page.evaluate("() => { const v = document.querySelector('video'); v.removeAttribute('src'); v.load(); }")
    client.delete(f"/api/v1/media/{clip_id}")
    return Round(plays, ready, plays_cpu, job_s(job), job["result"])


def main() -> None:
    path = source()
    length, minutes = CLIP[1] - CLIP[0], SOURCE_S // 60
    print(f"Clip of {length:g} s ({CLIP[0]:g}-{CLIP[1]:g} s) out of a {minutes} min 1080p30 H.264/AAC "
          "upload, `mediajobs up` on this machine, median of 3")  # fmt: skip
    with mediajobs_up() as (client, up_pid), sync_playwright() as pw:
        created = upload(client, path)
        wait_state(client, created["media"]["id"], "ready")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_content("<video muted playsinline></video>")
        rounds = [one_clip(page, client, created["media"]["id"], up_pid) for _ in range(ROUNDS)]
        browser.close()

    def line(label: str, values: list[float], aim: str = "") -> None:
        each = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {label:<44} median {statistics.median(values):6.2f} s  ({each})  {aim}".rstrip())

    line("until the clip plays (Chromium)", [r.plays_s for r in rounds], "aim <= 3 s")
    line("  CPU the stack spent until then", [r.plays_cpu_s for r in rounds])
    line("  of which the clip job ran (render, store)", [r.clip_job_s for r in rounds])
    line("until its asset is ready (whole ladder)", [r.ready_s for r in rounds])
    result = rounds[-1].result
    print(
        f"  render {result['render']}: re-encoded {result['reencoded_s']} s, copied {result['copied_s']} s"
        + (f" ({result['reason']})" if result.get("reason") else "")
    )


if __name__ == "__main__":
    main()
