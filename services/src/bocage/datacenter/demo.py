"""``bocage demo``: the whole stack on one laptop, on embedded defaults.

An embedded nats-server, the all-in-one datacenter on an embedded chDB store, and one simulated
gateway for each of three communes of the Indre (36). Each gateway first replays
``backfill_hours`` of history as fast as the pipeline takes it, then goes live on the wall
clock. Everything lives under ``data_dir`` and is kept between runs: on restart the gateways
resume after the last reading their spool holds, so nothing is produced twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from bocage.api import ApiSettings
from bocage.core.errors import BocageError
from bocage.core.logs import get_logger
from bocage.core.natsserver import EmbeddedNats
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.datacenter.runtime import Datacenter, install_stop_signals
from bocage.datacenter.settings import DatacenterSettings, NatsSettings
from bocage.edge.agent import Agent
from bocage.edge.settings import (
    BatchSection,
    EdgeSettings,
    GatewaySection,
    NatsSection,
    SensorSection,
    SpoolSection,
)
from bocage.store import StoreSettings

log = get_logger("bocage.demo")

STEP_MS = 60_000
"""The simulated sensors sample once a minute."""


@dataclass(frozen=True)
class Commune:
    """A demo commune: INSEE COG code, name, position of its gateway, its sensors."""

    code: str
    name: str
    latitude: float
    longitude: float
    sensors: tuple[tuple[str, str, str], ...]
    """(sensor id suffix, kind, simulator profile)."""


COMMUNES: tuple[Commune, ...] = (
    Commune(
        "36001",
        "Aigurande",
        46.433,
        1.830,
        (
            ("lum-bourg", "lighting_cabinet", "default"),
            ("lum-gare", "lighting_cabinet", "default"),
            ("mairie", "building_meter", "default"),
            ("eau-reseau", "water_meter", "leak"),
        ),
    ),
    Commune(
        "36005",
        "Ardentes",
        46.742,
        1.833,
        (
            ("lum-centre", "lighting_cabinet", "default"),
            ("ecole", "building_meter", "default"),
            ("eau-reseau", "water_meter", "default"),
            ("air-place", "air_quality", "default"),
        ),
    ),
    Commune(
        "36228",
        "Valençay",
        47.150,
        1.567,
        (
            ("lum-chateau", "lighting_cabinet", "default"),
            ("lum-bourg", "lighting_cabinet", "default"),
            ("gymnase", "building_meter", "default"),
            ("eau-reseau", "water_meter", "default"),
            ("bac-marche", "waste_bin", "default"),
        ),
    ),
)


def gateway_id(commune: Commune) -> str:
    """The demo gateway of a commune."""
    return f"gw-{commune.code}-1"


def sensor_id(commune: Commune, suffix: str) -> str:
    """Sensor ids are unique within a territory; the code keeps them unique in the demo too."""
    return f"{commune.code}-{suffix}"


def demo_register() -> Register:
    """The register of the demo territory: three communes, one gateway each."""
    return Register(
        territories=tuple(
            Territory(
                code=c.code,
                name=c.name,
                gateways=(
                    Gateway(
                        id=gateway_id(c),
                        territory=c.code,
                        name=f"Passerelle {c.name}",
                        sensors=tuple(
                            Sensor(
                                id=sensor_id(c, suffix),
                                kind=kind,
                                name=f"{suffix} ({c.name})",
                                gateway=gateway_id(c),
                                controller=f"Commune de {c.name}",
                                latitude=c.latitude,
                                longitude=c.longitude,
                            )
                            for suffix, kind, _ in c.sensors
                        ),
                    ),
                ),
            )
            for c in COMMUNES
        )
    )


def gateway_settings(
    commune: Commune, *, nats_url: str, data_dir: Path, start_ms: int
) -> EdgeSettings:
    """Settings of the simulated gateway of ``commune``: history from ``start_ms``, then live."""
    return EdgeSettings(
        gateway=GatewaySection(
            id=gateway_id(commune),
            territory=commune.code,
            name=commune.name,
            latitude=commune.latitude,
            longitude=commune.longitude,
        ),
        nats=NatsSection(url=nats_url),
        spool=SpoolSection(
            dir=str(data_dir / "gateways" / gateway_id(commune)), budget_bytes=64 << 20
        ),
        batch=BatchSection(max_readings=2000, max_age_s=5.0),
        # a status every 15 s (60 s by default): today's digital-sobriety values (bytes and
        # energy per reading, from consecutive statuses) appear within the first minute
        status_interval_s=15.0,
        sensors=[
            SensorSection(
                id=sensor_id(commune, suffix),
                kind=kind,
                profile=profile,
                seed=index,
                start_ms=start_ms,
                step_ms=STEP_MS,
                realtime=True,
            )
            for index, (suffix, kind, profile) in enumerate(commune.sensors)
        ],
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_demo(data_dir: Path, *, port: int, backfill_hours: float, duration: float | None) -> int:
    """Run the demo until Ctrl-C (or ``duration`` seconds); returns the exit code."""
    if not _port_free(port):
        raise BocageError(f"port {port} is in use: choose another with `bocage demo --port N`")
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    nats = EmbeddedNats(data_dir / "nats", port=4222 if _port_free(4222) else None)
    nats.start()
    try:
        asyncio.run(
            _run(data_dir, nats, port=port, backfill_hours=backfill_hours, duration=duration)
        )
    finally:
        nats.stop()
    print("bocage demo stopped; data kept in", data_dir)
    return 0


async def _run(
    data_dir: Path, nats: EmbeddedNats, *, port: int, backfill_hours: float, duration: float | None
) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    settings = DatacenterSettings(
        nats=NatsSettings(url=nats.url),
        store=StoreSettings(dsn=f"chdb://{data_dir / 'store'}"),
        api=ApiSettings(host="127.0.0.1", port=port),
        register=demo_register(),
    )
    datacenter = Datacenter(settings)
    datacenter_task = asyncio.create_task(datacenter.run(stop), name="datacenter")
    ready = asyncio.create_task(datacenter.ready.wait())
    await asyncio.wait({datacenter_task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if datacenter_task.done():
        ready.cancel()
        await datacenter_task  # raises the reason it could not start
        return

    now_ms = int(time.time() * 1000)
    start_ms = (now_ms - int(backfill_hours * 3_600_000)) // STEP_MS * STEP_MS
    agents = [
        Agent(gateway_settings(c, nats_url=nats.url, data_dir=data_dir, start_ms=start_ms))
        for c in COMMUNES
    ]
    agent_tasks = [
        asyncio.create_task(a.run(stop), name=f"agent-{a.settings.gateway.id}") for a in agents
    ]
    base = f"http://127.0.0.1:{port}"
    print(
        "\nBocage demo running — three communes of the Indre (36), simulated gateways.\n"
        f"  dashboard      {base}/\n"
        f"  indicators     {base}/api/v1/indicators/lighting_energy_kwh\n"
        f"  catalog        {base}/api/v1/indicators\n"
        f"  register       {base}/api/v1/sensors\n"
        f"  SensorThings   {base}/sta/v1.1/Things\n"
        f"  DCAT catalogue {base}/catalog.jsonld\n"
        f"  OpenAPI        {base}/schema\n"
        f"  metrics        {base}/metrics\n"
        f"  NATS           {nats.url}\n"
        f"  data           {data_dir}\n"
        "Ctrl-C to stop.\n",
        flush=True,
    )
    if duration is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
        stop.set()
    results = await asyncio.gather(datacenter_task, *agent_tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("demo component failed", error=repr(result))
