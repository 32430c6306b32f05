"""Fixtures shared by every part's tests: real servers on loopback, started and cleaned up here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bocage.core.natsserver import EmbeddedNats


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream on a free loopback port, its store in ``tmp_path``."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()
