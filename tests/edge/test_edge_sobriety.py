"""Sobriety: link and power profiles steer sending; bytes, wake-ups and energy are accounted."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from edge_helpers import (
    START_MS,
    TERRITORY,
    make_settings,
    read_stream,
    running,
    simulated_sensors,
    wait_for,
)

from bocage.core.events import Alarm
from bocage.core.natsserver import EmbeddedNats, free_port
from bocage.edge.agent import Agent
from bocage.edge.counters import Counters
from bocage.edge.settings import LinkSection, PowerSection
from bocage.edge.sobriety import RADIO_MODELS, Sobriety


def test_cellular_wakes_up_once_per_burst_and_accounts_energy() -> None:
    counters = Counters()
    sobriety = Sobriety(LinkSection(kind="cellular"), PowerSection(), counters)
    sobriety.sent(1000, 2)
    sobriety.sent(500, 1)  # within the radio's tail: same wake-up
    model = RADIO_MODELS["cellular"]
    assert counters.radio_wakeups == 1
    assert (counters.bytes_sent, counters.messages_sent) == (1500, 3)
    expected = model.wake_mj + 3 * model.message_mj + 1500 * model.byte_uj / 1000
    assert counters.energy_mj == pytest.approx(expected)


def test_lora_duty_cycle_holds_the_radio_back() -> None:
    counters = Counters()
    sobriety = Sobriety(LinkSection(kind="lora", duty_cycle=0.01), PowerSection(), counters)
    assert sobriety.airtime_wait_s() == 0
    sobriety.sent(51)
    sobriety.sent(51)
    assert counters.radio_wakeups == 2  # every LoRa message is a wake-up
    # 51 bytes at 5470 bit/s is ~75 ms of airtime: 1 % duty cycle means ~7.5 s of silence
    assert sobriety.airtime_wait_s() > 5


def test_daily_byte_budget_holds_data_but_never_alarms() -> None:
    sobriety = Sobriety(LinkSection(kind="cellular", daily_budget_bytes=1000), PowerSection(),
                        Counters())
    assert sobriety.may_send(800)
    sobriety.sent(800)
    assert not sobriety.may_send(300)
    assert sobriety.may_send(300, urgent=True)


async def test_low_battery_stretches_batches(tmp_path: Path) -> None:
    battery = tmp_path / "capacity"
    battery.write_text("18\n")
    power = PowerSection(kind="solar", battery_file=str(battery), low_battery_pct=30)
    sobriety = Sobriety(LinkSection(kind="wifi"), power, Counters())
    assert not sobriety.low_power  # unknown until read
    assert await sobriety.read_battery() == 18.0
    assert sobriety.low_power
    assert sobriety.batch_age_s(10) == 40
    assert sobriety.sampling_factor() == 2
    battery.write_text("80")
    await sobriety.read_battery()
    assert sobriety.batch_age_s(10) == 10


async def test_battery_from_a_command(tmp_path: Path) -> None:
    power = PowerSection(kind="solar", battery_command=["echo", "55.5"])
    sobriety = Sobriety(LinkSection(), power, Counters())
    assert await sobriety.read_battery() == 55.5


async def test_metered_link_sends_alarms_and_keeps_data_within_the_budget(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    settings = make_settings(
        tmp_path, nats_server.url, link={"kind": "cellular", "daily_budget_bytes": 3000},
        batch={"max_readings": 200}, sensors=simulated_sensors(1000),  # ~15 kB of frames
    )
    agent = Agent(settings)
    async with running(agent):
        await wait_for(agent.sources_done.is_set, 30, "replay produced")
        agent.alarm(Alarm(territory=TERRITORY, gateway="gw-1", sensor="water-0",
                          kind="device_fault", time_ms=START_MS))
        await wait_for(lambda: agent.counters.alarms_sent == 1, 15, "the alarm")
        await wait_for(lambda: agent.counters.publish_errors["daily_budget"] > 0, 15, "budget")
        assert agent.sobriety.bytes_today <= 3000 + 200  # the alarm may go over the budget
        assert agent.spool is not None
        assert agent.spool.backlog_frames > 0
    content = await read_stream(nats_server.url)
    assert [a.kind for a in content.alarms] == ["device_fault"]
    assert 0 < len(content.readings) < agent.counters.accepted


async def test_prometheus_metrics_on_a_local_port(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    port = free_port()
    settings = make_settings(tmp_path, nats_server.url, metrics_port=port)
    agent = Agent(settings)
    async with running(agent):
        async with asyncio.timeout(60):
            await agent.drained()
        url = f"http://127.0.0.1:{port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    labels = f'gateway="gw-1",territory="{TERRITORY}"'
    delivered = agent.counters.delivered
    assert f"bocage_edge_readings_delivered_total{{{labels}}} {float(delivered)}" in text
    assert f"bocage_edge_readings_produced_total{{{labels}}} {float(delivered)}" in text
    assert "bocage_edge_sent_bytes_total" in text
    assert "bocage_edge_energy_joules_total" in text
    assert "bocage_edge_backlog_frames" in text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert all(name.startswith("bocage_edge_") for name in names if name)
