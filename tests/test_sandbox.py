from __future__ import annotations

import os
import sys

import pytest

from mediajobs import process, sandbox
from mediajobs.errors import ProcessFailed
from mediajobs.sandbox import Limits
from tests.toolkit.hostile import listener

needs_netns = pytest.mark.skipif(not sandbox.netns_available(), reason="no network namespaces here")

FETCH = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"


@needs_netns
def test_child_without_network_cannot_reach_a_loopback_server() -> None:
    with listener() as internal:
        with pytest.raises(ProcessFailed):
            process.run([sys.executable, "-c", FETCH, internal.url("/")], network=False, timeout_s=30)
        assert internal.hits() == 0

        # The same child with the network reaches it: the listener is a fair witness.
        process.run([sys.executable, "-c", FETCH, internal.url("/")], check=False, timeout_s=30)
        assert internal.hits() == 1


@needs_netns
def test_ffmpeg_without_network_never_connects() -> None:
    with listener() as internal:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-rw_timeout", "3000000", "-i", internal.url("x.mp4")]
        with pytest.raises(ProcessFailed, match=r"^ffmpeg exited"):
            process.run([*args, "-f", "null", "-"], network=False, timeout_s=30)
        assert internal.hits() == 0


@needs_netns
def test_child_without_network_keeps_its_pid_group_and_limits() -> None:
    show = (
        "import os, resource; print(os.getpid() == os.getpgid(0), resource.getrlimit(resource.RLIMIT_CPU)[0])"
    )

    done = process.run(
        [sys.executable, "-c", show], network=False, limits=Limits(cpu_s=7), capture_stdout=True
    )

    assert done.stdout == "True 7"


@needs_netns
def test_child_without_network_has_a_namespace_of_its_own() -> None:
    show = "import os; print(os.readlink('/proc/self/ns/net'))"
    ours = os.readlink("/proc/self/ns/net")

    isolated = process.run([sys.executable, "-c", show], network=False, capture_stdout=True).stdout
    shared = process.run([sys.executable, "-c", show], capture_stdout=True).stdout

    assert isolated != ours and shared == ours


def test_limits_fill_in_what_they_leave_unset() -> None:
    job = Limits(memory_bytes=2**30)

    merged = Limits(cpu_s=30).merged(job)

    assert merged == Limits(memory_bytes=2**30, cpu_s=30)
    assert Limits(memory_bytes=2**20).merged(job).memory_bytes == 2**20
