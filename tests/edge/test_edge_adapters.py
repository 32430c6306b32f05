"""Adapters end to end: MQTT (ChirpStack v4 on a real mosquitto), HTTP push, CSV replay."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from conftest import Broker
from edge_helpers import make_settings, read_stream, running, uplink, wait_for

from bocage.core.natsserver import EmbeddedNats
from bocage.edge.adapters.chirpstack import parse_time_ms
from bocage.edge.adapters.http import HttpSource
from bocage.edge.adapters.mqtt import MqttSource, split_topic
from bocage.edge.agent import Agent
from bocage.edge.reading import Reading

LAMP_EUI = "0101010101010101"
WATER_EUI = "0202020202020202"


def test_chirpstack_times_with_nanoseconds() -> None:
    assert parse_time_ms("2024-06-21T10:00:00.123456789Z") == 1_718_964_000_123
    assert parse_time_ms("2024-06-21T12:00:00+02:00") == 1_718_964_000_000
    assert parse_time_ms("2024-06-21T10:00:00") is None  # no zone: refused, not guessed
    assert parse_time_ms("yesterday") is None
    assert split_topic(f"application/17c8/device/{LAMP_EUI}/event/up") == (LAMP_EUI, "up")


@pytest.mark.mqtt
async def test_mqtt_chirpstack_uplinks_and_malformed_payloads(
    tmp_path: Path, nats_server: EmbeddedNats, mosquitto: Broker
) -> None:
    sensors = [
        {"id": "lamp-1", "kind": "lighting_cabinet", "adapter": "mqtt",
         "options": {"dev_eui": LAMP_EUI}},
        {"id": "water-1", "kind": "water_meter", "adapter": "mqtt",
         "options": {"dev_eui": WATER_EUI, "fields": {"debit": "flow"}, "ignore": ["battery"]}},
    ]
    settings = make_settings(
        tmp_path, nats_server.url, sensors=sensors,
        mqtt={"host": mosquitto.host, "port": mosquitto.port},
    )
    agent = Agent(settings)
    source = next(s for s in agent.sources if isinstance(s, MqttSource))
    topic = "application/17c82e96/device/{}/event/{}"
    good = [
        uplink(LAMP_EUI, "lamp-1", "2024-06-21T21:00:00.5Z",
               {"power": 1520.5, "energy": 1200, "on": True}),
        uplink(WATER_EUI, "water-1", "2024-06-21T21:00:00Z", {"debit": 42.0, "battery": 3.6}),
    ]
    ghost = uplink("ffffffffffffffff", "ghost", "2024-06-21T21:00:00Z", {"power": 1.0})
    up = topic.format(LAMP_EUI, "up")

    def lamp(minute: int, obj: dict[str, Any]) -> bytes:
        return json.dumps(uplink(LAMP_EUI, "lamp-1", f"2024-06-21T21:0{minute}:00Z", obj)).encode()

    bad: list[tuple[str, bytes]] = [
        (up, b"{not json"),
        (up, json.dumps({"deviceInfo": "wrong type"}).encode()),
        (topic.format("ffffffffffffffff", "up"), json.dumps(ghost).encode()),
        (up, lamp(1, {"power": "high"})),  # wrong type
        (up, lamp(2, {"power": 9e9})),  # absurd value
        (up, lamp(3, {"colour": 3})),  # a field the kind does not measure
    ]
    async with running(agent):
        await wait_for(source.subscribed.is_set, 15, "MQTT subscription")
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            for t, payload in bad:
                await client.publish(t, payload, qos=1)
            for event in good:
                await client.publish(
                    topic.format(event["deviceInfo"]["devEui"], "up"), json.dumps(event), qos=1
                )
            tamper = uplink(LAMP_EUI, "lamp-1", "2024-06-21T21:04:00Z", {"tamper": True})
            await client.publish(topic.format(LAMP_EUI, "up"), json.dumps(tamper), qos=1)
        await wait_for(lambda: agent.counters.produced >= 10, 15, "all payloads counted")
        agent.flush()
        await wait_for(
            lambda: agent.counters.delivered == 4 and agent.counters.alarms_sent == 1, 15,
            "delivery",
        )
    assert dict(agent.counters.rejected) == {
        "bad_json": 1, "bad_event": 1, "unknown_device": 1, "bad_type": 1,
        "out_of_range": 1, "unknown_metric": 1,
    }
    content = await read_stream(nats_server.url)
    t = 1_719_003_600_000  # 2024-06-21T21:00:00Z
    assert sorted(content.readings, key=lambda r: (r.sensor, r.metric)) == [
        Reading("lamp-1", "energy", t + 500, 1200),
        Reading("lamp-1", "on", t + 500, 1),
        Reading("lamp-1", "power", t + 500, 1520.5),
        Reading("water-1", "flow", t, 42.0),
    ]
    assert [(a.sensor, a.kind) for a in content.alarms] == [("lamp-1", "tamper")]


async def _post(url: str, body: bytes) -> tuple[int, Any]:
    def call() -> tuple[int, Any]:
        request = urllib.request.Request(url, body, {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(call)


async def test_http_push(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    sensors = [
        {"id": "aq-1", "kind": "air_quality", "adapter": "http"},
        {"id": "lamp-1", "kind": "lighting_cabinet", "adapter": "http",
         "options": {"dev_eui": LAMP_EUI}},
    ]
    settings = make_settings(tmp_path, nats_server.url, sensors=sensors, http={"port": 0})
    agent = Agent(settings)
    source = next(s for s in agent.sources if isinstance(s, HttpSource))
    async with running(agent):
        await wait_for(source.listening.is_set, 10, "HTTP endpoint")
        base = f"http://127.0.0.1:{source.port}"
        readings = [
            {"sensor": "aq-1", "metric": "pm10", "time_ms": 1_718_964_000_000, "value": 21.5},
            {"sensor": "aq-1", "metric": "no2", "time": "2024-06-21T10:00:00Z", "value": 30},
            {"sensor": "aq-1", "metric": "pm25", "time": "whenever", "value": 3},
        ]
        status, answer = await _post(f"{base}/v1/readings", json.dumps(readings).encode())
        assert (status, answer) == (202, {"received": 2, "rejected": 1})
        assert (await _post(f"{base}/v1/readings", b"[{"))[0] == 400
        assert (await _post(f"{base}/v1/readings", b'[{"sensor": 1}]'))[0] == 400
        event = uplink(LAMP_EUI, "lamp-1", "2024-06-21T21:00:00Z", {"power": 800.0})
        status, answer = await _post(f"{base}/chirpstack?event=up", json.dumps(event).encode())
        assert (status, answer) == (202, {"received": 1})
        agent.flush()
        await wait_for(lambda: agent.counters.delivered == 3, 15, "delivery")
    assert dict(agent.counters.rejected) == {"bad_time": 1, "bad_json": 1, "bad_reading": 1}
    content = await read_stream(nats_server.url)
    assert sorted((r.sensor, r.metric, r.value) for r in content.readings) == [
        ("aq-1", "no2", 30), ("aq-1", "pm10", 21.5), ("lamp-1", "power", 800.0),
    ]


async def test_csv_replay(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    rows = ["time,sensor,metric,value,quality"]
    expected = []
    for i in range(3000):
        t = 1_718_964_000_000 + i * 60_000
        rows.append(f"{t},bin-1,fill,{i % 100}.5,0")
        expected.append(("bin-1", "fill", t, i % 100 + 0.5))
    rows.insert(10, "2024-06-21T10:00:00Z,bin-1,fill,not-a-number,0")
    rows.insert(20, "2024-06-21T10:00:00Z,bin-9,fill,1,0")
    rows.append("2024-06-23T10:00:00+02:00,bin-1,temperature,12.5,2")
    expected.append(("bin-1", "temperature", 1_719_129_600_000, 12.5))
    path = tmp_path / "history.csv"
    path.write_text("\n".join(rows) + "\n")
    sensors = [{"id": "bin-1", "kind": "waste_bin", "adapter": "csv"}]
    settings = make_settings(
        tmp_path, nats_server.url, sensors=sensors, csv={"path": str(path), "progress": False}
    )
    agent = Agent(settings)
    async with running(agent):
        async with asyncio.timeout(60):
            await agent.drained()
    assert dict(agent.counters.rejected) == {"bad_csv_row": 1, "unknown_sensor": 1}
    content = await read_stream(nats_server.url)
    assert sorted((r.sensor, r.metric, r.time_ms, r.value) for r in content.readings) == sorted(
        expected
    )
    assert {r.quality for r in content.readings if r.metric == "temperature"} == {2}
