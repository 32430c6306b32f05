"""MQTT at least once into the spool, on a real mosquitto: acknowledgements wait for the spool,
redeliveries after a restart do not duplicate readings."""

from __future__ import annotations

import socket
from pathlib import Path

import aiomqtt
import pytest
from conftest import Broker
from edge_helpers import Uplinks, key, make_settings, read_stream, running, wait_for

from bocage.core.natsserver import EmbeddedNats
from bocage.edge.adapters.mqtt import AckingClient, MqttSource
from bocage.edge.agent import Agent

pytestmark = pytest.mark.mqtt


def mqtt_source(agent: Agent) -> MqttSource:
    return next(s for s in agent.sources if isinstance(s, MqttSource))


async def publish(broker: Broker, uplinks: Uplinks, events: range, *, retain: bool = False) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for i in events:
            topic, payload = uplinks.message(i)
            await client.publish(topic, payload, qos=1, retain=retain)


async def test_messages_are_acknowledged_once_their_readings_are_durable(
    tmp_path: Path, nats_server: EmbeddedNats, mosquitto: Broker
) -> None:
    u = Uplinks()
    settings = make_settings(
        tmp_path, nats_server.url, sensors=u.sensors(),
        mqtt={"host": mosquitto.host, "port": mosquitto.port, "max_unacked": 4},
        # batches never close by age and the spool fsyncs only when told to or on a roll
        batch={"max_readings": 1000, "max_age_s": 3600},
        spool={"fsync": "interval", "fsync_interval_s": 3600},
    )
    agent = Agent(settings)
    source = mqtt_source(agent)
    c = agent.counters
    async with running(agent):
        await wait_for(source.subscribed.is_set, 15, "MQTT subscription")
        await publish(mosquitto, u, range(3))
        await wait_for(lambda: len(source.unacked) == 3, 15, "three messages read")
        # read, in the open batch, not on disk: nothing acknowledged
        assert source.acked == 0
        assert (c.accepted, c.buffered) == (0, 7)

        await publish(mosquitto, u, range(3, 4))
        # the fourth unacknowledged message closes the batch early; once fsynced, all go
        await wait_for(lambda: source.acked == 4, 15, "acknowledgements after the commit")
        assert (c.accepted, c.buffered) == (8, 0)
        assert not source.unacked

        # appended to the spool but not yet fsynced: still not acknowledged
        agent.batcher.max_readings = 3
        await publish(mosquitto, u, range(4, 5))
        await wait_for(lambda: c.accepted == 11, 15, "a frame appended by size")
        assert agent.spool is not None
        assert agent.spool.durable_slots < agent.spool._next_slot
        assert source.acked == 4
        assert len(source.unacked) == 1
        agent.spool.sync()  # the fsync interval elapses
        await wait_for(lambda: source.acked == 5, 15, "acknowledged after the fsync")
        await wait_for(lambda: c.delivered == 11, 15, "delivery")
    content = await read_stream(nats_server.url)
    assert set(map(key, content.readings)) == u.keys(range(5))
    assert len(content.readings) == 11


async def test_redelivered_messages_after_a_restart_are_not_duplicated(
    tmp_path: Path, nats_server: EmbeddedNats, mosquitto: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = Uplinks()
    settings = make_settings(
        tmp_path, nats_server.url, sensors=u.sensors(),
        mqtt={"host": mosquitto.host, "port": mosquitto.port},
        batch={"max_age_s": 0.1}, spool={"fsync": "always"},
    )
    # a retained event: the broker sends it again at every subscription
    await publish(mosquitto, u, range(1), retain=True)
    # first run: every PUBACK is lost, as when the agent dies right after the spool's fsync
    monkeypatch.setattr(AckingClient, "ack", lambda self, message: None)
    first = Agent(settings)
    async with running(first):
        await wait_for(mqtt_source(first).subscribed.is_set, 15, "MQTT subscription")
        await publish(mosquitto, u, range(1, 10))
        await wait_for(lambda: first.counters.delivered == len(u.keys(range(10))), 15, "delivery")
    assert mqtt_source(first).redelivered == 1  # the retained copy
    monkeypatch.undo()

    # second run on the same spool and session: the broker redelivers events 1-9 (DUP) and
    # the retained event 0; their readings are all in the spool already
    second = Agent(settings)
    source = mqtt_source(second)
    c = second.counters
    async with running(second):
        await wait_for(source.subscribed.is_set, 15, "MQTT subscription")
        await wait_for(
            lambda: c.filtered["redelivered"] >= len(u.keys(range(10))), 15, "redeliveries"
        )
        await publish(mosquitto, u, range(10, 14))
        await wait_for(lambda: c.delivered == len(u.keys(range(10, 14))), 15, "new events")
        await wait_for(lambda: not source.unacked, 15, "acknowledgements")
    assert source.redelivered >= 10
    assert c.accepted == len(u.keys(range(10, 14)))
    content = await read_stream(nats_server.url)
    keys = list(map(key, content.readings))
    assert len(keys) == len(set(keys)), "a reading was delivered twice"
    assert set(keys) == u.keys(range(14))

    # everything was acknowledged: a third session finds nothing left in the broker
    third = Agent(settings)
    async with running(third):
        await wait_for(mqtt_source(third).subscribed.is_set, 15, "MQTT subscription")
        await publish(mosquitto, u, range(14, 15))  # a sentinel, after any leftover
        await wait_for(lambda: third.counters.accepted == 3, 15, "the sentinel's readings")
    # the retained event (dropped again) and the sentinel, nothing else
    assert third.counters.produced == 3 + 3
    assert third.counters.filtered["redelivered"] == 3
    assert mqtt_source(third).redelivered == 1


async def test_a_lost_connection_redelivers_what_the_batch_already_holds(
    tmp_path: Path, nats_server: EmbeddedNats, mosquitto: Broker
) -> None:
    u = Uplinks()
    settings = make_settings(
        tmp_path, nats_server.url, sensors=u.sensors(),
        mqtt={"host": mosquitto.host, "port": mosquitto.port},
        batch={"max_readings": 1000, "max_age_s": 3600},
        nats={"backoff_initial_s": 0.05, "backoff_max_s": 0.1},
    )
    agent = Agent(settings)
    source = mqtt_source(agent)
    c = agent.counters
    async with running(agent):
        await wait_for(source.subscribed.is_set, 15, "MQTT subscription")
        await publish(mosquitto, u, range(3))
        await wait_for(lambda: len(source.unacked) == 3, 15, "three messages read")
        first = source.client
        assert first is not None
        sock = first._client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # the link drops; the readings stay in the open batch
        # the broker redelivers the three messages (DUP) on the next connection
        await wait_for(lambda: source.redelivered == 3, 15, "redelivery")
        assert source.client is not first
        assert c.filtered["redelivered"] == 7
        assert c.buffered == 7
        assert source.acked == 0
        agent.commit()
        await wait_for(lambda: source.acked == 3, 15, "acknowledgements")
        await wait_for(lambda: c.delivered == 7, 15, "delivery")
    content = await read_stream(nats_server.url)
    assert sorted(map(key, content.readings)) == sorted(u.keys(range(3)))
