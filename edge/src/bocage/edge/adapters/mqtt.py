"""The MQTT adapter: ChirpStack v4 uplink events from a broker (aiomqtt over paho).

Subscribes with QoS 1 on a persistent session (``clean_session = false``), so that events
published while the agent restarts wait in the broker. A broken connection is retried with
backoff and jitter; a malformed event is counted and skipped.
"""

from __future__ import annotations

import asyncio

import aiomqtt

from bocage.core.logs import get_logger
from bocage.edge.adapters import Sink
from bocage.edge.adapters.chirpstack import ChirpStackDecoder
from bocage.edge.forwarder import Backoff, wait_or_stop
from bocage.edge.settings import EdgeSettings, SensorSection

log = get_logger("bocage.edge.mqtt")


def split_topic(topic: str) -> tuple[str, str]:
    """(devEui, event type) of ``application/<app>/device/<devEui>/event/<type>``."""
    parts = topic.split("/")
    if len(parts) >= 6 and (parts[0], parts[2], parts[4]) == ("application", "device", "event"):
        return parts[3], parts[5]
    return "", ""


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

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Consume events until ``stop``; reconnect on any broker failure."""
        cfg = self.settings
        while not stop.is_set():
            try:
                async with aiomqtt.Client(
                    cfg.host, cfg.port, username=cfg.username, password=cfg.password,
                    identifier=self.client_id, clean_session=False,
                ) as client:
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

    async def _consume(self, client: aiomqtt.Client, sink: Sink, stop: asyncio.Event) -> None:
        stopped = asyncio.create_task(stop.wait())
        messages = aiter(client.messages)
        try:
            while not stop.is_set():
                nxt = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait({nxt, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    nxt.cancel()
                    # retrieve its outcome: cancelled, or the disconnection racing the cancel
                    await asyncio.gather(nxt, return_exceptions=True)
                    return
                message = nxt.result()
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    sink.reject("bad_json")
                    continue
                eui, event_type = split_topic(message.topic.value)
                if not event_type:
                    sink.reject("bad_topic")
                    continue
                self.decoder.feed(sink, event_type, bytes(payload), topic_eui=eui)
        finally:
            stopped.cancel()
