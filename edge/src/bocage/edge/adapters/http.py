"""The HTTP push adapter: a small local endpoint (asyncio + h11, no web framework).

- ``POST /v1/readings``: a JSON array of ``{"sensor", "metric", "time_ms" | "time",
  "value", "quality"?}``; answers 202 with ``{"received": n}``.
- ``POST /chirpstack?event=up``: a ChirpStack v4 HTTP integration event (same JSON as MQTT).
- ``GET /health``: 200.

A malformed body is answered 400 and counted (``bad_json``, ``bad_reading``); the endpoint
keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec

from bocage.core.logs import get_logger
from bocage.edge.adapters import Sink
from bocage.edge.adapters.chirpstack import ChirpStackDecoder, parse_time_ms
from bocage.edge.reading import Reading
from bocage.edge.settings import EdgeSettings, SensorSection

log = get_logger("bocage.edge.http")


class PushedReading(msgspec.Struct, forbid_unknown_fields=False):
    """One reading in a ``/v1/readings`` body."""

    sensor: str
    metric: str
    value: float | int | bool
    time_ms: int | None = None
    time: str | None = None
    quality: int = 0


_readings = msgspec.json.Decoder(list[PushedReading])


class HttpSource:
    """Readings POSTed to the gateway."""

    name = "http"

    def __init__(self, settings: EdgeSettings, sensors: list[SensorSection]) -> None:
        self.settings = settings.http
        self.decoder = ChirpStackDecoder(settings, sensors)
        self.port: int | None = None
        """The bound port once listening (settings may ask for 0 = any)."""
        self.listening = asyncio.Event()

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Serve until ``stop``."""
        server = await asyncio.start_server(
            lambda r, w: self._connection(r, w, sink), self.settings.host, self.settings.port
        )
        self.port = server.sockets[0].getsockname()[1]
        self.listening.set()
        log.info("HTTP push endpoint", url=f"http://{self.settings.host}:{self.port}/v1/readings")
        async with server:
            await stop.wait()

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sink: Sink
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                status, answer = self._handle(request, body, sink)
                data = json.dumps(answer).encode()
                headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                writer.write(conn.send(h11.Data(data=data)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError, ValueError) as exc:
            log.debug("HTTP connection dropped", error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None, b""
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.settings.max_body_bytes:
                    raise ValueError("body too large")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    def _handle(self, request: h11.Request, body: bytes, sink: Sink) -> tuple[int, Any]:
        url = urlsplit(request.target.decode("latin-1"))
        method = request.method.decode()
        if method == "GET" and url.path == "/health":
            return 200, {"status": "ok"}
        if method != "POST":
            return 405, {"error": "method not allowed"}
        if url.path == "/chirpstack":
            event = parse_qs(url.query).get("event", ["up"])[0]
            pushed = self.decoder.feed(sink, event, body)
            return 202, {"received": pushed}
        if url.path == "/v1/readings":
            return self._readings(body, sink)
        return 404, {"error": "not found"}

    def _readings(self, body: bytes, sink: Sink) -> tuple[int, Any]:
        try:
            items = _readings.decode(body)
        except msgspec.ValidationError as exc:
            sink.reject("bad_reading")
            return 400, {"error": str(exc)}
        except msgspec.DecodeError as exc:
            sink.reject("bad_json")
            return 400, {"error": str(exc)}
        rejected = 0
        for item in items:
            time_ms = item.time_ms if item.time_ms is not None else parse_time_ms(item.time)
            if time_ms is None:
                sink.reject("bad_time")
                rejected += 1
                continue
            value = int(item.value) if isinstance(item.value, bool) else item.value
            sink.push(Reading(item.sensor, item.metric, time_ms, value, item.quality))
        return 202, {"received": len(items) - rejected, "rejected": rejected}
