"""The whole path on real servers: simulated gateway → NATS JetStream → ingest → ClickHouse →
indicator → HTTP API, checked against values computed by hand from the same readings."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from bocage.api import ApiSettings
from bocage.core.natsserver import EmbeddedNats, free_port
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.datacenter.runtime import Datacenter
from bocage.datacenter.settings import DatacenterSettings, NatsSettings
from bocage.edge.adapters.simulated import expected_readings
from bocage.edge.agent import Agent
from bocage.edge.reading import Reading
from bocage.edge.settings import (
    BatchSection,
    EdgeSettings,
    GatewaySection,
    NatsSection,
    SensorSection,
    SpoolSection,
)
from bocage.store import StoreSettings

pytestmark = pytest.mark.slow

TERRITORY = "36228"  # Valençay (Indre)
GATEWAY = "gw-36228-1"
PARIS = ZoneInfo("Europe/Paris")
START_MS = int(datetime(2026, 6, 1, tzinfo=PARIS).timestamp() * 1000)
SAMPLES = 2 * 24 * 60  # two local days of one-minute samples
SENSORS = (
    ("36228-lum-1", "lighting_cabinet"),
    ("36228-lum-2", "lighting_cabinet"),
    ("36228-eau", "water_meter"),
)


def register() -> Register:
    sensors = tuple(Sensor(id=sid, kind=kind, gateway=GATEWAY) for sid, kind in SENSORS)
    gateway = Gateway(id=GATEWAY, territory=TERRITORY, sensors=sensors)
    return Register(territories=(Territory(code=TERRITORY, name="Valençay", gateways=(gateway,)),))


def gateway_settings(nats_url: str, spool: Path) -> EdgeSettings:
    return EdgeSettings(
        gateway=GatewaySection(id=GATEWAY, territory=TERRITORY, latitude=47.15, longitude=1.567),
        nats=NatsSection(url=nats_url),
        spool=SpoolSection(dir=str(spool)),
        batch=BatchSection(max_readings=500, max_age_s=1.0),
        sensors=[
            SensorSection(
                id=sid,
                kind=kind,
                seed=i,
                start_ms=START_MS,
                step_ms=60_000,
                limit=SAMPLES,
                realtime=False,
            )
            for i, (sid, kind) in enumerate(SENSORS)
        ],
    )


def lighting_energy_by_hand(readings: list[Reading]) -> dict[str, float]:
    """docs/indicators.md, lighting_energy_kwh: per cabinet, increases between consecutive
    energy readings (a decrease is a reset: the later value counts), on the local day of the
    later reading, summed over cabinets, in kWh."""
    per_sensor: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in readings:
        if r.metric == "energy" and r.sensor.startswith("36228-lum"):
            per_sensor[r.sensor].append((r.time_ms, r.value))
    per_day: dict[str, float] = defaultdict(float)
    for series in per_sensor.values():
        series.sort()
        for (t0, v0), (t1, v1) in itertools.pairwise(series):
            assert t1 - t0 < 48 * 3_600_000
            increase = v1 - v0 if v1 >= v0 else v1
            day = datetime.fromtimestamp(t1 / 1000, PARIS).date().isoformat()
            per_day[day] += increase
    return {day: wh / 1000 for day, wh in per_day.items()}


async def poll(predicate, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit_s}s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_gateway_to_api_exactly_once(
    nats_server: EmbeddedNats, chdb_path: Path, tmp_path: Path
) -> None:
    api_port = free_port()
    settings = DatacenterSettings(
        nats=NatsSettings(url=nats_server.url),
        store=StoreSettings(dsn=f"chdb://{chdb_path}", database=f"e2e_{uuid.uuid4().hex[:10]}"),
        api=ApiSettings(host="127.0.0.1", port=api_port),
        register=register(),
    )
    stop_datacenter = asyncio.Event()
    datacenter = Datacenter(settings)
    datacenter_task = asyncio.create_task(datacenter.run(stop_datacenter))
    stop_agent = asyncio.Event()
    agent_task: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(datacenter.ready.wait(), 60)
        edge = gateway_settings(nats_server.url, tmp_path / "spool")
        agent = Agent(edge)
        agent_task = asyncio.create_task(agent.run(stop_agent))
        await asyncio.wait_for(agent.drained(), 120)

        expected = expected_readings(edge)
        assert len(expected) == SAMPLES * (3 + 3 + 2)  # one reading per metric per sample
        counters = agent.counters
        assert counters.produced == len(expected)
        assert counters.delivered == counters.accepted == len(expected)  # nothing filtered or lost

        store = datacenter.store
        assert store is not None
        readings = store.table("readings")

        async def all_rows_stored() -> bool:
            return store.scalar(f"SELECT count() FROM {readings}") >= len(expected)

        await poll(all_rows_stored, 60, "every reading to be stored")
        total, distinct = store.query(
            f"SELECT count(), uniqExact(sensor, metric, ts) FROM {readings}"
            " WHERE territory = %(t)s",
            {"t": TERRITORY},
        )[0]
        assert total == len(expected)  # no loss, no duplicate
        assert distinct == len(expected)
        stored_sum = store.scalar(f"SELECT sum(value) FROM {readings}")
        assert stored_sum == pytest.approx(sum(r.value for r in expected), rel=1e-12)

        by_hand = lighting_energy_by_hand(expected)
        assert set(by_hand) == {"2026-06-01", "2026-06-02"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as client:
            response = await client.get(
                "/api/v1/indicators/lighting_energy_kwh",
                params={"territory": TERRITORY, "from": "2026-06-01", "to": "2026-06-02"},
            )
        assert response.status_code == 200, response.text
        served = {
            v["date"]: v["value"] for v in response.json()["values"] if v["territory"] == TERRITORY
        }
        assert served.keys() == by_hand.keys()
        for day, kwh in by_hand.items():
            assert kwh > 0.1  # lights burn every night: a non-trivial value to match
            assert served[day] == pytest.approx(kwh, abs=1e-3), day
    finally:
        stop_agent.set()
        stop_datacenter.set()
        if agent_task is not None:
            await agent_task
        await datacenter_task
