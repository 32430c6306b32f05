"""Helpers of the edge tests: settings for a simulated gateway, reading back the stream."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats

import bocage_native
from bocage.core import subjects
from bocage.core.events import Alarm, GatewayStatus, decode_alarm, decode_status
from bocage.core.settings import dumps
from bocage.edge.agent import Agent
from bocage.edge.reading import Reading
from bocage.edge.settings import EdgeSettings

TERRITORY = "29042"
START_MS = 1_718_928_000_000  # 2024-06-21T00:00Z: a night, a day and a dusk in a replay
KINDS = ("lighting_cabinet", "building_meter", "water_meter", "air_quality", "waste_bin", "counter")


def simulated_sensors(
    limit: int, *, step_ms: int = 60_000, kinds: tuple[str, ...] = KINDS, per_kind: int = 1
) -> list[dict[str, Any]]:
    """Sensor sections for a finite replay: ``limit`` samples per sensor."""
    return [
        {
            "id": f"{kind.split('_')[0]}-{i}",
            "kind": kind,
            "adapter": "simulator",
            "start_ms": START_MS,
            "step_ms": step_ms,
            "limit": limit,
            "realtime": False,
            "seed": 7,
            "profile": "leak" if kind == "water_meter" else "default",
        }
        for kind in kinds
        for i in range(per_kind)
    ]


def make_settings(
    tmp_path: Path, url: str, *, sensors: list[dict[str, Any]] | None = None, **sections: Any
) -> EdgeSettings:
    """EdgeSettings for a test gateway: fast batching and backoff, spool under ``tmp_path``."""
    data: dict[str, Any] = {
        "gateway": {"id": "gw-1", "territory": TERRITORY, "latitude": 48.39, "longitude": -4.49},
        "nats": {"url": url, "backoff_initial_s": 0.05, "backoff_max_s": 0.5,
                 "connect_timeout_s": 2, "publish_timeout_s": 5},
        "spool": {"dir": str(tmp_path / "spool"), "fsync": "never"},
        "batch": {"max_readings": 500, "max_age_s": 0.2},
        "forward": {"drain_rate": 0, "reconnect_jitter_s": 0.1},
        "sensors": sensors if sensors is not None else simulated_sensors(100),
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return msgspec.convert(data, EdgeSettings)


def write_toml(path: Path, settings: EdgeSettings) -> Path:
    """Write settings as an edge.toml (what `bocage edge run --config` reads)."""
    path.write_text(dumps(settings))
    return path


@dataclass
class StreamContent:
    """What a gateway left in the BOCAGE stream."""

    readings: list[Reading] = field(default_factory=list)
    frame_ids: list[str] = field(default_factory=list)
    alarms: list[Alarm] = field(default_factory=list)
    statuses: list[GatewayStatus] = field(default_factory=list)
    msg_ids: list[str] = field(default_factory=list)


async def read_stream(url: str) -> StreamContent:
    """Every message of the BOCAGE stream, decoded (frames into readings)."""
    out = StreamContent()
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(subjects.STREAM)).state.messages
        sub = await js.pull_subscribe("bocage.>", stream=subjects.STREAM)
        seen = 0
        while seen < total:
            msgs = await sub.fetch(min(256, total - seen), timeout=5)
            for msg in msgs:
                seen += 1
                out.msg_ids.append((msg.headers or {}).get(subjects.MSG_ID_HEADER, ""))
                kind = msg.subject.rsplit(".", 1)[-1]
                if kind == "frames":
                    frame = bocage_native.decode_frame(msg.data)
                    out.frame_ids.append(frame.frame_id)
                    for series in frame.series:
                        for t, v, q in zip(
                            series.timestamps.tolist(), series.values.tolist(),
                            series.quality.tolist(), strict=True,
                        ):
                            out.readings.append(Reading(series.sensor, series.metric, t, v, q))
                elif kind == "alarms":
                    out.alarms.append(decode_alarm(msg.data))
                elif kind == "status":
                    out.statuses.append(decode_status(msg.data))
                await msg.ack()
        await sub.unsubscribe()
    finally:
        await nc.close()
    return out


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], seconds: float = 30.0, what: str = ""
) -> None:
    """Poll ``condition`` every 50 ms until true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what or condition}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(agent: Agent) -> Any:
    """Run an agent in the background for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await wait_for(lambda: agent.started.is_set() or task.done(), 10, "agent start")
        if task.done():
            task.result()
        yield agent
    finally:
        stop.set()
        await task


def key(reading: Reading) -> tuple[str, str, int]:
    """A reading's identity (series and time)."""
    return (reading.sensor, reading.metric, reading.time_ms)


CHIRPSTACK_TOPIC = "application/17c82e96/device/{}/event/{}"


def uplink(eui: str, name: str, time: str, obj: dict[str, Any] | None) -> dict[str, Any]:
    """A ChirpStack v4 ``up`` event as its MQTT integration publishes it."""
    event: dict[str, Any] = {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": time,
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "Bocage",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "eclairage", "deviceProfileName": "armoire",
            "deviceName": name, "devEui": eui, "tags": {},
        },
        "devAddr": "00189440", "adr": True, "dr": 5, "fCnt": 10, "fPort": 1,
        "confirmed": False, "data": "qg==",
        "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -57, "snr": 10.5}],
        "txInfo": {"frequency": 868100000},
    }
    if obj is not None:
        event["object"] = obj
    return event


def iso_ms(time_ms: int) -> str:
    """RFC 3339 (UTC, milliseconds) of an epoch-ms time, as ChirpStack writes ``time``."""
    moment = dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


@dataclass(frozen=True)
class Uplinks:
    """A numbered sequence of ChirpStack uplinks of two MQTT sensors, one minute apart.

    Even events come from ``lamp-1`` (power, energy, on), odd ones from ``water-1`` (flow).
    """

    lamp_eui: str = "0101010101010101"
    water_eui: str = "0202020202020202"
    start_ms: int = START_MS

    def sensors(self) -> list[dict[str, Any]]:
        """Sensor sections of the two devices."""
        return [
            {"id": "lamp-1", "kind": "lighting_cabinet", "adapter": "mqtt",
             "options": {"dev_eui": self.lamp_eui}},
            {"id": "water-1", "kind": "water_meter", "adapter": "mqtt",
             "options": {"dev_eui": self.water_eui}},
        ]

    def time_ms(self, i: int) -> int:
        return self.start_ms + i * 60_000

    def message(self, i: int) -> tuple[str, bytes]:
        """(topic, payload) of event ``i``."""
        t = iso_ms(self.time_ms(i))
        if i % 2 == 0:
            obj: dict[str, Any] = {"power": 100.0 + i % 50, "energy": 1000 + i, "on": i % 4 == 0}
            event = uplink(self.lamp_eui, "lamp-1", t, obj)
            return CHIRPSTACK_TOPIC.format(self.lamp_eui, "up"), json.dumps(event).encode()
        event = uplink(self.water_eui, "water-1", t, {"flow": 20.0 + i % 7})
        return CHIRPSTACK_TOPIC.format(self.water_eui, "up"), json.dumps(event).encode()

    def keys(self, events: range) -> set[tuple[str, str, int]]:
        """Identities of the readings of ``events``."""
        out: set[tuple[str, str, int]] = set()
        for i in events:
            t = self.time_ms(i)
            metrics = ("power", "energy", "on") if i % 2 == 0 else ("flow",)
            sensor = "lamp-1" if i % 2 == 0 else "water-1"
            out.update((sensor, m, t) for m in metrics)
        return out
