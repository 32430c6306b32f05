"""A datacenter process without the API serves its Prometheus registry on its own port: an
ingest pod on the ingest port, an indicators pod on the indicators port."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

import httpx
import pytest

from bocage.core.errors import BocageError
from bocage.core.natsserver import free_port
from bocage.core.register import Register
from bocage.datacenter.runtime import Datacenter, metrics_port
from bocage.datacenter.settings import DatacenterSettings
from bocage.indicators import IndicatorsSettings
from bocage.ingest import IngestSettings
from bocage.store import StoreSettings


def settings(chdb_path: Path, *, ingest: int = 0, indicators: int = 0) -> DatacenterSettings:
    return DatacenterSettings(
        store=StoreSettings(dsn=f"chdb://{chdb_path}", database=f"m_{uuid.uuid4().hex[:10]}"),
        ingest=IngestSettings(metrics_port=ingest),
        indicators=IndicatorsSettings(metrics_port=indicators, refresh_seconds=3600),
        register=Register(territories=()),
    )


def test_which_port_a_process_serves(chdb_path: Path) -> None:
    both = settings(chdb_path, ingest=9102, indicators=9103)
    assert metrics_port(both, ("ingest",)) == 9102
    assert metrics_port(both, ("indicators",)) == 9103
    assert metrics_port(both, ("ingest", "indicators")) == 9102  # one registry, one port
    assert metrics_port(both, ("indicators", "api")) == 0  # the API's /metrics serves it
    assert metrics_port(both, ("ingest", "indicators", "api")) == 0
    assert metrics_port(settings(chdb_path, indicators=9103), ("ingest", "indicators")) == 9103
    assert metrics_port(settings(chdb_path), ("indicators",)) == 0


async def test_indicators_process_serves_its_metrics(chdb_path: Path) -> None:
    port = free_port()
    datacenter = Datacenter(settings(chdb_path, indicators=port), services=("indicators",))
    stop = asyncio.Event()
    task = asyncio.create_task(datacenter.run(stop))
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        await asyncio.wait_for(datacenter.ready.wait(), 60)
        async with httpx.AsyncClient() as client:
            # the first refresh runs in the background: poll until it has been counted
            deadline = asyncio.get_running_loop().time() + 60
            while True:
                body = (await client.get(url)).text
                if "bocage_indicators_computations_total{" in body:
                    break
                if asyncio.get_running_loop().time() > deadline:
                    pytest.fail(f"no indicator computation exported on {url}:\n{body[:2000]}")
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    # stopped with the process: nothing listens any more
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url, timeout=5)


async def test_a_taken_metrics_port_is_a_clear_error(chdb_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        datacenter = Datacenter(settings(chdb_path, indicators=port), services=("indicators",))
        with pytest.raises(BocageError, match=f"metrics endpoint could not listen on port {port}"):
            await asyncio.wait_for(datacenter.run(asyncio.Event()), 60)
