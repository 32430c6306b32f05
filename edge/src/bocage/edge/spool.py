"""The spool: an append-only, crash-safe on-disk store of frames waiting for delivery.

Layout of a spool directory::

    LOCK            flock'd by the agent that owns the spool
    state           sequence lease and per-series watermarks (crc32 + msgpack, atomic rename)
    done.log        16-byte records "seq, reason, crc32": what left the spool and why
    00000001.seg    segments of records, written append-only, never modified in place
    00000002.seg    ...

A record is a 36-byte header (magic ``BSP1``, version, kind, flags, sequence, time, reading
count, payload length, crc32 of header and payload) followed by the payload: an encoded frame
(raw or aggregate) or a msgpack alarm. Records are written with one ``write`` each, so a killed
process leaves whole records; a power cut may leave a torn tail, which the checksum detects.

**Fsync policy** (``spool.fsync``): ``always`` fsyncs every record before it counts as
accepted; ``interval`` (default) fsyncs at most every ``fsync_interval_s`` and at every segment
change: a killed agent loses nothing, a power cut at most the last interval; ``never`` leaves it
to the kernel. Either way a record is only handed to the forwarder once it is durable under
the policy, so nothing is published that a crash could take back.

**Sequence numbers** are leased: the state file records the end of a block of sequence numbers
(fsynced) before any of them is used, and a restart resumes after the lease, so a frame id is
never reused, even after a power cut (a restart leaves a gap instead).

**Recovery** (at open) scans every segment, keeps every record whose checksum holds, skips
damaged bytes by resynchronising on the next magic, rewrites damaged segments with their valid
records only, and reports what it discarded (:class:`RecoveryReport`).

**Overflow policy**: before an append would exceed ``budget_bytes``, the oldest segment is
evicted: its raw frames are compacted into one aggregate frame (if a compactor is configured and
that at least halves the readings), older aggregates are dropped, alarms are carried over. The
aggregate record lists the sequence numbers it replaces, so a crash mid-compaction cannot
deliver both. Every compacted or dropped reading is counted.

**Delivery order**: alarms first, then frames freshest-first (a stack), then aggregates.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import struct
import time
import zlib
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Protocol

import msgspec

import bocage_native
from bocage.core.errors import BocageError
from bocage.core.logs import get_logger
from bocage.edge.counters import Counters
from bocage.edge.settings import FsyncPolicy

log = get_logger("bocage.edge.spool")

MAGIC = b"BSP1"
VERSION = 1
HEADER = struct.Struct("<4sBBHQqIII")
"""magic, version, kind, flags, sequence, time_ms, readings, payload length, crc32."""
DONE = struct.Struct("<QB3xI")
"""sequence, reason, padding, crc32 of the first 12 bytes."""
REPLACES = struct.Struct("<I")
FLAG_REPLACES = 0x1
"""The payload starts with ``u32 n`` and ``n`` u64 sequence numbers this record supersedes."""
SEQUENCE_LEASE = 4096
MAX_PAYLOAD = 64 * 1024 * 1024
_DONE_LOG_COMPACT_BYTES = 256 * 1024


class RecordKind(IntEnum):
    """What a record holds."""

    FRAME = 1
    AGGREGATE = 2
    ALARM = 3


class DoneReason(IntEnum):
    """Why a record left the spool."""

    DELIVERED = 1
    COMPACTED = 2
    DROPPED = 3
    CORRUPT = 4
    CARRIED = 5


class SpoolError(BocageError):
    """The spool cannot be opened or written."""


@dataclass(frozen=True, slots=True)
class Record:
    """A record handed to the forwarder."""

    slot: int
    """Position in this spool's append order (internal; hand it back to done/release)."""
    seq: int
    kind: RecordKind
    readings: int
    time_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Damage:
    """A run of bytes recovery could not read as records."""

    segment: str
    offset: int
    length: int
    reason: str


@dataclass(slots=True)
class RecoveryReport:
    """What opening (or verifying) a spool found."""

    segments: int = 0
    records: int = 0
    pending_records: int = 0
    pending_readings: int = 0
    damage: list[Damage] = field(default_factory=list)
    records_discarded: int = 0
    """Record starts (valid magic) whose checksum or length did not hold."""
    undecodable: list[int] = field(default_factory=list)
    """Sequence numbers of records whose checksum holds but whose frame does not decode."""
    repaired: bool = False

    @property
    def bytes_discarded(self) -> int:
        """Total damaged bytes."""
        return sum(d.length for d in self.damage)

    @property
    def clean(self) -> bool:
        """True if nothing was damaged."""
        return not self.damage and not self.undecodable

    def summary(self) -> str:
        """One line for logs and the ``verify`` command."""
        text = (
            f"{self.segments} segments, {self.records} records, {self.pending_records} pending "
            f"({self.pending_readings} readings)"
        )
        if self.clean:
            return text + ", no damage"
        return text + (
            f", DAMAGED: {self.bytes_discarded} bytes discarded in {len(self.damage)} runs "
            f"({self.records_discarded} broken records), {len(self.undecodable)} undecodable"
        )


class SpoolState(msgspec.Struct, kw_only=True):
    """Persisted in ``state``: what must survive segments being deleted."""

    version: int = 1
    seq_lease: int = 1
    """Every sequence number below this may have been used."""
    watermarks: list[tuple[str, str, int]] = msgspec.field(default_factory=list)
    """Newest timestamp accepted per (sensor, metric): replayable sources resume after it."""


class Compactor(Protocol):
    """Turns raw frames into one aggregate frame (see :mod:`bocage.edge.compaction`)."""

    def __call__(self, payloads: list[bytes], sequence: int) -> tuple[bytes, int] | None:
        """(aggregate frame bytes, reading count), or None if it cannot help."""


class _Segment:
    """Index of one segment file: everything but the payloads."""

    __slots__ = (
        "count", "done", "first_slot", "id", "kinds", "lengths", "offsets", "path", "pending",
        "readings", "seqs", "size",
    )

    def __init__(self, seg_id: int, path: Path, first_slot: int) -> None:
        self.id = seg_id
        self.path = path
        self.first_slot = first_slot
        self.size = 0
        self.count = 0
        self.pending = 0
        self.seqs = array.array("Q")
        self.offsets = array.array("Q")
        self.lengths = array.array("I")
        self.readings = array.array("I")
        self.kinds = bytearray()
        self.done = bytearray()

    def add(self, seq: int, offset: int, length: int, readings: int, kind: int) -> int:
        self.seqs.append(seq)
        self.offsets.append(offset)
        self.lengths.append(length)
        self.readings.append(readings)
        self.kinds.append(kind)
        self.done.append(0)
        self.count += 1
        self.pending += 1
        return self.count - 1

    def index_of(self, slot: int) -> int | None:
        i = slot - self.first_slot
        return i if 0 <= i < self.count else None


def _pack_record(  # noqa: PLR0917 - mirrors the header layout
    kind: int, flags: int, seq: int, time_ms: int, readings: int, payload: bytes
) -> bytes:
    head = HEADER.pack(MAGIC, VERSION, kind, flags, seq, time_ms, readings, len(payload), 0)
    crc = zlib.crc32(payload, zlib.crc32(head[:-4]))
    return head[:-4] + struct.pack("<I", crc) + payload


def _parse_record(data: bytes | memoryview, pos: int) -> tuple[tuple[int, ...], int] | str:
    """(header fields, end offset) of a valid record at ``pos``, or the reason it is not."""
    if len(data) - pos < HEADER.size:
        return "truncated header"
    fields = HEADER.unpack_from(data, pos)
    magic, version, kind, _flags, _seq, _t, _n, length, crc = fields
    if magic != MAGIC:
        return "bad magic"
    if version != VERSION or kind not in (1, 2, 3) or length > MAX_PAYLOAD:
        return "bad header"
    end = pos + HEADER.size + length
    if end > len(data):
        return "truncated record"
    view = memoryview(data)
    head_crc = zlib.crc32(view[pos : pos + HEADER.size - 4])
    if zlib.crc32(view[pos + HEADER.size : end], head_crc) != crc:
        return "checksum mismatch"
    return fields, end


def _split_replaces(payload: bytes) -> tuple[list[int], bytes]:
    (n,) = REPLACES.unpack_from(payload, 0)
    seqs = list(struct.unpack_from(f"<{n}Q", payload, REPLACES.size))
    return seqs, payload[REPLACES.size + 8 * n :]


ScannedRecord = tuple[tuple[int, ...], int, bytes]
"""(header fields, offset, payload) of a valid record."""


def scan_segment(data: bytes) -> tuple[list[ScannedRecord], list[tuple[int, int, str]], int]:
    """Every valid record of a segment's bytes, the damaged runs, and the broken record count.

    Returns ``(records, damage, broken)`` where each record is ``(header fields, offset,
    payload)`` and each damaged run is ``(offset, length, reason)``. After damage the scan
    resynchronises on the next magic whose record checks out (the crc32 makes a false match
    vanishingly unlikely), so one flipped byte costs one record, not the rest of the segment.
    """
    records: list[tuple[tuple[int, ...], int, bytes]] = []
    damage: list[tuple[int, int, str]] = []
    broken = 0
    pos = 0
    while pos < len(data):
        parsed = _parse_record(data, pos)
        if not isinstance(parsed, str):
            fields, end = parsed
            records.append((fields, pos, data[pos + HEADER.size : end]))
            pos = end
            continue
        reason = parsed
        if data[pos : pos + 4] == MAGIC:
            broken += 1
        nxt = pos + 1
        while True:
            nxt = data.find(MAGIC, nxt)
            if nxt < 0 or not isinstance(_parse_record(data, nxt), str):
                break
            broken += 1
            nxt += 1
        end = len(data) if nxt < 0 else nxt
        damage.append((pos, end - pos, reason))
        pos = end
    return records, damage, broken


class Spool:
    """An open spool directory. Not thread-safe: used from the agent's event loop."""

    def __init__(
        self,
        directory: str | Path,
        *,
        budget_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 0,
        fsync: FsyncPolicy = "interval",
        fsync_interval_s: float = 1.0,
        counters: Counters | None = None,
        compactor: Compactor | None = None,
        split_append_s: float = 0.0,
    ) -> None:
        self.dir = Path(directory)
        self.budget = budget_bytes
        self.segment_bytes = segment_bytes or min(16 << 20, max(64 << 10, budget_bytes // 32))
        self.fsync_policy = fsync
        self.fsync_interval_s = fsync_interval_s
        self.counters = counters or Counters()
        self.compactor = compactor
        self._split_append_s = split_append_s
        self._segments: list[_Segment] = []
        self._fds: dict[int, int] = {}
        self._active_fd = -1
        self._done_fd = -1
        self._done_size = 0
        self._lock_fd = -1
        self._next_seq = 1
        self._next_slot = 0
        self._lease_end = 1
        self.watermarks: dict[tuple[str, str], int] = {}
        self._stacks: dict[int, array.array[int]] = {k: array.array("Q") for k in RecordKind}
        self._unsynced: list[tuple[int, int]] = []
        self._inflight: dict[int, int] = {}
        self._last_sync = time.monotonic()
        self._evicting = False
        self.on_durable: Callable[[], None] | None = None
        """Called when records became durable (after a sync; at append under ``never``)."""
        self.report = RecoveryReport()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- opening and recovery

    def _lock(self) -> None:
        self._lock_fd = os.open(self.dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise SpoolError(f"spool {self.dir} is in use by another agent") from None

    def _recover(self) -> None:
        state = read_state(self.dir)
        for key in state.watermarks:
            self.watermarks[(key[0], key[1])] = key[2]
        done = read_done_log(self.dir / "done.log")
        report = self.report
        max_seq = 0
        replaced: set[int] = set()
        for seg_id, path in list_segments(self.dir):
            segment = _Segment(seg_id, path, self._next_slot)
            data = path.read_bytes()
            records, damage, broken = scan_segment(data)
            for offset, length, reason in damage:
                report.damage.append(Damage(path.name, offset, length, reason))
            report.records_discarded += broken
            if damage:
                data = self._rewrite(path, records)
                records, _, _ = scan_segment(data)
                report.repaired = True
            elif data and self.fsync_policy != "never":
                # a killed agent may have left records the kernel holds but never fsynced:
                # what recovery reads (watermarks, MQTT redeliveries judged against them) must
                # also survive a power cut from now on
                _fsync_file(path)
            for fields, offset, body in records:
                _m, _v, kind, flags, seq, _t, readings, length, _crc = fields
                payload = body
                segment.add(seq, offset, HEADER.size + length, readings, kind)
                max_seq = max(max_seq, seq)
                if flags & FLAG_REPLACES:
                    seqs, payload = _split_replaces(payload)
                    replaced.update(seqs)
                if kind == RecordKind.FRAME:
                    self._update_watermarks_from(seq, payload, report)
            segment.size = len(data)
            self._next_slot += segment.count
            report.records += segment.count
            self._segments.append(segment)
        for segment in self._segments:
            for i in range(segment.count):
                if segment.seqs[i] in done or segment.seqs[i] in replaced:
                    segment.done[i] = 1
                    segment.pending -= 1
        report.segments = len(self._segments)
        # pending records become visible in sequence order: the top of each stack is freshest
        for segment in self._segments:
            for i in range(segment.count):
                if not segment.done[i]:
                    self._stacks[segment.kinds[i]].append(segment.first_slot + i)
                    report.pending_records += 1
                    report.pending_readings += segment.readings[i]
        self._next_seq = max(state.seq_lease, max_seq + 1)
        self._lease_end = self._next_seq
        for segment in [s for s in self._segments if s.pending == 0]:
            self._delete(segment, write_state=False)
        self._write_state()
        self._rewrite_done_log()
        self._open_active()
        self._refresh_gauges()
        if not report.clean:
            log.warning(
                "spool recovered with damage",
                spool=str(self.dir),
                bytes_discarded=report.bytes_discarded,
                records_discarded=report.records_discarded,
                runs=len(report.damage),
            )

    def _update_watermarks_from(self, seq: int, payload: bytes, report: RecoveryReport) -> None:
        try:
            frame = bocage_native.decode_frame(payload)
        except bocage_native.FrameError:
            # checksummed by the spool yet not a frame: a bug upstream, not disk damage; the
            # record is kept (ingest quarantines it) and reported
            report.undecodable.append(seq)
            return
        for series in frame.series:
            if len(series):
                key = (series.sensor, series.metric)
                newest = int(series.timestamps.max())
                if newest > self.watermarks.get(key, -(1 << 62)):
                    self.watermarks[key] = newest

    def _rewrite(self, path: Path, records: list[tuple[tuple[int, ...], int, bytes]]) -> bytes:
        """Salvage: rewrite a damaged segment with its valid records only (atomic rename)."""
        out = bytearray()
        for fields, _offset, payload in records:
            _m, _v, kind, flags, seq, t, readings, _length, _crc = fields
            out += _pack_record(kind, flags, seq, t, readings, payload)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(out)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        self._fsync_dir()
        return bytes(out)

    def _open_active(self) -> None:
        seg_id = self._segments[-1].id + 1 if self._segments else 1
        path = self.dir / f"{seg_id:08d}.seg"
        self._active_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        segment = _Segment(seg_id, path, self._next_slot)
        segment.size = os.fstat(self._active_fd).st_size
        self._segments.append(segment)
        if self.fsync_policy != "never":
            self._fsync_dir()

    @property
    def _active(self) -> _Segment:
        return self._segments[-1]

    # ------------------------------------------------------------------------------ writing

    def next_sequence(self) -> int:
        """Allocate the next sequence number (frame id), renewing the lease when needed."""
        if self._next_seq >= self._lease_end:
            self._lease_end = self._next_seq + SEQUENCE_LEASE
            self._write_state()
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def append(
        self,
        kind: RecordKind,
        payload: bytes,
        *,
        seq: int,
        readings: int,
        time_ms: int,
        replaces: list[int] | None = None,
    ) -> int:
        """Write one record; returns its slot. It is handed to the forwarder once durable
        (see fsync policy; :attr:`durable_slots` tells when)."""
        flags = 0
        if replaces:
            flags |= FLAG_REPLACES
            prefix = REPLACES.pack(len(replaces)) + struct.pack(f"<{len(replaces)}Q", *replaces)
            payload = prefix + payload
        record = _pack_record(kind, flags, seq, time_ms, readings, payload)
        if self._active.count and self._active.size + len(record) > self.segment_bytes:
            self._roll()
        if not self._evicting and self.size_bytes + len(record) > self.budget:
            self._make_room(len(record))
        offset = self._active.size
        self._write(self._active_fd, record)
        self._active.size += len(record)
        self._active.add(seq, offset, len(record), readings, kind)
        slot = self._next_slot
        self._next_slot += 1
        if kind == RecordKind.ALARM or self.fsync_policy == "always":
            self._unsynced.append((kind, slot))
            self.sync()
        elif self.fsync_policy == "never":
            self._stacks[kind].append(slot)
            self._durable()
        else:
            self._unsynced.append((kind, slot))
        self._refresh_gauges()
        return slot

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        if self._split_append_s and len(view) > 8:
            # fault injection for the kill -9 tests: widen the window in which a record is torn
            half = len(view) // 2
            os.write(fd, view[:half])
            time.sleep(self._split_append_s)
            view = view[half:]
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def sync(self) -> None:
        """Make appended records durable and hand them to the forwarder."""
        if self.fsync_policy != "never" and self._active_fd >= 0:
            os.fsync(self._active_fd)
        if self._done_fd >= 0 and self.fsync_policy != "never":
            os.fsync(self._done_fd)
        for kind, slot in self._unsynced:
            self._stacks[kind].append(slot)
        self._unsynced.clear()
        self._last_sync = time.monotonic()
        self._refresh_gauges()
        self._durable()

    def _durable(self) -> None:
        if self.on_durable is not None:
            self.on_durable()

    @property
    def durable_slots(self) -> int:
        """Every record of a slot below this is durable under the fsync policy (records
        become durable in append order: the unsynced ones are always the newest)."""
        return self._next_slot - len(self._unsynced)

    def sync_due(self) -> bool:
        """True if records wait for their fsync and the interval has passed."""
        return bool(self._unsynced) and (
            time.monotonic() - self._last_sync >= self.fsync_interval_s
        )

    def _roll(self) -> None:
        self.sync()
        os.close(self._active_fd)
        self._active_fd = -1
        self._open_active()

    # ----------------------------------------------------------------------------- delivery

    def take(self, max_records: int, max_readings: int = 0) -> list[Record]:
        """Pop up to ``max_records`` pending records: alarms, then freshest frames, then
        aggregates. They are in flight until :meth:`done` or :meth:`release`."""
        out: list[Record] = []
        readings = 0
        for kind in (RecordKind.ALARM, RecordKind.FRAME, RecordKind.AGGREGATE):
            stack = self._stacks[kind]
            while stack and len(out) < max_records:
                if max_readings and out and readings >= max_readings:
                    return out
                slot = stack.pop()
                found = self._locate(slot)
                if found is None:
                    continue
                segment, i = found
                if segment.done[i] or slot in self._inflight:
                    continue
                record = self._read(segment, i)
                if record is None:
                    continue
                self._inflight[slot] = record.readings
                out.append(record)
                readings += record.readings
        self._refresh_gauges()
        return out

    def release(self, records: list[Record]) -> None:
        """Put back records whose publication failed; they keep their place (freshest on top)."""
        for record in sorted(records, key=lambda r: r.slot):
            self._inflight.pop(record.slot, None)
            if self._locate(record.slot) is None:
                # evicted by the overflow policy while in flight: counted now, not twice
                self.counters.dropped[_overflow_reason(record.kind)] += record.readings
                continue
            self._stacks[record.kind].append(record.slot)
        self._refresh_gauges()

    def done(self, record: Record, reason: DoneReason = DoneReason.DELIVERED) -> None:
        """Record that ``record`` left the spool (its segment goes once nothing is pending)."""
        self._inflight.pop(record.slot, None)
        found = self._locate(record.slot)
        if found is not None:
            self._done_at(*found, reason)

    def _done_at(self, segment: _Segment, i: int, reason: DoneReason) -> None:
        if segment.done[i]:
            return
        seq = segment.seqs[i]
        segment.done[i] = 1
        segment.pending -= 1
        entry = DONE.pack(seq, reason, 0)
        entry = entry[:-4] + struct.pack("<I", zlib.crc32(entry[:12]))
        if self._done_fd < 0:
            self._done_fd = os.open(self.dir / "done.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(self._done_fd, entry)
        self._done_size += len(entry)
        if segment.pending == 0 and segment is not self._active:
            self._delete(segment)
        if self._done_size > _DONE_LOG_COMPACT_BYTES:
            self._rewrite_done_log()
        self._refresh_gauges()

    def _locate(self, slot: int) -> tuple[_Segment, int] | None:
        k = bisect_right(self._segments, slot, key=lambda s: s.first_slot) - 1
        if k < 0:
            return None
        segment = self._segments[k]
        i = segment.index_of(slot)
        return None if i is None else (segment, i)

    def _read(self, segment: _Segment, i: int) -> Record | None:
        fd = self._fds.get(segment.id)
        if fd is None:
            if len(self._fds) >= 8:
                os.close(self._fds.pop(next(iter(self._fds))))
            fd = self._fds[segment.id] = os.open(segment.path, os.O_RDONLY)
        data = os.pread(fd, segment.lengths[i], segment.offsets[i])
        parsed = _parse_record(data, 0)
        if isinstance(parsed, str):
            # the disk changed under us since recovery: count it, never send garbage
            log.error("spool record unreadable", seq=segment.seqs[i], reason=parsed)
            self.counters.dropped["corrupt"] += segment.readings[i]
            self._done_at(segment, i, DoneReason.CORRUPT)
            return None
        fields, _end = parsed
        payload = data[HEADER.size :]
        if fields[3] & FLAG_REPLACES:
            _, payload = _split_replaces(payload)
        slot = segment.first_slot + i
        return Record(slot, fields[4], RecordKind(fields[2]), fields[6], fields[5], payload)

    # ------------------------------------------------------------------------------ overflow

    def _make_room(self, needed: int) -> None:
        self._evicting = True
        try:
            while self.size_bytes + needed > self.budget:
                if len(self._segments) < 2:
                    if not self._active.count:
                        log.error("spool budget smaller than one record", budget=self.budget)
                        return
                    self._roll()
                    continue
                self._evict(self._segments[0])
        finally:
            self._evicting = False

    def _evict(self, segment: _Segment) -> None:
        waiting = [
            i for i in range(segment.count)
            if not segment.done[i] and segment.first_slot + i not in self._inflight
        ]
        raw = [i for i in waiting if segment.kinds[i] == RecordKind.FRAME]
        old = [i for i in waiting if segment.kinds[i] == RecordKind.AGGREGATE]
        alarms = [i for i in waiting if segment.kinds[i] == RecordKind.ALARM]
        raw_readings = sum(segment.readings[i] for i in raw)
        compacted = False
        if raw and self.compactor is not None:
            records = [r for r in (self._read(segment, i) for i in raw) if r is not None]
            raw = [i for i in raw if not segment.done[i]]  # minus any found corrupt
            raw_readings = sum(r.readings for r in records)
            seq = self.next_sequence()
            result = self.compactor([r.payload for r in records], seq)
            if result is not None and result[1] * 2 <= raw_readings:
                payload, readings = result
                newest = max(r.time_ms for r in records)
                self.append(
                    RecordKind.AGGREGATE, payload, seq=seq, readings=readings, time_ms=newest,
                    replaces=[r.seq for r in records],
                )
                self.counters.compacted += raw_readings
                self.counters.compacted_into += readings
                compacted = True
                for i in raw:
                    self._done_at(segment, i, DoneReason.COMPACTED)
        if not compacted:
            self.counters.dropped["overflow_raw"] += raw_readings
            for i in raw:
                self._done_at(segment, i, DoneReason.DROPPED)
        self.counters.dropped["overflow_aggregate"] += sum(segment.readings[i] for i in old)
        for i in old:
            self._done_at(segment, i, DoneReason.DROPPED)
        for i in alarms:
            record = self._read(segment, i)
            if record is not None:
                self.append(
                    RecordKind.ALARM, record.payload, seq=self.next_sequence(), readings=0,
                    time_ms=record.time_ms, replaces=[record.seq],
                )
                self.done(record, DoneReason.CARRIED)
        if segment in self._segments:
            # records still in flight are resolved by their acknowledgement (counted delivered)
            # or by release() (counted dropped): never both, never neither
            self._delete(segment)
        log.warning(
            "spool over budget: evicted the oldest segment",
            segment=segment.path.name,
            compacted=compacted,
            raw_readings=raw_readings,
            budget=self.budget,
        )

    # ------------------------------------------------------------------------- housekeeping

    def _delete(self, segment: _Segment, *, write_state: bool = True) -> None:
        if write_state:
            # the watermarks of its frames must survive the segment
            self._write_state()
        fd = self._fds.pop(segment.id, None)
        if fd is not None:
            os.close(fd)
        segment.path.unlink(missing_ok=True)
        self._segments.remove(segment)
        if self.fsync_policy != "never":
            self._fsync_dir()

    def _write_state(self) -> None:
        state = SpoolState(
            seq_lease=max(self._lease_end, self._next_seq),
            watermarks=[(s, m, t) for (s, m), t in sorted(self.watermarks.items())],
        )
        body = msgspec.msgpack.encode(state)
        data = struct.pack("<I", zlib.crc32(body)) + body
        tmp = self.dir / "state.tmp"
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.dir / "state")
        self._fsync_dir()

    def _rewrite_done_log(self) -> None:
        out = bytearray()
        for segment in self._segments:
            for i in range(segment.count):
                if segment.done[i]:
                    entry = DONE.pack(segment.seqs[i], DoneReason.DELIVERED, 0)
                    out += entry[:-4] + struct.pack("<I", zlib.crc32(entry[:12]))
        if self._done_fd >= 0:
            os.close(self._done_fd)
            self._done_fd = -1
        tmp = self.dir / "done.tmp"
        with tmp.open("wb") as f:
            f.write(out)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.dir / "done.log")
        self._fsync_dir()
        self._done_size = len(out)

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _refresh_gauges(self) -> None:
        self.counters.backlog_frames = self.backlog_frames
        self.counters.spool_bytes = self.size_bytes

    def note_watermarks(self, watermarks: dict[tuple[str, str], int]) -> None:
        """Remember the newest accepted time per series (called with each appended frame)."""
        for key, t in watermarks.items():
            if t > self.watermarks.get(key, -(1 << 62)):
                self.watermarks[key] = t

    # -------------------------------------------------------------------------------- views

    @property
    def size_bytes(self) -> int:
        """Bytes used on disk (segments and done log)."""
        return sum(s.size for s in self._segments) + self._done_size

    @property
    def backlog_frames(self) -> int:
        """Records not yet delivered (pending, unsynced or in flight)."""
        return sum(s.pending for s in self._segments)

    @property
    def backlog_readings(self) -> int:
        """Readings in records not yet delivered."""
        total = 0
        for segment in self._segments:
            if segment.pending:
                pairs = zip(segment.readings, segment.done, strict=True)
                total += sum(n for n, d in pairs if not d)
        return total

    @property
    def inflight(self) -> int:
        """Records handed to the forwarder and not yet resolved."""
        return len(self._inflight)

    def pending_visible(self) -> int:
        """Records the forwarder could take now (upper bound: stacks may hold stale entries)."""
        return sum(len(s) for s in self._stacks.values())

    def close(self) -> None:
        """Sync and release the spool."""
        if self._active_fd >= 0:
            with contextlib.suppress(OSError):
                self.sync()
            os.close(self._active_fd)
            self._active_fd = -1
        if self._done_fd >= 0:
            os.close(self._done_fd)
            self._done_fd = -1
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _overflow_reason(kind: RecordKind) -> str:
    return "overflow_aggregate" if kind == RecordKind.AGGREGATE else "overflow_raw"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_segments(directory: Path) -> Iterator[tuple[int, Path]]:
    """(id, path) of every segment file, oldest first."""
    found = []
    for path in directory.glob("*.seg"):
        with contextlib.suppress(ValueError):
            found.append((int(path.stem), path))
    return iter(sorted(found))


def read_state(directory: Path) -> SpoolState:
    """The persisted state, or a fresh one if missing or unreadable (logged)."""
    path = directory / "state"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SpoolState()
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] == zlib.crc32(data[4:]):
        with contextlib.suppress(msgspec.DecodeError):
            return msgspec.msgpack.decode(data[4:], type=SpoolState)
    log.error("spool state unreadable; sequences resume after the highest found", path=str(path))
    return SpoolState()


def read_done_log(path: Path) -> set[int]:
    """Sequence numbers recorded as done (entries with a bad checksum are ignored)."""
    done: set[int] = set()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return done
    for pos in range(0, len(data) - DONE.size + 1, DONE.size):
        seq, _reason, crc = DONE.unpack_from(data, pos)
        if zlib.crc32(data[pos : pos + 12]) == crc:
            done.add(seq)
    return done

