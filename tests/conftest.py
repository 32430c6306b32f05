"""Fixtures shared by every part's tests: real servers on loopback, started and cleaned up here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bocage.core.natsserver import EmbeddedNats


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's chDB data path: chDB opens one data path per process, so every test shares
    it and isolates itself in a database of its own."""
    return tmp_path_factory.getbasetemp() / "chdb"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream on a free loopback port, its store in ``tmp_path``."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()
