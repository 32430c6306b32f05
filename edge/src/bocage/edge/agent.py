"""The gateway agent: adapters → filters → batcher → native encode → spool → forwarder.

Use::

    agent = Agent(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await agent.drained(timeout=60)   # a finite replay produced and delivered
    stop.set(); await task

Everything runs on one event loop; the hot path (filter, batch, append) is synchronous and
cheap, so adapters feed it directly and yield to the loop every few thousand readings.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server

from bocage.core.events import Alarm, GatewayStatus
from bocage.core.events import encode as encode_event
from bocage.core.logs import get_logger
from bocage.edge.adapters import Source
from bocage.edge.adapters.csv import CsvSource
from bocage.edge.adapters.http import HttpSource
from bocage.edge.adapters.mqtt import MqttSource
from bocage.edge.adapters.simulated import SimulatorSource
from bocage.edge.batcher import Batch, Batcher
from bocage.edge.compaction import WindowCompactor
from bocage.edge.counters import Counters, CountersCollector
from bocage.edge.filters import Filters
from bocage.edge.forwarder import Forwarder, wait_or_stop
from bocage.edge.reading import Reading
from bocage.edge.settings import EdgeSettings, SensorSection
from bocage.edge.sobriety import Sobriety
from bocage.edge.spool import RecordKind, Spool

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = get_logger("bocage.edge.agent")

AGENT_VERSION = "0.1.0"
_TICK_S = 0.1
_SOURCES_GRACE_S = 5.0
"""How long sources get, on stop, to leave by themselves (the MQTT source spools and
acknowledges what it read) before they are cancelled."""


def build_sources(settings: EdgeSettings) -> list[Source]:
    """One source per adapter kind that has sensors."""
    sources: list[Source] = []
    by_adapter: dict[str, list[SensorSection]] = {}
    for sensor in settings.sensors:
        by_adapter.setdefault(sensor.adapter, []).append(sensor)
    if "simulator" in by_adapter:
        sources.append(SimulatorSource(settings, by_adapter["simulator"]))
    if "mqtt" in by_adapter:
        sources.append(MqttSource(settings, by_adapter["mqtt"]))
    if "http" in by_adapter:
        sources.append(HttpSource(settings, by_adapter["http"]))
    if "csv" in by_adapter:
        sources.append(CsvSource(settings, by_adapter["csv"]))
    return sources


class Agent:
    """One gateway's agent. ``counters`` tells at any time what happened to every reading."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        sources: list[Source] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.counters = Counters()
        self.sources = build_sources(settings) if sources is None else sources
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(
            CountersCollector(
                self.counters, territory=settings.gateway.territory, gateway=settings.gateway.id
            )
        )
        self.sobriety = Sobriety(settings.link, settings.power, self.counters)
        self.batcher = Batcher(settings.batch.max_readings, settings.batch.max_age_s)
        self.filters = Filters(
            {s.id: s.kind for s in settings.sensors},
            settings.filters,
            self.counters,
            territory=settings.gateway.territory,
            gateway=settings.gateway.id,
            emit=self._batch,
            alarm=self.alarm,
            spooled=self.watermark,
        )
        self.spool: Spool | None = None
        self.forwarder: Forwarder | None = None
        self.sources_done = asyncio.Event()
        self._idle_event = asyncio.Event()
        self.started = asyncio.Event()
        """Set once the spool is open and the sources run (watermarks are known)."""
        self._metrics_server: WSGIServer | None = None
        # durability of what adapters pushed (sources that acknowledge their input wait on it):
        # readings handed to the batcher are numbered in order; batches close in that order,
        # so "the first N are durable" says it all
        self._batched = 0
        self._settled = 0
        self._spooling: deque[tuple[int, int]] = deque()
        """(slot of a spooled frame, readings batched up to and including it), not yet durable."""
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    # --------------------------------------------------------------------- the sink (hot path)

    def push(self, reading: Reading, *, redelivered: bool = False) -> None:
        """Hand one reading to the filters (adapters call this).

        A ``redelivered`` reading (MQTT DUP flag, retained message) is dropped if its series
        already holds a reading at or after its time, in the spool or in the open batch.
        """
        if redelivered and self._holds(reading):
            self.counters.produced += 1
            self.counters.filtered["redelivered"] += 1
            return
        self.filters.push(reading)

    def _holds(self, reading: Reading) -> bool:
        """True if the series has a reading at or after this one's time in the spool (its
        persisted watermark, which survives restarts) or in the open batch."""
        key = (reading.sensor, reading.metric)
        spooled = None if self.spool is None else self.spool.watermarks.get(key)
        batched = self.batcher.newest(key)
        return any(t is not None and reading.time_ms <= t for t in (spooled, batched))

    def reject(self, reason: str, count: int = 1) -> None:
        """Count input that could not become readings."""
        self.filters.reject(reason, count)

    def watermark(self, sensor: str, metric: str) -> int | None:
        """Newest time already spooled for a series (replayable sources resume after it)."""
        return None if self.spool is None else self.spool.watermarks.get((sensor, metric))

    def sampling_factor(self) -> float:
        """Live sources sample less often on a low battery (sobriety)."""
        return self.sobriety.sampling_factor()

    async def breathe(self) -> None:
        """Let the forwarder and timers run between chunks of readings."""
        await asyncio.sleep(0)

    def checkpoint(self) -> int:
        """A mark covering every reading pushed so far (see :meth:`settled`)."""
        return self._batched

    async def settled(self, checkpoint: int) -> int:
        """Return once every reading pushed before ``checkpoint`` is durable in the spool
        (under its fsync policy) or will never be: refused, filtered, or waiting in a
        downsampling window (which a kill loses). Returns the newest checkpoint settled."""
        if checkpoint > self._settled:
            future = asyncio.get_running_loop().create_future()
            self._waiters.append((checkpoint, future))
            await future
        return self._settled

    def commit(self) -> None:
        """Spool the open batch now and fsync the spool (downsampling windows stay open)."""
        batch = self.batcher.take()
        if batch is not None:
            self._spool_batch(batch)
        self.counters.buffered = 0
        self._require_spool().sync()
        self._settle()
        self._wake()

    def _settle(self) -> None:
        """Advance what is durable and wake the sources waiting for it."""
        spool = self.spool
        spooling = self._spooling
        if spool is not None:
            durable = spool.durable_slots
            while spooling and spooling[0][0] < durable:
                self._settled = spooling.popleft()[1]
        if self._waiters:
            ready = [(c, f) for c, f in self._waiters if c <= self._settled]
            if ready:
                self._waiters = [(c, f) for c, f in self._waiters if c > self._settled]
                for _, future in ready:
                    if not future.done():
                        future.set_result(None)

    def alarm(self, alarm: Alarm) -> None:
        """Spool an alarm; it is fsynced and sent ahead of any data."""
        spool = self._require_spool()
        spool.append(
            RecordKind.ALARM, encode_event(alarm), seq=spool.next_sequence(), readings=0,
            time_ms=alarm.time_ms,
        )
        self.counters.alarms_spooled += 1
        self._wake()

    def _batch(self, reading: Reading) -> None:
        self._batched += 1
        batch = self.batcher.add(reading)
        self.counters.buffered = self.batcher.count
        if batch is not None:
            self._spool_batch(batch)

    def _spool_batch(self, batch: Batch) -> None:
        spool = self._require_spool()
        seq = spool.next_sequence()
        created_ms = int(time.time() * 1000)
        gateway = self.settings.gateway
        try:
            payload = batch.encode(gateway.territory, gateway.id, seq, created_ms)
        except ValueError as exc:
            # never silent: a batch the codec refuses is counted and logged
            log.error(  # noqa: TRY400 - one line, no traceback
                "cannot encode a batch", error=str(exc), readings=batch.readings
            )
            self.counters.rejected["encode_error"] += batch.readings
            self._spooling.append((-1, self._batched - self.batcher.count))
            self._settle()
            return
        slot = spool.append(
            RecordKind.FRAME, payload, seq=seq, readings=batch.readings, time_ms=created_ms
        )
        spool.note_watermarks(batch.watermarks)
        self._spooling.append((slot, self._batched - self.batcher.count))
        self._settle()
        self.counters.accepted += batch.readings
        self.counters.frames_spooled += 1
        self.counters.buffered = self.batcher.count
        self._wake()

    def flush(self) -> None:
        """Close the open batch now (and any open downsampling window)."""
        self.filters.flush()
        batch = self.batcher.take()
        if batch is not None:
            self._spool_batch(batch)
        self.counters.buffered = 0

    def _wake(self) -> None:
        if self.forwarder is not None:
            self.forwarder.wake.set()

    def _require_spool(self) -> Spool:
        if self.spool is None:
            raise RuntimeError("the agent is not running")
        return self.spool

    # -------------------------------------------------------------------------- lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; on the way out flush batches into the spool."""
        settings = self.settings
        spool_settings = settings.spool
        self.spool = Spool(
            spool_settings.dir,
            budget_bytes=spool_settings.budget_bytes,
            segment_bytes=spool_settings.segment_bytes,
            fsync=spool_settings.fsync,
            fsync_interval_s=spool_settings.fsync_interval_s,
            counters=self.counters,
            compactor=WindowCompactor(
                settings.gateway.territory, settings.gateway.id,
                int(spool_settings.compact_window_s * 1000),
                {s.id: s.kind for s in settings.sensors},
            ),
            split_append_s=spool_settings.debug_split_append_s,
        )
        self.spool.on_durable = self._settle
        report = self.spool.report
        log.info(
            "spool opened", dir=spool_settings.dir, recovery=report.summary(),
            gateway=settings.gateway.id, territory=settings.gateway.territory,
        )
        self.forwarder = Forwarder(settings, self.spool, self.counters, self.sobriety)
        self._start_metrics()
        tasks = [
            asyncio.create_task(self.forwarder.run(stop), name="forwarder"),
            asyncio.create_task(self._ticker(stop), name="ticker"),
            asyncio.create_task(self._status_loop(stop), name="status"),
        ]
        sources = asyncio.create_task(self._run_sources(stop), name="sources")
        self.started.set()
        try:
            await stop.wait()
        finally:
            if stop.is_set() and not sources.done():
                # sources leave on `stop` by themselves: the MQTT source spools and
                # acknowledges what it read, so the broker does not redeliver it
                await asyncio.wait({sources}, timeout=_SOURCES_GRACE_S)
            sources.cancel()
            await asyncio.gather(sources, return_exceptions=True)
            self.flush()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.spool.close()
            self._stop_metrics()
            log.info("agent stopped", **_summary(self.counters))  # type: ignore[arg-type]

    async def _run_sources(self, stop: asyncio.Event) -> None:
        async def guarded(source: Source) -> None:
            try:
                await source.run(self, stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(  # noqa: TRY400 - one line, no traceback
                    "adapter stopped on an error", adapter=source.name, error=repr(exc)
                )
                self.counters.rejected["adapter_error"] += 1

        await asyncio.gather(*(guarded(s) for s in self.sources))
        # a finite replay is over: whatever waits in memory goes to the spool now
        self.flush()
        self._require_spool().sync()
        self._wake()
        self.sources_done.set()
        log.info("sources finished", produced=self.counters.produced)

    async def _ticker(self, stop: asyncio.Event) -> None:
        max_age = self.settings.batch.max_age_s
        while not await wait_or_stop(stop, _TICK_S):
            if self.batcher.due(age_s=self.sobriety.batch_age_s(max_age)):
                batch = self.batcher.take()
                if batch is not None:
                    self._spool_batch(batch)
            spool = self._require_spool()
            if spool.sync_due():
                spool.sync()
                self._wake()
            self._settle()
            if self.idle:
                self._idle_event.set()

    async def _status_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.status_interval_s
        while not await wait_or_stop(stop, interval):
            await self.sobriety.read_battery()
            if self.forwarder is not None:
                await self.forwarder.send_status(self.status())

    def status(self) -> GatewayStatus:
        """The gateway status event of this moment."""
        c = self.counters
        spool = self._require_spool()
        return GatewayStatus(
            territory=self.settings.gateway.territory,
            gateway=self.settings.gateway.id,
            time_ms=int(time.time() * 1000),
            readings_accepted=c.accepted,
            readings_rejected=c.rejected_total,
            readings_dropped=c.dropped_total + c.filtered_total,
            frames_spooled=c.frames_spooled,
            frames_sent=c.frames_delivered,
            backlog_frames=spool.backlog_frames,
            bytes_sent=c.bytes_sent,
            messages_sent=c.messages_sent,
            radio_wakeups=c.radio_wakeups,
            energy_mj=c.energy_mj,
            battery_pct=self.sobriety.battery_pct,
            link=self.settings.link.kind,
            agent_version=AGENT_VERSION,
        )

    # ------------------------------------------------------------------------- observability

    def _start_metrics(self) -> None:
        port = self.settings.metrics_port
        if port:
            server, _thread = start_http_server(
                port, addr=self.settings.metrics_host, registry=self.registry
            )
            self._metrics_server = server
            log.info("metrics endpoint", url=f"http://{self.settings.metrics_host}:{port}/metrics")

    def _stop_metrics(self) -> None:
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    # -------------------------------------------------------------------------- completion

    @property
    def idle(self) -> bool:
        """Sources finished, nothing in memory, nothing left in the spool."""
        spool = self.spool
        return (
            self.sources_done.is_set()
            and self.batcher.count == 0
            and spool is not None
            and spool.backlog_frames == 0
        )

    async def drained(self) -> None:
        """Wait until a finite replay has been produced and every frame delivered.

        Bound it with ``async with asyncio.timeout(60): await agent.drained()``.
        """
        while True:
            await self._idle_event.wait()
            if self.idle:  # re-checked: the event is refreshed on the agent's tick
                return
            self._idle_event.clear()


def _summary(counters: Counters) -> dict[str, object]:
    return {
        "produced": counters.produced,
        "accepted": counters.accepted,
        "delivered": counters.delivered,
        "rejected": counters.rejected_total,
        "filtered": counters.filtered_total,
        "compacted": counters.compacted,
        "dropped": counters.dropped_total,
    }
