"""Resumable upload benchmark (`python -m bench tus`): one big file through the API on loopback, on local
storage and on S3 (moto's server), three ways, with the API's peak RSS for each:

- today's single request (POST /api/v1/media/uploads), the throughput baseline;
- tus with tuspy, uninterrupted;
- tus with tuspy through a proxy that cuts the connection 3 times (tuspy resumes after each).

Aims: cut / uninterrupted wall time <= 1.15x; tus throughput >= 0.9x the single request's; API peak RSS
< 150 MB. `MJ_BENCH_TUS_MIB` sets the size (default 2048), `MJ_BENCH_TUS_STORAGES` the storages (default
`local,s3`). Self-contained: it imports nothing from tests/.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx
from moto.server import ThreadedMotoServer
from tusclient.client import TusClient

from mediajobs.testing.files import MEDIA_MAGIC

SIZE = int(os.environ.get("MJ_BENCH_TUS_MIB", "2048")) * 1024**2
TUS_CHUNK = 256 * 1024**2  # tuspy reads each PATCH body into memory: bounded here, one PATCH per 256 MiB
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
AIM_RATIO, AIM_THROUGHPUT, AIM_MB = 1.15, 0.9, 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError("timed out")


@contextmanager
def redis(directory: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5).close() is None)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def api(directory: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """One API process (no worker: the queued processing job adds no load); its URL and pid."""
    port = free_port()
    values = {k: v for k, v in os.environ.items() if not k.startswith("MEDIAJOBS_")}
    values.update(env, MEDIAJOBS_PORT=str(port), MEDIAJOBS_DATA_DIR=str(directory / "data"))
    log = (directory / "api.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "mediajobs", "api"], env=values, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


class Cutter:
    """A loopback TCP proxy that closes, mid-body, the connections that carry bytes number `cuts[i]`."""

    def __init__(self, upstream: int, cuts: list[int]) -> None:
        self.upstream, self.cuts, self.total = upstream, sorted(cuts), 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        up = socket.create_connection(("127.0.0.1", self.upstream))

        def back() -> None:
            with contextlib.suppress(OSError):
                while data := up.recv(1 << 16):
                    client.sendall(data)
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)

        threading.Thread(target=back, daemon=True).start()
        with contextlib.suppress(OSError):
            while data := client.recv(1 << 20):
                if self.cuts and self.total + len(data) >= self.cuts[0]:
                    up.sendall(data[: self.cuts[0] - self.total])
                    self.total = self.cuts.pop(0)
                    break
                up.sendall(data)
                self.total += len(data)
        for sock in (client, up):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def status_kb(pid: int, field: str) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(f"{field}:"))
    return int(line.split()[1])


def measured(pid: int, run: Callable[[], None]) -> tuple[float, float]:
    """Wall time of `run` and the API's peak RSS in MB meanwhile (VmHWM, reset just before)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    return elapsed, status_kb(pid, "VmHWM") * 1024 / 1e6


def single_request(url: str, file: Path) -> None:
    def chunks() -> Iterator[bytes]:
        with file.open("rb") as f:
            while data := f.read(1 << 20):
                yield data

    headers = {"Content-Type": "video/mp4", "Content-Length": str(SIZE)}
    with httpx.Client(timeout=httpx.Timeout(30, read=1200)) as client:
        answer = client.post(f"{url}/api/v1/media/uploads", params={"filename": "big.mp4"}, content=chunks(),
                             headers=headers)  # fmt: skip
    if answer.status_code != 202:
        raise RuntimeError(f"single request refused: {answer.status_code} {answer.text[:200]}")


def tus(endpoint: str, file: Path) -> None:
    uploader = TusClient(f"{endpoint}/api/v1/uploads").uploader(
        str(file), chunk_size=TUS_CHUNK, metadata={"filename": "big.mp4"}, retries=10, retry_delay=0.2
    )
    uploader.upload()


def storage_env(kind: str, moto_url: str) -> dict[str, str]:
    if kind == "local":
        return {}
    bucket = f"bench-{os.urandom(4).hex()}"
    boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="bench",
                 aws_secret_access_key="bench").create_bucket(Bucket=bucket)  # fmt: skip
    return {**AWS, "MEDIAJOBS_STORAGE_URL": f"s3://{bucket}", "MEDIAJOBS_S3_ENDPOINT_URL": moto_url}


def run_storage(kind: str, file: Path, broker: str, moto_url: str) -> None:
    print(f"tus: {SIZE / 1024**2:.0f} MiB through the API on loopback, {kind} storage")
    rows: dict[str, tuple[float, float]] = {}
    for name in ("single request", "tus", "tus, cut 3 times"):
        with tempfile.TemporaryDirectory(prefix="mj-bench-tus-") as d:
            env = {"MEDIAJOBS_BROKER_URL": broker, "MEDIAJOBS_MAX_UPLOAD_BYTES": str(2 * SIZE)}
            with api(Path(d), {**env, **storage_env(kind, moto_url)}) as (url, pid):
                httpx.get(f"{url}/api/v1/media", params={"limit": 1})  # warm up
                if name == "single request":
                    rows[name] = measured(pid, lambda: single_request(url, file))
                elif name == "tus":
                    rows[name] = measured(pid, lambda: tus(url, file))
                else:
                    cutter = Cutter(int(url.rsplit(":", 1)[1]), [SIZE // 4, SIZE // 2, 3 * SIZE // 4])
                    try:
                        rows[name] = measured(pid, lambda c=cutter: tus(c.url, file))
                    finally:
                        cutter.close()
        elapsed, peak = rows[name]
        print(f"  {name:18} {elapsed:7.1f} s  {SIZE / 1e6 / elapsed:7.1f} MB/s  API peak RSS {peak:6.1f} MB")
    base, whole, cut = rows["single request"][0], rows["tus"][0], rows["tus, cut 3 times"][0]
    print(f"  cut / uninterrupted wall time   {cut / whole:5.2f}x (aim <= {AIM_RATIO}x)")
    print(f"  tus / single request throughput {base / whole:5.2f}x (aim >= {AIM_THROUGHPUT}x)")
    peak = max(p for _, p in rows.values())
    print(f"  API peak RSS, worst run         {peak:5.0f} MB (aim < {AIM_MB} MB)")


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server would log every request
    load = os.getloadavg()
    print(f"tus: load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="mj-bench-tus-file-") as d:
        file = Path(d) / "big.mp4"
        block = os.urandom(16 * 1024**2)
        with file.open("wb") as f:
            for _ in range(SIZE // len(block)):
                f.write(block)
            f.write(block[: SIZE % len(block)])
            f.seek(0)
            f.write(MEDIA_MAGIC)  # the API refuses (415) an upload whose first bytes are not media
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        host, port = moto.get_host_and_port()
        try:
            with redis(Path(d)) as broker:
                for kind in os.environ.get("MJ_BENCH_TUS_STORAGES", "local,s3").split(","):
                    run_storage(kind, file, broker, f"http://{host}:{port}")
        finally:
            moto.stop()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
