"""The spool: durable records, recovery from damage, sequences never reused, overflow policy."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import bocage_native
from bocage.cli import main as bocage
from bocage.edge.compaction import WindowCompactor
from bocage.edge.counters import Counters
from bocage.edge.reading import QUALITY_AGGREGATE
from bocage.edge.spool import HEADER, DoneReason, RecordKind, Spool, SpoolError

T0 = 1_718_928_000_000


def frame(
    seq: int, n: int = 100, *, sensor: str = "lamp-1", start: int = T0, noisy: bool = False
) -> bytes:
    """A frame of ``n`` readings; all frames of one ``n`` have the same size unless noisy."""
    ts = np.arange(start, start + n * 1000, 1000, dtype=np.int64)
    if noisy:  # realistic entropy (~2 bytes a value), so that a budget fills up
        values = np.round(1000 + np.random.default_rng(seq).normal(0, 50, n), 1)
    else:
        values = np.full(n, 1000.5)
    series = [(sensor, "power", ts, values, None)]
    return bocage_native.encode_frame("29042", "gw-1", seq, T0, series)


def open_spool(path: Path, **kw: object) -> Spool:
    kw.setdefault("fsync", "never")
    return Spool(path, **kw)  # type: ignore[arg-type]


def append_frames(spool: Spool, count: int, n: int = 100) -> list[int]:
    seqs = []
    for _ in range(count):
        seq = spool.next_sequence()
        spool.append(RecordKind.FRAME, frame(seq, n), seq=seq, readings=n, time_ms=T0)
        seqs.append(seq)
    spool.sync()
    return seqs


def drain(spool: Spool) -> list[int]:
    out = []
    while batch := spool.take(16):
        for record in batch:
            spool.done(record, DoneReason.DELIVERED)
            out.append(record.seq)
    return out


def test_records_survive_a_reopen_and_come_out_freshest_first(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    seqs = append_frames(spool, 5)
    spool.close()
    spool = open_spool(tmp_path)
    assert spool.report.pending_records == 5
    assert spool.report.clean
    records = spool.take(10)
    assert [r.seq for r in records] == sorted(seqs, reverse=True)
    assert all(bocage_native.peek_header(r.payload).sequence == r.seq for r in records)
    spool.close()


def test_alarms_overtake_frames(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    append_frames(spool, 3)
    seq = spool.next_sequence()
    spool.append(RecordKind.ALARM, b"alarm", seq=seq, readings=0, time_ms=T0)
    assert spool.take(1)[0].kind == RecordKind.ALARM
    spool.close()


def test_delivered_records_do_not_come_back(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, segment_bytes=4096, budget_bytes=1 << 20)
    append_frames(spool, 20)
    delivered = drain(spool)
    assert len(delivered) == 20
    spool.close()
    spool = open_spool(tmp_path)
    assert spool.report.pending_records == 0
    assert spool.take(10) == []
    # delivered segments were deleted; only the (empty) active one stays
    assert len(list(tmp_path.glob("*.seg"))) <= 2
    spool.close()


def test_released_records_are_offered_again(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    append_frames(spool, 3)
    taken = spool.take(2)
    spool.release(taken)
    assert [r.seq for r in spool.take(3)] == [3, 2, 1]
    spool.close()


def test_sequence_numbers_are_never_reused(tmp_path: Path) -> None:
    used: set[int] = set()
    for _ in range(4):
        spool = open_spool(tmp_path, segment_bytes=4096, budget_bytes=1 << 20)
        seqs = append_frames(spool, 3)
        assert used.isdisjoint(seqs)
        used.update(seqs)
        drain(spool)  # everything delivered: the segments are gone, the lease remains
        spool.close()


def test_one_agent_per_spool(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    with pytest.raises(SpoolError, match="in use"):
        open_spool(tmp_path)
    spool.close()


def _segment_with_records(tmp_path: Path, count: int) -> tuple[Path, list[int]]:
    spool = open_spool(tmp_path, segment_bytes=1 << 20, budget_bytes=1 << 24)
    seqs = append_frames(spool, count)
    spool.close()
    (segment,) = [p for p in tmp_path.glob("*.seg") if p.stat().st_size]
    return segment, seqs


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size + 10, -5])
def test_truncated_tail_keeps_every_complete_record(tmp_path: Path, cut: int) -> None:
    segment, seqs = _segment_with_records(tmp_path, 10)
    size = segment.stat().st_size
    record = size // 10  # identical frames: identical record sizes
    cut = record + 5 if cut < 0 else cut  # -5: one whole record and 5 bytes of the one before
    kept = 10 - -(-cut // record)
    os.truncate(segment, size - cut)
    spool = open_spool(tmp_path)
    report = spool.report
    assert report.pending_records == kept
    assert not report.clean
    assert report.bytes_discarded == (size - cut) - kept * record
    assert sorted(r.seq for r in spool.take(20)) == seqs[:kept]
    spool.close()
    # the damaged segment was rewritten: a second recovery finds nothing to discard
    spool = open_spool(tmp_path)
    assert spool.report.clean
    spool.close()


def test_flipped_bytes_cost_only_the_damaged_record(tmp_path: Path) -> None:
    segment, seqs = _segment_with_records(tmp_path, 10)
    data = bytearray(segment.read_bytes())
    record = len(data) // 10
    data[3 * record + HEADER.size + 20] ^= 0xFF  # inside the 4th record's payload
    segment.write_bytes(bytes(data))
    spool = open_spool(tmp_path)
    report = spool.report
    assert report.records_discarded == 1
    assert len(report.damage) == 1
    assert report.damage[0].offset == 3 * record
    assert report.damage[0].length == record
    assert sorted(r.seq for r in spool.take(20)) == seqs[:3] + seqs[4:]
    spool.close()


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """The CLI configures the root logger; put it back so later tests log normally."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("keep_logging")
def test_verify_reports_and_repairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    segment, _ = _segment_with_records(tmp_path, 10)
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0x55
    segment.write_bytes(bytes(data))
    assert bocage(["edge", "verify", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["records_discarded"] == 1
    assert report["pending_records"] == 9
    assert not report["clean"]
    assert bocage(["edge", "verify", str(tmp_path), "--repair"]) == 1
    assert "repaired" in capsys.readouterr().out
    assert bocage(["edge", "verify", str(tmp_path)]) == 0
    assert "no damage" in capsys.readouterr().out


def test_overflow_compacts_old_raw_frames_then_drops(tmp_path: Path) -> None:
    counters = Counters()
    compactor = WindowCompactor("29042", "gw-1", 900_000, {"lamp-1": "lighting_cabinet"})
    spool = open_spool(
        tmp_path, budget_bytes=256 * 1024, segment_bytes=16 * 1024, counters=counters,
        compactor=compactor,
    )
    appended = 0
    for i in range(400):
        seq = spool.next_sequence()
        payload = frame(seq, 500, start=T0 + i * 500_000, noisy=True)
        spool.append(RecordKind.FRAME, payload, seq=seq, readings=500, time_ms=T0)
        appended += 500
        assert spool.size_bytes <= 256 * 1024
    spool.sync()
    assert counters.compacted > 0
    assert counters.compacted_into * 2 <= counters.compacted
    backlog = 0
    aggregates = 0
    while batch := spool.take(64):
        for record in batch:
            backlog += record.readings
            if record.kind == RecordKind.AGGREGATE:
                aggregates += record.readings
                decoded = bocage_native.decode_frame(record.payload)
                assert all((s.quality == QUALITY_AGGREGATE).all() for s in decoded.series)
            spool.done(record)
    # nothing unaccounted: every appended reading is pending, compacted or dropped
    accounted = backlog + counters.compacted + counters.dropped_total
    assert appended + counters.compacted_into == accounted
    assert aggregates <= counters.compacted_into
    spool.close()
