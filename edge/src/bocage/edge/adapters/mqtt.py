"""The MQTT adapter: ChirpStack v4 uplink events from a broker (aiomqtt over paho).

At least once into the spool: the adapter subscribes with QoS 1 on a persistent session
(``clean_session = false``, a fixed client id per gateway), so events published while the agent
is down or restarting wait in the broker, and it acknowledges each message (PUBACK) only once
the readings it carried are durable in the spool (appended, and the spool's fsync policy
applied to their frame). Acknowledgements go in the order messages arrived (MQTT 3.1.1,
4.6.0-2). A kill -9 therefore leaves every message whose readings are not on disk unacknowledged,
and the broker delivers it again at the next connection, with the DUP flag set.

Duplicates: a message the broker redelivers (DUP) may have been spooled already, its
acknowledgement lost in the crash. Its readings are pushed as *redelivered*: the agent drops
those whose series already holds a reading at or after their time (the spool's persisted
watermark, or the open batch). Retained messages, which the broker sends again at every
subscription, are treated the same way. See docs/edge.md for the exact guarantee and its limits.

Messages wait for their batch (``batch.max_age_s``); when ``mqtt.max_unacked`` of them are
waiting, the open batch is spooled early so the broker's in-flight window never fills. A clean
stop spools the open batch and acknowledges everything before disconnecting. A broken
connection is retried with backoff and jitter; a malformed event is counted, skipped and
acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from bocage.core.logs import get_logger
from bocage.edge.adapters import Sink
from bocage.edge.adapters.chirpstack import ChirpStackDecoder
from bocage.edge.forwarder import Backoff, wait_or_stop
from bocage.edge.settings import EdgeSettings, SensorSection

log = get_logger("bocage.edge.mqtt")

_INVALID_TOPIC = "invalid"
"""Stands for a topic paho cannot decode (not UTF-8): counted ``bad_topic`` and acknowledged."""
_STOP_ACK_TIMEOUT_S = 3.0


def split_topic(topic: str) -> tuple[str, str]:
    """(devEui, event type) of ``application/<app>/device/<devEui>/event/<type>``."""
    parts = topic.split("/")
    if len(parts) >= 6 and (parts[0], parts[2], parts[4]) == ("application", "device", "event"):
        return parts[3], parts[5]
    return "", ""


class Delivery(aiomqtt.Message):
    """An aiomqtt message that keeps the DUP flag of the PUBLISH packet."""

    def __init__(  # noqa: PLR0917 - mirrors aiomqtt.Message
        self, topic: str, payload: bytes, qos: int, retain: bool, mid: int,
        properties: Any, *, dup: bool,
    ) -> None:
        super().__init__(topic, payload, qos, retain, mid, properties)
        self.dup = dup

    @property
    def redelivered(self) -> bool:
        """The broker may have handed this message over before (DUP, or a retained copy)."""
        return self.dup or self.retain


class AckingClient(aiomqtt.Client):
    """aiomqtt's client with manual acknowledgements (paho's ``manual_ack``).

    aiomqtt 2.x neither exposes ``manual_ack`` nor the DUP flag; both are reached through its
    paho client and its message callback.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client.manual_ack_set(True)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        properties = getattr(message, "properties", None)
        try:
            delivery = Delivery(
                message.topic, bytes(message.payload), message.qos, message.retain, message.mid,
                properties, dup=bool(message.dup),
            )
        except (UnicodeDecodeError, ValueError, TypeError):
            # a topic that is not UTF-8 or not a valid topic: counted, acknowledged, never a
            # disconnection (which would have the broker redeliver it forever)
            delivery = Delivery(
                _INVALID_TOPIC, bytes(message.payload), message.qos, message.retain, message.mid,
                properties, dup=bool(message.dup),
            )
        self._queue.put_nowait(delivery)

    def ack(self, message: Delivery) -> None:
        """Send the PUBACK of a QoS 1 message (QoS 0 needs none)."""
        if message.qos == 1:
            # a lost connection returns an error code: the broker redelivers the message
            self._client.ack(message.mid, 1)


class MqttSource:
    """ChirpStack events of the gateway's MQTT sensors."""

    name = "mqtt"

    def __init__(self, settings: EdgeSettings, sensors: list[SensorSection]) -> None:
        self.settings = settings.mqtt
        self.client_id = settings.mqtt.client_id or f"bocage-{settings.gateway.id}"
        self.decoder = ChirpStackDecoder(settings, sensors)
        self.backoff = Backoff(settings.nats.backoff_initial_s, settings.nats.backoff_max_s)
        self.subscribed = asyncio.Event()
        """Set once subscribed (tests publish after it)."""
        self.unacked: deque[tuple[int, Delivery]] = deque()
        """(sink checkpoint, message) read and not yet acknowledged, oldest first."""
        self.acked = 0
        """QoS 1 messages acknowledged to the broker."""
        self.redelivered = 0
        """Messages the broker marked DUP or retained."""
        self.client: AckingClient | None = None
        """The client of the current connection."""

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Consume events until ``stop``; reconnect on any broker failure."""
        cfg = self.settings
        while not stop.is_set():
            try:
                async with AckingClient(
                    cfg.host, cfg.port, username=cfg.username, password=cfg.password,
                    identifier=self.client_id, clean_session=False,
                ) as client:
                    self.client = client
                    await client.subscribe(cfg.topic, qos=cfg.qos)
                    self.backoff.reset()
                    self.subscribed.set()
                    log.info("subscribed to MQTT", host=cfg.host, port=cfg.port, topic=cfg.topic)
                    await self._consume(client, sink, stop)
            except aiomqtt.MqttError as exc:
                self.subscribed.clear()
                delay = self.backoff.next()
                log.warning(
                    "MQTT broker unreachable, will retry", host=cfg.host, port=cfg.port,
                    error=str(exc), retry_in_s=round(delay, 2),
                )
                await wait_or_stop(stop, delay)

    async def _consume(self, client: AckingClient, sink: Sink, stop: asyncio.Event) -> None:
        # acknowledgements of an earlier connection are void: the broker redelivers those
        # messages, and their readings (spooled or in the batch) make the copies redundant
        self.unacked.clear()
        more = asyncio.Event()
        acker = asyncio.create_task(self._acknowledge(client, sink, more), name="mqtt-acks")
        stopped = asyncio.create_task(stop.wait())
        messages = aiter(client.messages)
        try:
            while not stop.is_set():
                nxt = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait(
                    {nxt, stopped, acker}, return_when=asyncio.FIRST_COMPLETED
                )
                if nxt not in done:
                    nxt.cancel()
                    # retrieve its outcome: cancelled, or the disconnection racing the cancel
                    await asyncio.gather(nxt, return_exceptions=True)
                    if acker.done():
                        acker.result()  # an acknowledgement failed: raise it
                    break
                message = nxt.result()
                if not isinstance(message, Delivery):  # pragma: no cover - AckingClient's
                    raise TypeError(f"unexpected MQTT message type {type(message).__name__}")
                self._feed(message, sink)
                if message.qos == 0:
                    continue  # nothing to acknowledge: at most once
                if message.dup and any(m.mid == message.mid for _, m in self.unacked):
                    # a broker retrying within the session (MQTT 3.1 style): the original's
                    # acknowledgement answers both; a second one could acknowledge the next
                    # message the broker sends under the same packet id
                    continue
                self.unacked.append((sink.checkpoint(), message))
                more.set()
                if len(self.unacked) >= self.settings.max_unacked:
                    sink.commit()  # the batch closes early: its messages can be acknowledged
            if stop.is_set():
                acker.cancel()
                await asyncio.gather(acker, return_exceptions=True)
                await self._acknowledge_all(client, sink)
        finally:
            stopped.cancel()
            acker.cancel()
            await asyncio.gather(acker, return_exceptions=True)

    def _feed(self, message: Delivery, sink: Sink) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            sink.reject("bad_json")
            return
        eui, event_type = split_topic(message.topic.value)
        if not event_type:
            sink.reject("bad_topic")
            return
        redelivered = message.redelivered
        if redelivered:
            self.redelivered += 1
        self.decoder.feed(
            sink, event_type, bytes(payload), topic_eui=eui, redelivered=redelivered
        )

    async def _acknowledge(self, client: AckingClient, sink: Sink, more: asyncio.Event) -> None:
        """Acknowledge messages in arrival order, each once its readings are durable."""
        unacked = self.unacked
        delay = self.settings.debug_ack_delay_s
        while True:
            while not unacked:
                more.clear()
                await more.wait()
            settled = await sink.settled(unacked[0][0])
            if delay:
                await asyncio.sleep(delay)
            self._ack_settled(client, settled)

    def _ack_settled(self, client: AckingClient, settled: int) -> None:
        unacked = self.unacked
        while unacked and unacked[0][0] <= settled:
            client.ack(unacked.popleft()[1])
            self.acked += 1

    async def _acknowledge_all(self, client: AckingClient, sink: Sink) -> None:
        """On a clean stop: spool the open batch, then acknowledge everything read."""
        sink.commit()
        if self.unacked:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_ACK_TIMEOUT_S):
                    self._ack_settled(client, await sink.settled(self.unacked[-1][0]))
        if self.unacked:
            log.warning("MQTT messages left unacknowledged at stop", count=len(self.unacked))
