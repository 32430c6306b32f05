"""The agent against a real nats-server: every simulated reading reaches the stream once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from edge_helpers import TERRITORY, key, make_settings, read_stream, running, wait_for, write_toml

from bocage.core.natsserver import EmbeddedNats, free_port
from bocage.edge.adapters.simulated import expected_readings
from bocage.edge.agent import Agent


async def test_a_finite_replay_is_delivered_exactly_once(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    settings = make_settings(tmp_path, nats_server.url)
    agent = Agent(settings)
    async with running(agent):
        async with asyncio.timeout(60):
            await agent.drained()
    expected = expected_readings(settings)
    content = await read_stream(nats_server.url)
    assert Counter(map(key, content.readings)) == Counter(map(key, expected))
    assert sorted(content.readings, key=key) == sorted(expected, key=key)
    c = agent.counters
    assert c.produced == c.accepted == c.delivered == len(expected)
    assert c.rejected_total == c.filtered_total == c.dropped_total == 0
    # frame ids are the message ids, unique, and carry the gateway's identity
    assert content.msg_ids == content.frame_ids
    assert len(set(content.frame_ids)) == len(content.frame_ids)
    assert all(f.startswith(f"{TERRITORY}:gw-1:") for f in content.frame_ids)


async def test_nats_down_at_start_then_up(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats", port=free_port())
    settings = make_settings(tmp_path, server.url)
    agent = Agent(settings)
    try:
        async with running(agent):
            await wait_for(agent.sources_done.is_set, 30, "replay produced")
            assert agent.forwarder is not None
            forwarder = agent.forwarder
            await wait_for(lambda: forwarder.backoff.attempt >= 3, 30, "failed connections")
            assert agent.counters.delivered == 0
            assert agent.counters.connects == 0
            server.start()
            async with asyncio.timeout(60):
                await agent.drained()
        content = await read_stream(server.url)
    finally:
        server.stop()
    assert sorted(map(key, content.readings)) == sorted(map(key, expected_readings(settings)))


async def test_restart_resumes_without_reusing_frame_ids(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    first = make_settings(tmp_path, nats_server.url)
    agent = Agent(first)
    async with running(agent):
        async with asyncio.timeout(60):
            await agent.drained()
    # same spool, more samples: the replay resumes after the spool's watermarks
    sensors = [{**s, "limit": 150} for s in msgspec.to_builtins(first)["sensors"]]
    second = make_settings(tmp_path, nats_server.url, sensors=sensors)
    agent = Agent(second)
    async with running(agent):
        async with asyncio.timeout(60):
            await agent.drained()
    content = await read_stream(nats_server.url)
    assert sorted(map(key, content.readings)) == sorted(map(key, expected_readings(second)))
    assert len(set(content.frame_ids)) == len(content.frame_ids)


async def test_gateway_status_is_published(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    settings = make_settings(tmp_path, nats_server.url, status_interval_s=0.2)
    agent = Agent(settings)
    async with running(agent):
        async with asyncio.timeout(60):
            await agent.drained()
        await wait_for(lambda: agent.counters.status_sent >= 1, 10, "a status event")
    content = await read_stream(nats_server.url)
    assert content.statuses
    status = content.statuses[-1]
    assert (status.territory, status.gateway) == (TERRITORY, "gw-1")
    assert status.readings_accepted == len(expected_readings(settings))
    assert status.bytes_sent > 0


@pytest.mark.slow
def test_cli_runs_the_agent_and_logs_without_traceback_when_nats_is_down(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"nats://127.0.0.1:{free_port()}")
    config = write_toml(tmp_path / "edge.toml", settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bocage.cli", "edge", "run", "--config", str(config)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        lines: list[str] = []
        assert proc.stderr is not None
        while sum("NATS unreachable" in line for line in lines) < 3:
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=30)[1]
    text = "".join(lines) + rest
    assert proc.returncode == 0
    assert "Traceback" not in text
    assert "agent stopped" in text
