"""Upload benchmark: the API process' peak memory while a 2 GiB body streams through POST /media/uploads."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import redis_server
from mediajobs.testing.stacks import Stack, stack_env

TOTAL_BYTES = 2 * 1024**3
CHUNK_BYTES = 1024**2
DISTINCT_CHUNKS = 16
SAMPLE_S = 0.02
AIM_MB = 150


@contextmanager
def api_only(broker_url: str) -> Iterator[Stack]:
    """Just the API: with no worker, the queued processing job cannot add its own disk and CPU load."""
    with tempfile.TemporaryDirectory(prefix="mj-bench-upload-") as d:
        directory = Path(d)
        env = stack_env(directory, broker_url=broker_url, timings={}, max_upload_bytes=str(2 * TOTAL_BYTES))
        s = Stack(directory, env).start(workers=[])
        try:
            yield s
        finally:
            s.stop()


def body() -> Iterator[bytes]:
    """2 GiB made on the fly: a few random MiB cycled, so the client neither stores nor computes much."""
    pool = [os.urandom(CHUNK_BYTES) for _ in range(DISTINCT_CHUNKS)]
    # Starting as a Matroska file does: the API refuses a body whose first bytes are not media (415).
    pool[0] = b"\x1a\x45\xdf\xa3" + pool[0][4:]
    for i in range(TOTAL_BYTES // CHUNK_BYTES):
        yield pool[i % DISTINCT_CHUNKS]


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class RssSampler:
    """Samples VmRSS in a thread; VmHWM (the kernel's own high-water mark) catches spikes between samples."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            self._stop.wait(SAMPLE_S)


def mb(kb: int) -> float:
    return kb * 1024 / 1e6


def report(r: httpx.Response, elapsed_s: float, *, before_kb: int, sampled_kb: int, hwm_kb: int) -> None:
    print(
        f"upload: {TOTAL_BYTES / 1024**3:.0f} GiB raw body in {CHUNK_BYTES // 1024} KiB chunks, local storage"
    )
    if r.status_code == 202:
        size = (r.json()["media"].get("original") or {}).get("size")
        print(f"  answer 202, stored original {size} bytes")
    else:
        print(f"  the API refused the upload: {r.status_code} {r.text[:300]}")
    # The kernel syncs per-thread RSS counters lazily, so VmHWM can trail a sampled VmRSS: take the larger.
    peak_kb = max(sampled_kb, hwm_kb)
    print(f"  API RSS before the upload                   {mb(before_kb):8.1f} MB")
    print(f"  API VmRSS, max of samples every {SAMPLE_S * 1000:.0f} ms      {mb(sampled_kb):8.1f} MB")
    print(f"  API VmHWM after the upload                  {mb(hwm_kb):8.1f} MB")
    print(f"  API peak RSS                                {mb(peak_kb):8.1f} MB   (aim < {AIM_MB} MB)")
    rate = TOTAL_BYTES / 1e6 / elapsed_s
    print(f"  throughput                                  {rate:8.1f} MB/s ({elapsed_s:.1f} s)")


def main() -> None:
    with redis_server() as redis, api_only(redis.url) as s:
        assert s.api is not None
        pid = s.api.pid  # `python -m mediajobs api` runs uvicorn in this very process, no reloader or workers
        with httpx.Client(base_url=s.api_url, timeout=httpx.Timeout(30, read=600)) as client:
            # One small request first, so the figures compare a warmed-up API with itself.
            client.get("/api/v1/media", params={"limit": 1})
            before_kb = status_kb(pid, "VmRSS")
            with RssSampler(pid) as sampler:
                started = time.perf_counter()
                r = client.post(
                    "/api/v1/media/uploads",
                    params={"filename": "big.mp4"},
                    content=body(),
                    headers={"Content-Type": "video/mp4", "Content-Length": str(TOTAL_BYTES)},
                )
                elapsed = time.perf_counter() - started
            hwm_kb = status_kb(pid, "VmHWM")
        report(r, elapsed, before_kb=before_kb, sampled_kb=sampler.peak_kb, hwm_kb=hwm_kb)


if __name__ == "__main__":
    main()
