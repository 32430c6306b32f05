"""The ingest loop: JetStream frames in, ClickHouse rows out, exactly once.

Pipeline (one asyncio task, one insert thread at a time):

1. *fetch* a few hundred messages from the durable pull consumer (shared by every ingest
   process of the same ``durable`` name — that is how ingest scales out);
2. *classify* each message: decode the frame with ``bocage_native``, check it against its
   subject and the register; a refused message is set aside for the quarantine;
3. when the pending batch is large or old enough, *commit* it while the next one is fetched:
   quarantine the refused messages (stream, then table), store alarms and status, look the
   frames up in the ``frames`` ledger, insert the new frames' native quantile sketches and
   window statistics per series and hour (``sketches_1h``), then their readings, each as one
   Arrow table, and only then acknowledge every message of the batch.

Exactly once: a frame's readings and its ledger row are written by the same INSERT (the ledger
is a materialized view of ``readings``). Before inserting, frames already in the ledger are
skipped; frames that may have been written by an interrupted attempt (redelivered by
JetStream, or retried here after an error) are verified against ``readings`` itself, which
stays right even when a crash fell between the parts of one INSERT. A retried insert of the
same frames carries the same ``insert_deduplication_token``.

Backpressure: at most two batches are held (one being committed, one being filled); while a
commit is slow, nothing more is fetched, and JetStream keeps the backlog (``max_ack_pending``
bounds what the server hands out).

Tracing (only with a ``tracer_provider``, see :mod:`bocage.datacenter.tracing`): one
``ingest batch`` span per committed batch with child spans for its stages (``decode and
check``, ``store events``, ``insert frames``, ``quarantine``, ``ack``), and one short
``ingest message`` span per message in the trace of its frame, linked to the batch span where
the shared work is detailed: the parent is the message's W3C ``traceparent`` header when the
gateway sends one (``forward.traceparent``), otherwise the context derived from its
``Nats-Msg-Id`` (:func:`bocage.core.tracecontext.message_parent`, the same trace id), so a
frame id leads to the ingest of that frame with no header on the wire. Malformed headers are
counted on the batch span and fall back to the derived context, never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]  # no stubs published
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import Error as JetStreamError
from opentelemetry import trace

import bocage_native
from bocage.core import events, subjects, tracecontext
from bocage.core.errors import BocageError
from bocage.core.logs import get_logger
from bocage.core.register import Register
from bocage.core.streams import ensure_streams
from bocage.ingest import metrics
from bocage.ingest import quarantine as quarantine_
from bocage.ingest.checks import (
    GatewayEntry,
    RegisterIndex,
    Rejection,
    check_identity,
    check_sensors,
    check_timestamps,
    epoch_ms,
)
from bocage.ingest.settings import IngestSettings
from bocage.store import FrameReadings, ReadingsBatch, Store, sketch_table
from bocage.store.repair import FrameSpan, reconcile
from bocage.store.sketches import select_frames

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

log = get_logger("bocage.ingest")

_TS_BETWEEN = (
    "ts BETWEEN fromUnixTimestamp64Milli({a:Int64}, 'UTC') "
    "AND fromUnixTimestamp64Milli({b:Int64}, 'UTC')"
)

ALARM_COLUMNS = ("territory", "gateway", "sensor", "kind", "time", "message", "metric", "value")
STATUS_FIELDS = tuple(f for f in events.GatewayStatus.__struct_fields__)

_RETRYABLE = (
    BocageError,
    JetStreamError,
    NatsTimeoutError,
    ConnectionClosedError,
    NoServersError,
    OSError,
)


@dataclass(slots=True)
class DecodedFrame:
    """A frame that passed the checks, waiting to be stored."""

    msg: Msg
    frame_id: str
    territory: str
    gateway: str
    sequence: int
    sensors: list[str]
    metrics: list[str]
    retention: list[int]
    columns: dict[str, npt.NDArray[Any]]
    first_ms: int
    last_ms: int
    maybe_written: bool
    """Redelivered by JetStream, or retried here: an earlier attempt may have stored it."""

    @property
    def readings(self) -> int:
        return len(self.columns["timestamps"])


@dataclass(slots=True)
class Batch:
    """Messages fetched since the last commit, sorted by what they are."""

    frames: list[DecodedFrame] = field(default_factory=list)
    refused: list[quarantine_.Refused] = field(default_factory=list)
    alarms: list[tuple[Msg, events.Alarm]] = field(default_factory=list)
    statuses: list[tuple[Msg, events.GatewayStatus]] = field(default_factory=list)
    other: list[Msg] = field(default_factory=list)
    """Messages with nothing to store (empty frames): acknowledged with the batch."""
    readings: int = 0
    started: float = 0.0
    # progress of the commit, so that a retry redoes only what failed
    quarantined: bool = False
    events_stored: bool = False
    frames_stored: bool = False
    sketches: Sketches | None = None
    """Sketch rows of the batch's frames, computed once (kept across retries)."""
    # what the batch span reports (tracing only)
    received_ns: dict[int, int] = field(default_factory=dict)
    """Wall-clock time each message was fetched, by ``id(msg)``; filled only when tracing."""
    classified_ns: int = 0
    stored: StoreOutcome | None = None
    insert_seconds: float = 0.0
    attempts: int = 0

    def messages(self) -> list[Msg]:
        """Every message of the batch (what is acknowledged or released together)."""
        refused = [r.msg for r in self.refused]
        # a frame refused after its insert (sequence_reused) is in both lists: once is enough
        moved = {id(m) for m in refused}
        return (
            [f.msg for f in self.frames if id(f.msg) not in moved]
            + refused
            + [m for m, _ in self.alarms]
            + [m for m, _ in self.statuses]
            + self.other
        )

    def __len__(self) -> int:
        return (
            len(self.frames)
            + len(self.refused)
            + len(self.alarms)
            + len(self.statuses)
            + len(self.other)
        )


@dataclass(frozen=True, slots=True)
class Sketches:
    """Sketch rows (``sketches_1h``) of the distinct frames of a batch."""

    table: pa.Table
    positions: dict[str, int]
    """Frame id -> its position (the code of its rows' ``frame_id``) in ``table``."""


def compute_sketches(frames: list[DecodedFrame]) -> Sketches:
    """Sketch rows of every distinct frame id of ``frames`` (its first occurrence)."""
    distinct: dict[str, DecodedFrame] = {}
    for frame in frames:
        distinct.setdefault(frame.frame_id, frame)
    table = sketch_table([_readings(f) for f in distinct.values()])
    return Sketches(table, {fid: i for i, fid in enumerate(distinct)})


@dataclass(slots=True)
class StoreOutcome:
    """What storing the frames of a batch did."""

    stored_frames: int = 0
    stored_readings: int = 0
    duplicates: int = 0
    conflicts: list[DecodedFrame] = field(default_factory=list)
    """Frames whose id is already stored with other content (a reused sequence number)."""


class Ingestor:
    """Consumes frames, alarms and status from JetStream and stores them in ClickHouse.

    ``nc`` is a connected NATS client (owned by the caller); ``store`` an open :class:`Store`
    (it may be shared with other services of the process). Run with :meth:`run` until ``stop``
    is set; several processes with the same ``settings.durable`` share the work.
    """

    def __init__(
        self,
        settings: IngestSettings,
        store: Store,
        register: Register,
        nc: NatsClient,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self._tracer: Tracer | None = (
            None if tracer_provider is None else tracer_provider.get_tracer("bocage.ingest")
        )
        self.store = store
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self._index = RegisterIndex(register)
        self._oldest_ms = epoch_ms(settings.oldest_reading)
        self._future_ms = int(settings.future_tolerance_s * 1000)
        self.committed_batches = 0
        """Batches fully committed (stored and acknowledged) since start; for health and tests."""

    def update_register(self, register: Register) -> None:
        """Use a new register from now on (a commune onboarded without a restart)."""
        self._index = RegisterIndex(register)

    # -- consumer ----------------------------------------------------------------------------

    def consumer_config(self) -> ConsumerConfig:
        """The durable pull consumer every ingest process shares."""
        s = self.settings
        return ConsumerConfig(
            name=s.durable,
            durable_name=s.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            # never give up on a message: poison is quarantined, not dropped after N tries
            max_deliver=-1,
            max_ack_pending=s.max_in_flight,
            max_waiting=512,
        )

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await ensure_streams(self.js)
        # create-or-update: a new ack wait or in-flight bound applies at the next start
        await self.js.add_consumer(subjects.STREAM, config=self.consumer_config())
        return await self.js.pull_subscribe_bind(
            durable=self.settings.durable,
            stream=subjects.STREAM,
            pending_msgs_limit=4 * self.settings.fetch_frames + 64,
            pending_bytes_limit=512 * 1024 * 1024,
        )

    # -- main loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then finish the in-flight work and return.

        On stop, the batch being committed is finished (or its messages released for
        redelivery after ``shutdown_timeout_s``); messages fetched but not committed are
        committed once more within that time, else released (nak).
        """
        sub = await self._subscribe()
        log.info("ingest started", durable=self.settings.durable, database=self.store.database)
        batch = Batch()
        committing: asyncio.Task[None] | None = None
        retry = self.settings.retry_initial_s
        try:
            while not stop.is_set():
                room = self.settings.batch_frames - len(batch)
                if room > 0:
                    try:
                        msgs = await sub.fetch(
                            min(self.settings.fetch_frames, room),
                            timeout=self.settings.fetch_timeout_s,
                        )
                        retry = self.settings.retry_initial_s
                    except (TimeoutError, NatsTimeoutError):
                        msgs = []
                    except (ConnectionClosedError, NoServersError, JetStreamError) as exc:
                        metrics.ERRORS.labels("fetch").inc()
                        log.warning("fetch failed, retrying", error=repr(exc), retry_s=retry)
                        await _wait(stop, retry)
                        retry = min(retry * 2, self.settings.retry_max_s)
                        msgs = []
                    for msg in msgs:
                        self._classify(msg, batch)
                    metrics.IN_FLIGHT.set(len(batch))
                if len(batch) and self._due(batch):
                    if committing is not None:
                        await committing
                    committing = asyncio.create_task(self._commit(batch, stop))
                    batch = Batch()
        finally:
            deadline = time.monotonic() + self.settings.shutdown_timeout_s
            if committing is not None:
                await _finish(committing, deadline)
            if len(batch):
                # one bounded attempt to commit what was fetched, else give it back
                await _finish(asyncio.create_task(self._commit(batch, stop, final=True)), deadline)
            metrics.IN_FLIGHT.set(0)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            log.info("ingest stopped", batches=self.committed_batches)

    def _due(self, batch: Batch) -> bool:
        s = self.settings
        return (
            batch.readings >= s.batch_readings
            or len(batch) >= s.batch_frames
            or time.monotonic() - batch.started >= s.batch_age_s
        )

    # -- classify ----------------------------------------------------------------------------

    def _classify(self, msg: Msg, batch: Batch) -> None:
        """Decode and check one message into ``batch``; never raises."""
        if not len(batch):
            batch.started = time.monotonic()
        if self._tracer is not None:
            batch.received_ns[id(msg)] = time.time_ns()
        try:
            parsed = subjects.parse(msg.subject)
            if parsed is None:
                batch.refused.append(
                    quarantine_.Refused(msg, "subject", f"not a gateway subject: {msg.subject!r}")
                )
                return
            territory, gateway, kind = parsed
            if kind == "frames":
                self._classify_frame(msg, territory, gateway, batch)
            elif kind == "alarms":
                self._classify_event(msg, territory, gateway, batch, alarm=True)
            else:
                self._classify_event(msg, territory, gateway, batch, alarm=False)
        except Exception as exc:  # a bug must not stop ingest: keep the message, say why
            metrics.ERRORS.labels("classify").inc()
            log.exception("cannot classify message", subject=msg.subject)
            batch.refused.append(quarantine_.Refused(msg, "internal", repr(exc)[:500]))
        finally:
            if self._tracer is not None:
                batch.classified_ns = time.time_ns()

    def _classify_frame(self, msg: Msg, territory: str, gateway: str, batch: Batch) -> None:
        def refuse(rejection: Rejection, frame_id: str = "") -> None:
            batch.refused.append(
                quarantine_.Refused(
                    msg,
                    rejection.reason,
                    rejection.detail,
                    territory,
                    gateway,
                    "frames",
                    frame_id,
                )
            )

        try:
            frame = bocage_native.decode_frame(msg.data)
        except bocage_native.FrameError as exc:
            refuse(Rejection("decode", str(exc)))
            return
        identity = check_identity(self._index, territory, gateway, frame.territory, frame.gateway)
        if isinstance(identity, Rejection):
            refuse(identity, frame.frame_id)
            return
        entry: GatewayEntry = identity
        series = frame.series
        sensors = [s.sensor for s in series]
        problem = check_sensors(entry, sensors)
        if problem is not None:
            refuse(problem, frame.frame_id)
            return
        columns = frame.columns()
        timestamps: npt.NDArray[np.int64] = columns["timestamps"]  # type: ignore[assignment]
        problem = check_timestamps(
            timestamps, oldest_ms=self._oldest_ms, future_tolerance_ms=self._future_ms
        )
        if problem is not None:
            refuse(problem, frame.frame_id)
            return
        if len(timestamps) == 0:
            metrics.FRAMES.labels("empty").inc()
            batch.other.append(msg)
            return
        batch.frames.append(
            DecodedFrame(
                msg=msg,
                frame_id=frame.frame_id,
                territory=frame.territory,
                gateway=frame.gateway,
                sequence=frame.sequence,
                sensors=sensors,
                metrics=[s.metric for s in series],
                retention=[entry.retention[s] for s in sensors],
                columns=columns,
                first_ms=int(timestamps.min()),
                last_ms=int(timestamps.max()),
                maybe_written=_delivered(msg) > 1,
            )
        )
        batch.readings += len(timestamps)

    def _classify_event(
        self, msg: Msg, territory: str, gateway: str, batch: Batch, *, alarm: bool
    ) -> None:
        kind = "alarms" if alarm else "status"
        event: events.Alarm | events.GatewayStatus
        try:
            event = events.decode_alarm(msg.data) if alarm else events.decode_status(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            batch.refused.append(
                quarantine_.Refused(msg, "event", str(exc)[:500], territory, gateway, kind)
            )
            return
        identity = check_identity(self._index, territory, gateway, event.territory, event.gateway)
        if isinstance(identity, Rejection):
            batch.refused.append(
                quarantine_.Refused(msg, identity.reason, identity.detail, territory, gateway, kind)
            )
            return
        if isinstance(event, events.Alarm):
            batch.alarms.append((msg, event))
        else:
            batch.statuses.append((msg, event))

    # -- commit ------------------------------------------------------------------------------

    async def _commit(self, batch: Batch, stop: asyncio.Event, *, final: bool = False) -> None:
        """Store the batch, then acknowledge it; retry with backoff while the store is down.

        Never raises (except cancellation, on which the messages are released).
        """
        tracer = self._tracer
        if tracer is None:
            await self._commit_batch(batch, stop, final=final)
            return
        first_ns = min(batch.received_ns.values(), default=None)
        span = tracer.start_span("ingest batch", start_time=first_ns)
        with trace.use_span(span, end_on_exit=True):
            decode = tracer.start_span("decode and check", start_time=first_ns)
            decode.set_attribute("bocage.messages", len(batch))
            decode.end(end_time=batch.classified_ns or None)
            acked = await self._commit_batch(batch, stop, final=final)
            try:
                self._trace_messages(batch, span, acked=acked)
            except Exception:  # tracing must never stop ingest
                log.exception("cannot record the spans of a batch")

    def _stage(self, name: str) -> contextlib.AbstractContextManager[Span | None]:
        """A child span of the current (batch) span when tracing, else nothing."""
        if self._tracer is None:
            return contextlib.nullcontext()
        return self._tracer.start_as_current_span(name)

    def _trace_messages(self, batch: Batch, span: Span, *, acked: bool) -> None:
        """Batch attributes, and one span per message in its gateway's trace (if any)."""
        tracer = self._tracer
        assert tracer is not None
        stored = batch.stored or StoreOutcome()
        quarantined = {id(r.msg): r.reason for r in batch.refused}
        outcomes: list[tuple[Msg, str]] = [
            *((f.msg, "frame") for f in batch.frames if id(f.msg) not in quarantined),
            *((r.msg, "quarantined") for r in batch.refused),
            *((m, "alarm") for m, _ in batch.alarms),
            *((m, "status") for m, _ in batch.statuses),
            *((m, "empty") for m in batch.other),
        ]
        batch_context = span.get_span_context()
        linked = derived = invalid = missing = 0
        for msg, outcome in outcomes:
            headers = msg.headers or {}
            header = headers.get(tracecontext.HEADER)
            parent = tracecontext.parse_traceparent(header)
            if parent is not None:
                linked += 1
            else:
                if header is not None:
                    invalid += 1
                message_id = headers.get(subjects.MSG_ID_HEADER)
                if message_id is None:
                    missing += 1
                    continue
                parent = tracecontext.message_parent(message_id)
                derived += 1
            remote = trace.NonRecordingSpan(
                trace.SpanContext(
                    trace_id=int(parent.trace_id, 16),
                    span_id=int(parent.span_id, 16),
                    is_remote=True,
                    trace_flags=trace.TraceFlags(parent.flags & 0xFF),
                )
            )
            attributes: dict[str, str | int | bool] = {
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": headers.get(subjects.MSG_ID_HEADER, ""),
                "bocage.outcome": outcome if acked else "released",
            }
            reason = quarantined.get(id(msg))
            if reason:
                attributes["bocage.quarantine.reason"] = reason
            tracer.start_span(
                "ingest message",
                context=trace.set_span_in_context(remote),
                kind=trace.SpanKind.CONSUMER,
                links=[trace.Link(batch_context)],
                start_time=batch.received_ns.get(id(msg)),
                attributes=attributes,
            ).end()
        span.set_attributes(
            {
                "bocage.messages": len(batch),
                "bocage.frames": len(batch.frames),
                "bocage.readings": batch.readings,
                "bocage.alarms": len(batch.alarms),
                "bocage.statuses": len(batch.statuses),
                "bocage.quarantined": len(batch.refused),
                "bocage.frames_stored": stored.stored_frames,
                "bocage.rows_inserted": stored.stored_readings,
                "bocage.duplicates": stored.duplicates,
                "bocage.insert_seconds": batch.insert_seconds,
                "bocage.attempts": batch.attempts,
                "bocage.acked": acked,
                "bocage.traceparent.linked": linked,
                "bocage.traceparent.derived": derived,
                "bocage.traceparent.invalid": invalid,
                "bocage.traceparent.missing": missing,
            }
        )

    async def _commit_batch(self, batch: Batch, stop: asyncio.Event, *, final: bool) -> bool:
        """:meth:`_commit` itself; True if acknowledged, False if released."""
        delay = self.settings.retry_initial_s
        heartbeat = asyncio.create_task(self._heartbeat(batch))
        try:
            while True:
                try:
                    batch.attempts += 1
                    await self._commit_once(batch)
                    break
                except Exception as exc:  # store down, NATS away, or a bug: log, count, retry
                    metrics.ERRORS.labels("commit").inc()
                    if not isinstance(exc, _RETRYABLE):
                        log.exception("unexpected error while committing a batch")
                    # anything of this batch may now be in the store: verify before re-inserting
                    for frame in batch.frames:
                        frame.maybe_written = True
                    if final or stop.is_set():
                        log.warning(
                            "commit failed during shutdown, releasing messages", error=str(exc)
                        )
                        await _release(batch)
                        return False
                    log.warning(
                        "commit failed, retrying",
                        error=str(exc),
                        retry_s=delay,
                        messages=len(batch),
                    )
                    await _keep_alive(batch)
                    await _wait(stop, delay)
                    delay = min(delay * 2, self.settings.retry_max_s)
        except asyncio.CancelledError:
            await _release(batch)
            raise
        finally:
            heartbeat.cancel()
        with self._stage("ack") as span:
            if span is not None:
                span.set_attribute("bocage.messages", len(batch))
            await self._acknowledge(batch)
        self.committed_batches += 1
        return True

    async def _heartbeat(self, batch: Batch) -> None:
        """While a batch is being committed, keep JetStream from redelivering it elsewhere.

        A slow insert must not let ``ack_wait`` expire: another ingest process would get the
        same frames while they are being inserted here.
        """
        while True:
            await asyncio.sleep(self.settings.ack_wait_s / 3)
            await _keep_alive(batch)

    async def _commit_once(self, batch: Batch) -> None:
        if (batch.alarms or batch.statuses) and not batch.events_stored:
            with self._stage("store events"):
                await asyncio.to_thread(self._store_events, batch)
            batch.events_stored = True
        if batch.frames and not batch.frames_stored:
            with self._stage("insert frames") as span:
                started = time.perf_counter()
                if batch.sketches is None:
                    # Here, in the event loop, while no commit runs in the worker thread: each
                    # native sketch call releases the GIL, and getting it back from a thread
                    # busy in Python can take a whole switch interval (measured: 12 ms ->
                    # 2.5 s for a batch of 250,000 readings next to a busy thread).
                    batch.sketches = compute_sketches(batch.frames)
                outcome = await asyncio.to_thread(
                    self._store_frames, batch.frames, batch.sketches
                )
                batch.insert_seconds = time.perf_counter() - started
                batch.stored = outcome
                if span is not None:
                    span.set_attributes(
                        {
                            "bocage.frames": len(batch.frames),
                            "bocage.frames_stored": outcome.stored_frames,
                            "bocage.rows_inserted": outcome.stored_readings,
                            "bocage.duplicates": outcome.duplicates,
                            "db.system": "clickhouse",
                        }
                    )
            metrics.INSERT_SECONDS.observe(batch.insert_seconds)
            batch.frames_stored = True
            metrics.FRAMES.labels("stored").inc(outcome.stored_frames)
            metrics.FRAMES.labels("duplicate").inc(outcome.duplicates)
            metrics.READINGS.inc(outcome.stored_readings)
            if outcome.stored_readings:
                metrics.BATCH_READINGS.observe(outcome.stored_readings)
            for frame in outcome.conflicts:
                batch.refused.append(
                    quarantine_.Refused(
                        frame.msg,
                        "sequence_reused",
                        f"frame id {frame.frame_id} is already stored with other readings "
                        f"({frame.readings} readings, {frame.first_ms}..{frame.last_ms} ms)",
                        frame.territory,
                        frame.gateway,
                        "frames",
                        frame.frame_id,
                    )
                )
        if batch.refused and not batch.quarantined:
            with self._stage("quarantine") as span:
                if span is not None:
                    span.set_attribute("bocage.quarantined", len(batch.refused))
                await self._quarantine(batch)

    async def _quarantine(self, batch: Batch) -> None:
        for refused in batch.refused:
            if not refused.quarantine_seq:
                await quarantine_.publish(self.js, refused)
        token = "q:" + ",".join(str(r.quarantine_seq) for r in batch.refused)
        await asyncio.to_thread(
            self.store.insert_rows,
            "quarantine",
            quarantine_.table_rows(batch.refused, self.settings.quarantine_payload_max),
            quarantine_.QUARANTINE_COLUMNS,
            dedup_token=hashlib.sha256(token.encode()).hexdigest(),
        )
        batch.quarantined = True
        for refused in batch.refused:
            metrics.QUARANTINED.labels(refused.reason).inc()
            if refused.kind == "frames" or not refused.kind:
                metrics.FRAMES.labels("quarantined").inc()
            log.warning(
                "message quarantined",
                reason=refused.reason,
                detail=refused.detail[:200],
                subject=refused.msg.subject,
                quarantine_seq=refused.quarantine_seq,
            )

    async def _acknowledge(self, batch: Batch) -> None:
        for msg in batch.messages():
            try:
                await msg.ack()
            except Exception as exc:  # the connection dropped: JetStream redelivers, dedup holds
                metrics.ERRORS.labels("ack").inc()
                log.warning("ack failed", error=repr(exc))
                return
        # one round trip per batch: the acks reached the server before the next batch starts,
        # so a crash now causes no needless redelivery
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=5)

    def _store_events(self, batch: Batch) -> None:
        if batch.alarms:
            self.store.insert_rows(
                "alarms",
                [
                    (
                        a.territory,
                        a.gateway,
                        a.sensor,
                        a.kind,
                        _datetime(a.time_ms),
                        a.message,
                        a.metric,
                        a.value,
                    )
                    for _, a in batch.alarms
                ],
                ALARM_COLUMNS,
            )
            metrics.EVENTS.labels("alarm").inc(len(batch.alarms))
        if batch.statuses:
            rows = []
            for _, status in batch.statuses:
                row = [getattr(status, name) for name in STATUS_FIELDS]
                row[STATUS_FIELDS.index("time_ms")] = _datetime(status.time_ms)
                rows.append(tuple(row))
            columns = tuple("time" if name == "time_ms" else name for name in STATUS_FIELDS)
            self.store.insert_rows("gateway_status", rows, columns)
            metrics.EVENTS.labels("status").inc(len(batch.statuses))

    def _store_frames(
        self, frames: list[DecodedFrame], sketches: Sketches | None = None
    ) -> StoreOutcome:
        """Insert the readings of the frames not stored yet (runs in a worker thread).

        ``sketches``: the sketch rows of ``frames`` (:func:`compute_sketches`), computed here
        when not given.
        """
        outcome = StoreOutcome()
        unique: dict[str, DecodedFrame] = {}
        for frame in frames:
            first = unique.get(frame.frame_id)
            if first is None:
                unique[frame.frame_id] = frame
            elif _same(first, frame.readings, frame.first_ms, frame.last_ms):
                outcome.duplicates += 1  # the same frame twice in one batch (two delivery paths)
            else:
                outcome.conflicts.append(frame)
        ledger = self.store.stored_frames(
            (f.territory, f.gateway, f.sequence) for f in unique.values()
        )
        # Frames an interrupted attempt may have written are checked against readings itself:
        # the ledger and rollups are written after the readings and may lag behind them.
        suspects = [f for f in unique.values() if f.maybe_written]
        found = self._readings_of(suspects) if suspects else {}
        to_reconcile: list[FrameSpan] = []
        batch = ReadingsBatch()
        # frames whose sketches are (re)written: the frames inserted now, and the redelivered
        # or retried ones already complete in readings (an interrupted attempt may have
        # stopped between the two inserts); rows are keyed by frame id, so writing them again
        # never counts twice
        to_sketch: list[DecodedFrame] = []
        for frame in unique.values():
            already = found.get(frame.frame_id, 0)
            if already:
                to_reconcile.append(_span(frame))
            stored = ledger.get(frame.frame_id)
            if not frame.maybe_written and stored is not None:
                if _same(frame, *stored):
                    outcome.duplicates += 1
                else:  # never drop silently: same id, other content
                    outcome.conflicts.append(frame)
                continue
            if already >= frame.readings or (not already and stored is not None):
                outcome.duplicates += 1
                if stored is None or _same(frame, *stored):
                    to_sketch.append(frame)
                continue
            _add(batch, frame, self._missing_rows(frame) if already else None)
            to_sketch.append(frame)
            outcome.stored_frames += 1
        if to_sketch:
            # before the readings: once a frame's readings are stored, its sketches are too
            if sketches is None:
                sketches = compute_sketches(frames)
            ids = "\n".join(sorted(f.frame_id for f in to_sketch))
            self.store.insert_sketches(
                select_frames(sketches.table, [sketches.positions[f.frame_id] for f in to_sketch]),
                dedup_token=hashlib.sha256(("sketches\n" + ids).encode()).hexdigest(),
            )
        if batch.rows:
            token = hashlib.sha256("\n".join(sorted(batch.frame_ids)).encode()).hexdigest()
            outcome.stored_readings = self.store.insert_readings(
                batch.to_arrow(), dedup_token=token
            )
        if to_reconcile:
            reconcile(self.store, to_reconcile)
        return outcome

    def _readings_of(self, frames: list[DecodedFrame]) -> dict[str, int]:
        """Rows already in ``readings`` for these frames (one query, pruned by territory/time)."""
        rows = self.store.query(
            f"SELECT frame_id, count() FROM {self.store.table('readings')} "
            "WHERE territory IN {t:Array(String)} "
            f"AND {_TS_BETWEEN} AND frame_id IN {{f:Array(String)}} GROUP BY frame_id",
            {
                "t": sorted({f.territory for f in frames}),
                "a": min(f.first_ms for f in frames),
                "b": max(f.last_ms for f in frames),
                "f": [f.frame_id for f in frames],
            },
        )
        return {str(fid): int(n) for fid, n in rows}

    def _missing_rows(self, frame: DecodedFrame) -> npt.NDArray[np.bool_]:
        """Rows of a partially stored frame that are not in ``readings`` yet.

        Happens only when a crash fell between two parts of one INSERT (a frame spanning two
        months); the frame is completed instead of duplicated.
        """
        log.warning("completing a partially stored frame", frame_id=frame.frame_id)
        rows = self.store.query(
            "SELECT sensor, metric, toUnixTimestamp64Milli(ts) "
            f"FROM {self.store.table('readings')} "
            f"WHERE territory = {{t:String}} AND frame_id = {{f:String}} AND {_TS_BETWEEN}",
            {"t": frame.territory, "f": frame.frame_id, "a": frame.first_ms, "b": frame.last_ms},
        )
        present = {(str(s), str(m), int(t)) for s, m, t in rows}
        index = frame.columns["series_index"]
        ts = frame.columns["timestamps"]
        return np.fromiter(
            (
                (frame.sensors[i], frame.metrics[i], int(t)) not in present
                for i, t in zip(index.tolist(), ts.tolist(), strict=True)
            ),
            dtype=np.bool_,
            count=len(ts),
        )


def _add(batch: ReadingsBatch, frame: DecodedFrame, mask: npt.NDArray[np.bool_] | None) -> None:
    cols = frame.columns

    def pick(column: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return column if mask is None else column[mask]

    batch.add_frame(
        territory=frame.territory,
        gateway=frame.gateway,
        frame_id=frame.frame_id,
        sensors=frame.sensors,
        metrics=frame.metrics,
        retention_days=frame.retention,
        series_index=pick(cols["series_index"]),
        timestamps=pick(cols["timestamps"]),
        values=pick(cols["values"]),
        quality=pick(cols["quality"]),
    )


def _readings(frame: DecodedFrame) -> FrameReadings:
    cols = frame.columns
    return FrameReadings(
        territory=frame.territory,
        frame_id=frame.frame_id,
        sensors=frame.sensors,
        metrics=frame.metrics,
        series_index=cols["series_index"],
        timestamps=cols["timestamps"],
        values=cols["values"],
    )


def _same(frame: DecodedFrame, readings: int, first_ms: int, last_ms: int) -> bool:
    """Whether a stored frame (its count and time span) is this one."""
    return (frame.readings, frame.first_ms, frame.last_ms) == (readings, first_ms, last_ms)


def _span(frame: DecodedFrame) -> FrameSpan:
    return FrameSpan(
        territory=frame.territory,
        frame_id=frame.frame_id,
        series=tuple(zip(frame.sensors, frame.metrics, strict=True)),
        first_ms=frame.first_ms,
        last_ms=frame.last_ms,
    )


def _delivered(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:
        return 1


def _datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _keep_alive(batch: Batch) -> None:
    """Tell JetStream the batch's messages are still being worked on (no redelivery)."""
    for msg in batch.messages():
        with contextlib.suppress(Exception):
            await msg.in_progress()


async def _release(batch: Batch) -> None:
    """Give the batch's messages back to JetStream for redelivery (to this or another process)."""
    for msg in batch.messages():
        with contextlib.suppress(Exception):
            await msg.nak()


async def _finish(task: asyncio.Task[None], deadline: float) -> None:
    """Wait for ``task`` until ``deadline``; cancel it after (it then releases its messages)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
