"""A job's context as its handler and the threads it starts see it."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from mediajobs.jobs import context
from mediajobs.jobs.context import JobContext
from mediajobs.jobs.hooks import Services


def test_a_temp_dir_first_asked_for_by_two_threads_at_once_is_one_directory_and_cleanup_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast start scans the source's first seconds in a thread while the job probes it: both jailed children
    ask for the job's temp dir (their working directory) before anything else made it. Seen: two directories,
    one of them left behind when the job ended."""
    settings = SimpleNamespace(effective_temp_dir=tmp_path / "tmp")
    services = cast(Services, SimpleNamespace(db=None, settings=settings, broker=None))
    ctx = JobContext(
        services=services,
        job_id="0123456789ab",
        attempt=1,
        kind="media.process",
        media_id=None,
        max_attempts=1,
    )
    made = tempfile.mkdtemp

    def slow_mkdtemp(*args: Any, **kwargs: Any) -> str:
        time.sleep(0.3)  # wide enough for the other thread to look meanwhile
        return made(*args, **kwargs)

    monkeypatch.setattr(context.tempfile, "mkdtemp", slow_mkdtemp)
    together = threading.Barrier(2)
    seen: list[Path] = []

    def ask() -> None:
        together.wait(timeout=10)
        seen.append(ctx.temp_dir)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 2 and seen[0] == seen[1]
    assert os.listdir(tmp_path / "tmp") == [seen[0].name]
    ctx.cleanup()
    assert os.listdir(tmp_path / "tmp") == []


def test_the_eta_is_the_pace_since_the_first_progress_not_since_the_attempt_began() -> None:
    """A ladder reports its first step (probe, plan; seconds) as 4 %, then encodes 4 → 97 % at a steady
    pace: the ETA is that pace, not the attempt's average, which the first step would skew."""
    # 30 s of first step, reported as 4 %, then 20 s more for 21 more points: 25 points per 20 s.
    assert context.estimate_eta(25.0, 50.0, 0.0, (30.0, 4.0)) == round(75.0 * 20.0 / 21.0, 1)
    # Before a point and a second since the first report, no pace to tell: the first step may take any time.
    assert context.estimate_eta(4.5, 35.0, 0.0, (30.0, 4.0)) is None
    assert context.estimate_eta(9.0, 30.5, 0.0, (30.0, 4.0)) is None
    assert context.estimate_eta(0.5, 10.0, 0.0, None) is None
    assert context.estimate_eta(50.0, 10.0, 0.0, None) == 10.0
