"""The media application's tests that run the engine in this process (tests/jobs/conftest's `Engine`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jobs import conftest as engine_tests
from tests.jobs.conftest import Engine

# The engine tests' database, migrated once.
migrated_template = engine_tests.migrated_template


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Iterator[Engine]:
    """One engine per module, so tests that only read what an earlier one made can share it."""
    made = Engine(tmp_path_factory.mktemp("engine"), migrated_template)
    yield made
    made.close()
