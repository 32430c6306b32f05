"""``bocage edge verify``: check a spool without touching it, or salvage it.

Checks every record's checksum, that every frame decodes, and that every frame's identity
matches the record it sits in; reports damaged byte runs. ``repair=True`` opens the spool the
way the agent does (taking its lock), which rewrites damaged segments with their valid records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bocage_native
from bocage.core.errors import BocageError
from bocage.edge.spool import (
    FLAG_REPLACES,
    Damage,
    RecordKind,
    RecoveryReport,
    Spool,
    _split_replaces,
    list_segments,
    read_done_log,
    read_state,
    scan_segment,
)


def inspect(directory: Path) -> tuple[RecoveryReport, dict[str, Any]]:
    """Read-only scan of a spool: the recovery report and extra facts (sequence, backlog)."""
    if not directory.is_dir():
        raise BocageError(f"{directory} is not a spool directory")
    state = read_state(directory)
    done = read_done_log(directory / "done.log")
    report = RecoveryReport()
    replaced: set[int] = set()
    records: list[tuple[int, int, int]] = []
    max_seq = 0
    for _seg_id, path in list_segments(directory):
        report.segments += 1
        found, damage, broken = scan_segment(path.read_bytes())
        report.records_discarded += broken
        report.damage.extend(Damage(path.name, o, n, r) for o, n, r in damage)
        for fields, _offset, body in found:
            _m, _v, kind, flags, seq, _t, readings, _length, _crc = fields
            payload = body
            if flags & FLAG_REPLACES:
                seqs, payload = _split_replaces(payload)
                replaced.update(seqs)
            if kind in (RecordKind.FRAME, RecordKind.AGGREGATE):
                try:
                    frame = bocage_native.decode_frame(payload)
                except bocage_native.FrameError:
                    report.undecodable.append(seq)
                else:
                    if frame.sequence != seq or frame.reading_count != readings:
                        report.undecodable.append(seq)
            records.append((seq, kind, readings))
            max_seq = max(max_seq, seq)
    report.records = len(records)
    for seq, _kind, readings in records:
        if seq not in done and seq not in replaced:
            report.pending_records += 1
            report.pending_readings += readings
    extra = {"next_sequence": max(state.seq_lease, max_seq + 1), "series": len(state.watermarks)}
    return report, extra


def verify(directory: Path, *, repair: bool = False) -> dict[str, Any]:
    """Check (and with ``repair`` salvage) the spool in ``directory``; a JSON-able report."""
    report, extra = inspect(directory)
    repaired = False
    if repair and not report.clean:
        spool = Spool(directory, budget_bytes=1 << 62)
        spool.close()
        repaired = spool.report.repaired
    return {
        "summary": report.summary(),
        "clean": report.clean,
        "segments": report.segments,
        "records": report.records,
        "pending_records": report.pending_records,
        "pending_readings": report.pending_readings,
        "bytes_discarded": report.bytes_discarded,
        "records_discarded": report.records_discarded,
        "damage": [
            {"segment": d.segment, "offset": d.offset, "length": d.length, "reason": d.reason}
            for d in report.damage
        ],
        "undecodable": report.undecodable,
        "repaired": repaired,
        **extra,
    }
