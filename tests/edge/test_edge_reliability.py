"""Reliability: NATS outages, kill -9, damaged spools, a full disk — nothing lost, nothing silent.

Real nats-server (EmbeddedNats), real `bocage edge run` processes. The NATS outage lasts
``BOCAGE_EDGE_OUTAGE_S`` seconds: 60 in CI (``CI`` set), 10 otherwise; run the full 60 s
locally with ``BOCAGE_EDGE_OUTAGE_S=60 uv run pytest tests/edge -m slow``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest
from conftest import Broker
from edge_helpers import (
    START_MS,
    TERRITORY,
    Uplinks,
    key,
    make_settings,
    read_stream,
    running,
    simulated_sensors,
    wait_for,
    write_toml,
)

from bocage.core.events import Alarm
from bocage.core.natsserver import EmbeddedNats
from bocage.edge.adapters.simulated import expected_readings
from bocage.edge.agent import Agent
from bocage.edge.reading import QUALITY_AGGREGATE
from bocage.edge.spool import list_segments

OUTAGE_S = float(os.environ.get("BOCAGE_EDGE_OUTAGE_S") or (60 if os.environ.get("CI") else 10))


def exactly_once(readings: list[object], expected: list[object]) -> None:
    got = Counter(map(key, readings))  # type: ignore[arg-type]
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} readings delivered more than once"
    want = set(map(key, expected))  # type: ignore[arg-type]
    assert not want - set(got), f"{len(want - set(got))} readings lost"
    assert not set(got) - want, f"{len(set(got) - want)} readings nobody produced"


@pytest.mark.slow
async def test_nats_outage_while_producing_loses_nothing(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    step_ms = 200
    samples = int((OUTAGE_S + 6) * 1000 / step_ms)
    now = int(time.time() * 1000)
    sensors = [
        {**s, "realtime": True, "start_ms": now - now % step_ms}
        for s in simulated_sensors(samples, step_ms=step_ms)
    ]
    settings = make_settings(tmp_path, server.url, sensors=sensors, batch={"max_age_s": 0.5})
    agent = Agent(settings)
    c = agent.counters
    try:
        async with running(agent):
            await wait_for(lambda: c.delivered > 0, 20, "first deliveries")
            server.stop()
            delivered_before = c.delivered
            outage_end = time.monotonic() + OUTAGE_S
            await wait_for(lambda: time.monotonic() > outage_end, OUTAGE_S + 5, "outage")
            assert c.delivered == delivered_before, "nothing can be delivered during the outage"
            assert c.accepted - c.delivered > 0, "the backlog grew during the outage"
            assert c.connects == 1
            server.start()
            async with asyncio.timeout(OUTAGE_S + 60):
                await agent.drained()
        content = await read_stream(server.url)
    finally:
        server.stop()
    expected = expected_readings(settings)
    exactly_once(content.readings, expected)
    assert c.produced == c.accepted == c.delivered == len(expected)
    assert c.connects == 2
    assert c.dropped_total == c.rejected_total == c.filtered_total == 0


async def test_backlog_drains_alarms_first_then_freshest_first_at_a_bounded_rate(
    tmp_path: Path,
) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    rate = 10_000.0
    settings = make_settings(
        tmp_path, server.url, sensors=simulated_sensors(2000),
        batch={"max_readings": 1000}, forward={"drain_rate": rate, "max_inflight": 4},
    )
    agent = Agent(settings)
    try:
        async with running(agent):
            await wait_for(agent.sources_done.is_set, 60, "replay produced")
            agent.alarm(Alarm(territory=TERRITORY, gateway="gw-1", sensor="lighting-0",
                              kind="tamper", time_ms=START_MS, message="door open"))
            assert agent.spool is not None
            backlog = agent.spool.backlog_frames
            server.start()
            started = time.monotonic()
            async with asyncio.timeout(60):
                await agent.drained()
            elapsed = time.monotonic() - started
        content = await read_stream(server.url)
    finally:
        server.stop()
    total = agent.counters.delivered
    assert backlog > 10
    # the alarm jumped the queue; then frames came newest first
    assert content.alarms
    assert content.alarms[0].kind == "tamper"
    assert content.msg_ids[0] not in content.frame_ids, "the alarm is the first message sent"
    sequences = [int(f.rsplit(":", 1)[1]) for f in content.frame_ids]
    assert sequences == sorted(sequences, reverse=True)
    # a bounded rate can only make the drain slower, never faster: allow the bucket's burst
    # (half a second) and one publish window (4 frames of 1000) on top of the rate
    assert elapsed >= (total - rate * 0.5 - 4 * 1000) / rate
    exactly_once(content.readings, expected_readings(settings))


def _run_agent(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bocage.cli", "--log-level", "warning", "edge", "run",
         "--config", str(config), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


@pytest.mark.slow
async def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    settings = make_settings(
        tmp_path, nats_server.url, sensors=simulated_sensors(3000),
        batch={"max_readings": 60, "max_age_s": 0.05},
        # each record is written in two halves 3 ms apart, so kills land mid-append too
        spool={"debug_split_append_s": 0.003, "fsync": "interval", "fsync_interval_s": 0.02},
        forward={"max_inflight": 8},
    )
    config = write_toml(tmp_path / "edge.toml", settings)
    rng = random.Random(int(os.environ.get("BOCAGE_EDGE_KILL_SEED", "20240621")))
    kills = torn = 0
    for _ in range(6):
        proc = _run_agent(config)
        await asyncio.sleep(rng.uniform(0.8, 2.5))  # a random moment: the crash itself
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        log = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode in (-signal.SIGKILL, 0), log
        assert "Traceback" not in log
        torn += log.count("spool recovered with damage")
    assert kills >= 3
    print(f"{kills} kills, {torn} restarts recovered a torn record")  # shown with -s
    final = _run_agent(config, "--exit-when-drained")
    _, err = await asyncio.to_thread(final.communicate, timeout=180)
    assert final.returncode == 0, err.decode()
    assert b"Traceback" not in err
    content = await read_stream(nats_server.url)
    exactly_once(content.readings, expected_readings(settings))
    assert len(set(content.frame_ids)) == len(content.frame_ids)


@pytest.mark.slow
@pytest.mark.mqtt
async def test_mqtt_uplinks_survive_kill_9_exactly_once(
    tmp_path: Path, nats_server: EmbeddedNats, mosquitto: Broker
) -> None:
    """ChirpStack uplinks published at QoS 1 while `bocage edge run` is killed at random
    moments: every reading reaches the stream exactly once."""
    u = Uplinks()
    events = 300
    settings = make_settings(
        tmp_path, nats_server.url, sensors=u.sensors(),
        # acknowledgements wait 0.1 s after the fsync, so kills also land between a message's
        # readings reaching the disk and its PUBACK: the broker redelivers spooled messages
        mqtt={"host": mosquitto.host, "port": mosquitto.port, "debug_ack_delay_s": 0.1},
        batch={"max_readings": 40, "max_age_s": 0.2},
        spool={"fsync": "interval", "fsync_interval_s": 0.05},
    )
    config = write_toml(tmp_path / "edge.toml", settings)
    client_id = f"bocage-{settings.gateway.id}"
    # the gateway's persistent session exists before anything is published (as once the agent
    # has run): the broker keeps QoS 1 messages for it while no agent is connected
    async with aiomqtt.Client(
        mosquitto.host, mosquitto.port, identifier=client_id, clean_session=False
    ) as session:
        await session.subscribe(settings.mqtt.topic, qos=1)

    async def publisher() -> None:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            for i in range(events):
                topic, payload = u.message(i)
                await client.publish(topic, payload, qos=1)
                await asyncio.sleep(0.02)  # a pace, spread over the kills

    publishing = asyncio.create_task(publisher())
    rng = random.Random(int(os.environ.get("BOCAGE_EDGE_KILL_SEED", "20240621")))
    kills = 0
    try:
        while kills < 4 or not publishing.done():
            proc = _run_agent(config)
            await asyncio.sleep(rng.uniform(0.9, 2.2))  # a random moment: the crash itself
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            await asyncio.to_thread(proc.wait, 30)
            log = proc.stderr.read().decode() if proc.stderr else ""
            assert proc.returncode in (-signal.SIGKILL, 0), f"exit {proc.returncode}: {log}"
            assert "Traceback" not in log
            assert kills < 12, "the publisher does not finish"
        await publishing
    finally:
        publishing.cancel()
    expected = u.keys(range(events + 1))
    final = _run_agent(config)
    try:
        # the broker hands over what it kept for the session before anything new: once a
        # sentinel published now is in the stream, the final agent has read every leftover
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.publish(*u.message(events), qos=1)

        async def complete() -> bool:
            content = await read_stream(nats_server.url)
            return set(map(key, content.readings)) >= expected

        await wait_for(complete, 30, "every reading in the stream")
    finally:
        final.send_signal(signal.SIGTERM)  # a clean stop acknowledges whatever is left
        _, err = await asyncio.to_thread(final.communicate, timeout=30)
    assert final.returncode == 0, f"exit {final.returncode}: {err.decode()}"
    assert b"Traceback" not in err
    content = await read_stream(nats_server.url)
    got = Counter(map(key, content.readings))
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} readings delivered more than once"
    assert set(got) == expected
    assert len(set(content.frame_ids)) == len(content.frame_ids)
    print(f"{kills} kills, {len(got)} readings exactly once")  # shown with -s

    # the broker holds nothing more for the gateway: a sentinel arrives first
    received: list[bytes] = []
    async with aiomqtt.Client(
        mosquitto.host, mosquitto.port, identifier=client_id, clean_session=False
    ) as session:
        await session.subscribe(settings.mqtt.topic, qos=1)
        sentinel_topic, sentinel = u.message(events + 1)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.publish(sentinel_topic, sentinel, qos=1)
        async with asyncio.timeout(10):
            async for message in session.messages:
                received.append(bytes(message.payload))  # type: ignore[arg-type]
                if received[-1] == sentinel:
                    break
    assert received == [sentinel], f"{len(received) - 1} messages left unacknowledged"


async def test_restart_after_a_torn_tail_delivers_every_reading(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    unreachable = make_settings(tmp_path, "nats://127.0.0.1:1", sensors=simulated_sensors(400))
    agent = Agent(unreachable)
    async with running(agent):
        await wait_for(agent.sources_done.is_set, 30, "replay produced")
    segments = list_segments(Path(unreachable.spool.dir))
    (_, segment), *_ = [s for s in segments if s[1].stat().st_size]
    size = segment.stat().st_size
    os.truncate(segment, size - 17)  # a power cut in the middle of the last record
    settings = make_settings(tmp_path, nats_server.url, sensors=simulated_sensors(400))
    agent = Agent(settings)
    async with running(agent):
        async with asyncio.timeout(60):
            await agent.drained()
        assert agent.spool is not None
        report = agent.spool.report
    assert report.records_discarded == 1
    assert report.bytes_discarded > 0
    content = await read_stream(nats_server.url)
    # the torn frame's readings were never accepted: the replay produced them again
    exactly_once(content.readings, expected_readings(settings))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("window_s", "policy"), [(900, "compact"), (10, "drop")], ids=["compacts", "drops"]
)
async def test_disk_budget_exhausted_during_a_long_outage(
    tmp_path: Path, nats_server: EmbeddedNats, window_s: int, policy: str
) -> None:
    budget = 256 * 1024
    sensors = simulated_sensors(30_000, step_ms=10_000)  # 3.5 days of 10 s samples, ~1 byte each
    spool = {"budget_bytes": budget, "segment_bytes": 16 * 1024, "compact_window_s": window_s}
    settings = make_settings(
        tmp_path, "nats://127.0.0.1:1", sensors=sensors, spool=spool, batch={"max_readings": 2000},
    )
    agent = Agent(settings)
    async with running(agent):
        await wait_for(agent.sources_done.is_set, 120, "replay produced")
        assert agent.spool is not None
        assert agent.spool.size_bytes <= budget
    c = agent.counters
    if policy == "compact":
        assert c.compacted > 0, "old raw frames were compacted into aggregates"
    else:
        # 10 s samples into 10 s windows: compacting would not halve them, so drop oldest
        assert c.compacted == 0
        assert c.dropped["overflow_raw"] > 0
    # the same gateway, NATS back: drain what the budget kept
    online = make_settings(tmp_path, nats_server.url, sensors=sensors, spool=spool)
    agent2 = Agent(online)
    async with running(agent2):
        async with asyncio.timeout(60):
            await agent2.drained()
    content = await read_stream(nats_server.url)
    raw = [r for r in content.readings if r.quality != QUALITY_AGGREGATE]
    aggregates = [r for r in content.readings if r.quality == QUALITY_AGGREGATE]
    expected = expected_readings(settings)
    # exact accounting: every produced reading is delivered raw, compacted or dropped
    assert c.produced == c.accepted == len(expected)
    assert len(expected) - len(raw) == c.compacted + c.dropped["overflow_raw"]
    assert len(aggregates) == c.compacted_into - c.dropped["overflow_aggregate"]
    assert agent2.counters.delivered == len(raw) + len(aggregates)
    assert set(map(key, raw)) <= set(map(key, expected))
    assert len(set(map(key, raw))) == len(raw)
    # the freshest data survived raw: the last hour of every series
    newest = max(r.time_ms for r in expected)
    recent = {key(r) for r in expected if r.time_ms > newest - 3_600_000}
    assert recent <= set(map(key, raw))
    # aggregates stand at window starts
    assert all(r.time_ms % (window_s * 1000) == 0 for r in aggregates)
