"""Hosts on one machine (network namespaces): skipped, saying why, where this machine cannot make them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clips import generate_clip
from tests.hosts.cluster import ScaleOut
from tests.hosts.system import unavailable


def require_hosts() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"multi-host tests need network namespaces: {reason}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[ScaleOut]:
    """One scale-out cluster per module: its scenarios leave every host as they found it."""
    require_hosts()
    with ScaleOut.start(workers=2) as started:
        yield started


@pytest.fixture(scope="session")
def host_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`small`: the pipeline takes about a second. `long`: its transcode (three rungs) takes several."""
    directory = tmp_path_factory.mktemp("host-clips")
    return {
        "small": generate_clip(directory / "small.mp4", duration=4.0, width=640, height=360),
        "long": generate_clip(directory / "long.mp4", duration=12.0, width=1280, height=720),
    }
