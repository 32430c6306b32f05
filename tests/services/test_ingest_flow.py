"""Ingest end to end in-process: real nats-server, real chDB, real frames."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bocage.core.register import Register
from bocage.ingest import Ingestor, IngestSettings
from bocage.store import Store
from ingest_helpers import eventually, make_frame, publish_frame

FAST = IngestSettings(
    batch_age_s=0.1, fetch_timeout_s=0.2, retry_initial_s=0.05, retry_max_s=0.5, ack_wait_s=5
)


@contextlib.asynccontextmanager
async def running(ingestor: Ingestor) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def count(store: Store, sql: str = "SELECT count() FROM readings") -> int:
    return int(store.scalar(sql))


async def test_frames_are_stored_once(store: Store, register: Register, nc) -> None:
    js = nc.jetstream()
    for seq in range(1, 6):
        await publish_frame(js, make_frame("gw0", seq))
    ingestor = Ingestor(FAST, store, register, nc)
    async with running(ingestor):
        await eventually(lambda: count(store) == 5 * 4 * 10, what="50 frames stored")
    assert (
        count(store, "SELECT count() FROM (SELECT DISTINCT sensor, metric, ts FROM readings)")
        == 200
    )
    assert count(store, "SELECT sum(count) FROM readings_1h") == 200
