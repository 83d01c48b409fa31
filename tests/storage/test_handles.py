"""One storage handle per process: routes, kinds and checks share it; a forked child opens its own."""

from __future__ import annotations

import os
from pathlib import Path

from mediajobs.api.app import create_app
from mediajobs.config import Settings
from mediajobs.storage import for_process


def test_a_process_shares_one_storage_handle_per_configuration(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, storage_url="")
    handle = for_process(settings)
    assert for_process(Settings(data_dir=tmp_path, storage_url="")) is handle  # equal settings, other object
    assert create_app(settings, maintenance=False).state.storage() is handle  # what the routes use
    elsewhere = for_process(Settings(data_dir=tmp_path / "elsewhere", storage_url=""))
    assert elsewhere is not handle
    assert elsewhere.describe() != handle.describe()


def test_a_forked_child_opens_its_own_storage_handle(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, storage_url="")
    handle = for_process(settings)
    pid = os.fork()
    if pid == 0:  # the child: report by exit status only, never return into pytest
        try:
            own = for_process(settings)
            own.put_bytes("from-child.txt", b"child")
            os._exit(0 if own is not handle and for_process(settings) is own else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert handle.read_bytes("from-child.txt") == b"child"
