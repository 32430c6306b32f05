"""The forwarder: frames leave the spool only once JetStream has acknowledged them.

Each record is published with ``Nats-Msg-Id`` = its frame id (``territory:gateway:sequence``),
so a retry after a lost acknowledgement is deduplicated by the stream (the datacenter derives
the frame's trace id from it, see :mod:`bocage.core.tracecontext`); with
``forward.traceparent`` also with a W3C ``traceparent`` header carrying that trace id and a
span id new per attempt. Up to
``forward.max_inflight`` publications await their acknowledgement at once. Records come out of
the spool alarms first, then freshest frames first; a token bucket bounds the readings sent
per second, and after a reconnection the drain starts after a random delay, so that a whole
territory coming back does not flood the datacenter in step.

NATS unreachable is an expected state, not an error: the forwarder logs one line per attempt
and retries with exponential backoff and full jitter, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

import bocage_native
from bocage.core import subjects, tracecontext
from bocage.core.events import GatewayStatus
from bocage.core.events import encode as encode_event
from bocage.core.logs import get_logger
from bocage.core.streams import ensure_streams
from bocage.edge.counters import Counters
from bocage.edge.settings import EdgeSettings
from bocage.edge.sobriety import Sobriety
from bocage.edge.spool import DoneReason, Record, RecordKind, Spool

log = get_logger("bocage.edge.forwarder")

_OVERHEAD_BYTES = 90
"""Protocol bytes around a payload on the wire (HPUB line, Nats-Msg-Id header, ack)."""
_TRACEPARENT_BYTES = 70
"""What a ``traceparent`` header adds (``traceparent: 00-<32 hex>-<16 hex>-01`` and CRLF)."""


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog): wait U(0, min(cap, b·2^n))."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempt = 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        """The next delay; grows until :meth:`reset`."""
        ceiling = min(self.max_s, self.initial_s * 2**self.attempt)
        self.attempt += 1
        return self.initial_s / 2 + self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        """Back to the first delay (after a success)."""
        self.attempt = 0


class TokenBucket:
    """Bounds readings sent per second; ``rate`` 0 means unbounded."""

    def __init__(self, rate: float, burst_s: float = 0.5) -> None:
        self.rate = rate
        self.capacity = rate * burst_s
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    async def take(self, amount: float) -> None:
        """Wait until ``amount`` tokens are available, then spend them (may go into debt so
        one frame larger than the burst still passes, at the average rate)."""
        if not self.rate:
            return
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)
            self.tokens = 0
            self.stamp = time.monotonic()
        self.tokens -= amount


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True if stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


class _Reconnect(Exception):  # noqa: N818 - control flow, not an error
    """The connection is unusable: go back to connecting."""


class Forwarder:
    """Publishes spooled records to JetStream with acknowledgement and deduplication."""

    def __init__(
        self,
        settings: EdgeSettings,
        spool: Spool,
        counters: Counters,
        sobriety: Sobriety,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.counters = counters
        self.sobriety = sobriety
        self.territory = settings.gateway.territory
        self.gateway = settings.gateway.id
        self._traceparent = settings.forward.traceparent
        self._overhead = _OVERHEAD_BYTES + (_TRACEPARENT_BYTES if self._traceparent else 0)
        self.subjects = {
            kind: subjects.subject(self.territory, self.gateway, kind) for kind in subjects.KINDS
        }
        self.bucket = TokenBucket(settings.forward.drain_rate)
        self.backoff = Backoff(settings.nats.backoff_initial_s, settings.nats.backoff_max_s)
        self.connected = asyncio.Event()
        self.wake = asyncio.Event()
        """Set by the agent when new records are visible, to skip the idle poll."""
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._ever_connected = False
        self.last_error: Exception | None = None

    # ------------------------------------------------------------------------- connection

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, drain, reconnect... until ``stop`` is set."""
        url = self.settings.nats.url
        while not stop.is_set():
            try:
                await self._connect()
            except Exception as exc:
                if isinstance(exc, nats.errors.NoServersError) and self.last_error is not None:
                    exc = self.last_error
                self.last_error = None
                delay = self.backoff.next()
                log.warning(
                    "NATS unreachable, will retry", url=url, error=_describe(exc),
                    retry_in_s=round(delay, 2), backlog_frames=self.spool.backlog_frames,
                )
                if await wait_or_stop(stop, delay):
                    break
                continue
            self.backoff.reset()
            self.counters.connects += 1
            log.info("connected to NATS", url=url, backlog_frames=self.spool.backlog_frames)
            try:
                await self._drain(stop)
            except _Reconnect as exc:
                log.warning("NATS connection lost, reconnecting", url=url, reason=str(exc))
            except Exception as exc:
                log.error("forwarder error, reconnecting", error=_describe(exc))  # noqa: TRY400
            finally:
                self.connected.clear()
                await self._close()
            if not stop.is_set():
                await wait_or_stop(stop, self.backoff.next())

    async def _connect(self) -> None:
        nats_settings = self.settings.nats

        async def on_error(exc: Exception) -> None:
            self.last_error = exc
            log.debug("nats client error", error=_describe(exc))

        async def on_disconnect() -> None:
            if self.connected.is_set():
                self.counters.disconnects += 1
            self.connected.clear()
            self.wake.set()

        options: dict[str, object] = {}
        if nats_settings.credentials:
            options["user_credentials"] = nats_settings.credentials
        # reconnection is ours (backoff with jitter, one log line), not the client's
        self.nc = await nats.connect(
            nats_settings.url,
            name=f"bocage-edge {self.territory}/{self.gateway}",
            allow_reconnect=False,
            # one attempt per call: without this the client loops on a refused connection
            max_reconnect_attempts=1,
            reconnect_time_wait=0,
            connect_timeout=max(1, round(nats_settings.connect_timeout_s)),
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            closed_cb=on_disconnect,
            # replies (JetStream acks) come on the gateway's own inbox: its NATS permissions
            # allow subscribing to _INBOX.<territory>.<gateway>.> and nothing wider
            inbox_prefix=f"_INBOX.{self.territory}.{self.gateway}",
            **options,
        )
        self.js = self.nc.jetstream(timeout=nats_settings.publish_timeout_s)
        if nats_settings.ensure_streams:
            await ensure_streams(self.js)
        self.connected.set()
        if self._ever_connected and self.spool.backlog_frames:
            # spread the drain of a territory coming back over a few seconds
            await asyncio.sleep(random.uniform(0, self.settings.forward.reconnect_jitter_s))
        self._ever_connected = True

    async def _close(self) -> None:
        nc, self.nc, self.js = self.nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.close(), 5)
            except Exception as exc:
                log.debug("closing NATS connection failed", error=_describe(exc))

    # -------------------------------------------------------------------------------- drain

    async def _drain(self, stop: asyncio.Event) -> None:
        max_inflight = self.settings.forward.max_inflight
        while not stop.is_set():
            nc = self.nc
            if nc is None or not nc.is_connected:
                raise _Reconnect("disconnected")
            wait = self.sobriety.airtime_wait_s()
            if wait and await wait_or_stop(stop, wait):
                return
            if self.spool.sync_due():
                self.spool.sync()
            records = self.spool.take(max_inflight)
            records = self._within_budget(records)
            if not records:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), 0.2)
                continue
            await self.bucket.take(sum(r.readings for r in records))
            await self._publish_all(records)

    def _within_budget(self, records: list[Record]) -> list[Record]:
        allowed: list[Record] = []
        held: list[Record] = []
        planned = 0  # bytes of the records already allowed in this window
        for record in records:
            size = len(record.payload) + self._overhead
            urgent = record.kind == RecordKind.ALARM
            if self.sobriety.may_send(planned + size, urgent=urgent):
                allowed.append(record)
                planned += size
            else:
                held.append(record)
        if held:
            self.counters.publish_errors["daily_budget"] += len(held)
            self.spool.release(held)
        return allowed

    async def _publish_all(self, records: list[Record]) -> None:
        results = await asyncio.gather(
            *(self._publish(r) for r in records), return_exceptions=True
        )
        failed: list[Record] = []
        reconnect: str | None = None
        sent_bytes = 0
        for record, result in zip(records, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(record)
                reason = _reason(result)
                self.counters.publish_errors[reason] += 1
                if reason in ("connection", "timeout", "no_stream"):
                    reconnect = f"{reason}: {_describe(result)}"
                continue
            sent_bytes += len(record.payload) + self._overhead
            self.spool.done(record, DoneReason.DELIVERED)
            if record.kind == RecordKind.ALARM:
                self.counters.alarms_sent += 1
            else:
                self.counters.delivered += record.readings
                self.counters.frames_delivered += 1
            if result:
                self.counters.frames_duplicate += 1
        if sent_bytes:
            self.sobriety.sent(sent_bytes, len(records) - len(failed))
        if failed:
            self.spool.release(failed)
            if reconnect:
                raise _Reconnect(reconnect)
            log.warning("publish refused, backing off", failed=len(failed))
            await asyncio.sleep(self.backoff.next())

    async def _publish(self, record: Record) -> bool:
        js = self.js
        if js is None:
            raise nats.errors.ConnectionClosedError
        msg_id = f"{self.territory}:{self.gateway}:{record.seq}"
        headers = {subjects.MSG_ID_HEADER: msg_id}
        if self._traceparent:
            headers[tracecontext.HEADER] = tracecontext.format_traceparent(
                tracecontext.frame_trace_id(msg_id), tracecontext.new_span_id()
            )
        if record.kind == RecordKind.ALARM:
            subject = self.subjects["alarms"]
        else:
            subject = self.subjects["frames"]
            headers[subjects.FRAME_VERSION_HEADER] = str(bocage_native.FORMAT_VERSION)
        ack = await js.publish(subject, record.payload, headers=headers)
        return bool(ack.duplicate)

    async def send_status(self, status: GatewayStatus) -> bool:
        """Publish a gateway status event if connected (status is not spooled: the next one
        supersedes it). True if acknowledged."""
        js = self.js
        if js is None or not self.connected.is_set():
            return False
        payload = encode_event(status)
        status_id = f"{self.territory}:{self.gateway}:status:{status.time_ms}"
        headers = {subjects.MSG_ID_HEADER: status_id}
        if self._traceparent:
            headers[tracecontext.HEADER] = tracecontext.format_traceparent(
                tracecontext.frame_trace_id(status_id), tracecontext.new_span_id()
            )
        try:
            await js.publish(self.subjects["status"], payload, headers=headers)
        except Exception as exc:
            self.counters.publish_errors[_reason(exc)] += 1
            return False
        self.counters.status_sent += 1
        self.sobriety.sent(len(payload) + self._overhead)
        return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return "no_stream"
    if isinstance(exc, nats.js.errors.APIError):
        return "refused"
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, nats.errors.Error | OSError):
        return "connection"
    return "other"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
