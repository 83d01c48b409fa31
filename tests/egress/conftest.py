from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.egress.sites import Site, running


@pytest.fixture
def attacker() -> Iterator[Site]:
    """Plays a public host: 127.0.0.2 is made public by each test's policy."""
    with running("127.0.0.2") as site:
        yield site


@pytest.fixture
def internal() -> Iterator[Site]:
    """Plays the metadata service or an admin page: 127.0.0.1 stays internal."""
    with running("127.0.0.1") as site:
        site.add("/latest/meta-data/iam", b"SECRET-CREDENTIALS", "text/plain")
        yield site
