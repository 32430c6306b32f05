"""Fixtures of the store and ingest tests: real chDB (one database per test), real nats-server.

chDB allows one data path per process, so the whole test session shares one path — the same
``<basetemp>/chdb`` the indicator and API tests use — and each test gets its own database.
``CLICKHOUSE_URL=http://user:pass@host:8123`` runs the store tests against a real server instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from ingest_helpers import ChdbHttp, make_register
from nats.aio.client import Client as NatsClient

from bocage.core.natsserver import EmbeddedNats, free_port
from bocage.core.register import Register
from bocage.core.streams import ensure_streams
from bocage.store import Store, StoreSettings


@pytest.fixture(scope="session")
def chdb_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbHttp]:
    """One HTTP-over-chDB server for the session (tests isolate by database)."""
    base = tmp_path_factory.mktemp("chdb-http")
    server = ChdbHttp(base / "data", free_port(), base / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store_dsn(chdb_path: Path) -> str:
    """A real ClickHouse server when CLICKHOUSE_URL is set, else the session's chDB."""
    return os.environ.get("CLICKHOUSE_URL") or f"chdb://{chdb_path}"


@pytest.fixture
def store_settings(store_dsn: str) -> StoreSettings:
    return StoreSettings(dsn=store_dsn, database=f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(store_settings: StoreSettings) -> Iterator[Store]:
    """A migrated store in a database of its own, dropped afterwards."""
    s = Store.connect(store_settings)
    try:
        yield s
    finally:
        s.command(f"DROP DATABASE IF EXISTS {s.quoted_database} SYNC")
        s.close()


@pytest.fixture
def register() -> Register:
    return make_register()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NatsClient]:
    """A client of the session's real nats-server (root conftest), Bocage streams created."""
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    await ensure_streams(client.jetstream())
    try:
        yield client
    finally:
        await client.close()
