"""The quarantine: messages ingest refuses, kept with their reason in a stream and a table.

Every refused message is published, untouched, on ``bocage-quarantine.<territory>.<reason>``
(stream ``BOCAGE_QUARANTINE``) with headers saying why and where it came from, and a row is
written to the ``quarantine`` table (payload included) so operators can query it. Only then is
the original acknowledged: a refused message is never lost and never blocks the others.

:func:`list_entries` and :func:`replay` back the ``bocage quarantine list|replay`` commands.
Replay republishes a quarantined payload on its original subject, for example after the
missing gateway was added to the register; ingest checks it again (and quarantines it again
if it still fails), and its frame-id deduplication makes replaying twice harmless.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from bocage.core import subjects
from bocage.store import Store

REASON_HEADER: Final = "Bocage-Quarantine-Reason"
DETAIL_HEADER: Final = "Bocage-Quarantine-Detail"
SUBJECT_HEADER: Final = "Bocage-Original-Subject"
MSG_ID_HEADER: Final = "Bocage-Original-Msg-Id"
STREAM_SEQ_HEADER: Final = "Bocage-Original-Stream-Seq"

QUARANTINE_COLUMNS: Final = (
    "territory",
    "gateway",
    "subject",
    "kind",
    "reason",
    "detail",
    "frame_id",
    "msg_id",
    "stream_seq",
    "quarantine_seq",
    "size",
    "payload",
)


@dataclass(slots=True)
class Refused:
    """A message ingest refused, waiting to be quarantined."""

    msg: Msg
    reason: str
    detail: str
    territory: str = "unknown"
    gateway: str = ""
    kind: str = ""
    frame_id: str = ""
    quarantine_seq: int = 0
    """Sequence in the quarantine stream, once published."""


def _header_safe(text: str, limit: int = 512) -> str:
    """A header value: one line of ASCII (frame details may quote arbitrary bytes)."""
    one_line = text.replace("\r", " ").replace("\n", " ")[:limit]
    return one_line.encode("ascii", "backslashreplace").decode("ascii")


def _stream_seq(msg: Msg) -> int:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # not a JetStream message (tests publishing core NATS)
        return 0


async def publish(js: JetStreamContext, refused: Refused) -> None:
    """Publish one refused message to the quarantine stream (idempotent per original message)."""
    msg = refused.msg
    original_id = (msg.headers or {}).get(subjects.MSG_ID_HEADER, "")
    seq = _stream_seq(msg)
    # One quarantine entry per stream message, whatever the number of attempts.
    key = f"{seq}" if seq else hashlib.sha256(msg.data).hexdigest()[:32]
    headers = {
        subjects.MSG_ID_HEADER: f"q:{msg.subject}:{key}",
        REASON_HEADER: refused.reason,
        DETAIL_HEADER: _header_safe(refused.detail),
        SUBJECT_HEADER: _header_safe(msg.subject, 256),
        MSG_ID_HEADER: _header_safe(original_id, 256),
        STREAM_SEQ_HEADER: str(seq),
    }
    ack = await js.publish(
        subjects.quarantine_subject(refused.territory, refused.reason), msg.data, headers=headers
    )
    refused.quarantine_seq = int(ack.seq)


def table_rows(refused: Sequence[Refused], payload_max: int) -> list[tuple[Any, ...]]:
    """Rows of the ``quarantine`` table (columns :data:`QUARANTINE_COLUMNS`)."""
    rows = []
    for r in refused:
        msg = r.msg
        rows.append(
            (
                r.territory,
                r.gateway,
                msg.subject,
                r.kind,
                r.reason,
                r.detail[:4096],
                r.frame_id,
                (msg.headers or {}).get(subjects.MSG_ID_HEADER, ""),
                _stream_seq(msg),
                r.quarantine_seq,
                len(msg.data),
                bytes(msg.data[:payload_max]),
            )
        )
    return rows


class QuarantineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One quarantined message as listed by ``bocage quarantine list``."""

    quarantine_seq: int
    received_at: str
    territory: str
    gateway: str
    subject: str
    kind: str
    reason: str
    detail: str
    frame_id: str
    size: int


def list_entries(
    store: Store, *, territory: str | None = None, reason: str | None = None, limit: int = 100
) -> list[QuarantineEntry]:
    """Most recent quarantined messages first, optionally for one territory and/or reason."""
    where = ["1"]
    params: dict[str, Any] = {"limit": limit}
    if territory:
        where.append("territory = {territory:String}")
        params["territory"] = territory
    if reason:
        where.append("reason = {reason:String}")
        params["reason"] = reason
    rows = store.query_dicts(
        "SELECT quarantine_seq, toString(received_at) AS received_at, territory, gateway, subject, "
        f"kind, reason, detail, frame_id, size FROM {store.table('quarantine')} "
        f"WHERE {' AND '.join(where)} ORDER BY received_at DESC, quarantine_seq DESC "
        "LIMIT {limit:UInt32}",
        params,
    )
    return [msgspec.convert(row, QuarantineEntry) for row in rows]


class ReplayReport(msgspec.Struct, kw_only=True):
    """What :func:`replay` did."""

    replayed: list[int] = msgspec.field(default_factory=list)
    """Quarantine sequences republished on their original subject."""
    missing: list[int] = msgspec.field(default_factory=list)
    """Sequences no longer in the quarantine stream (expired or purged)."""
    skipped: list[int] = msgspec.field(default_factory=list)
    """Sequences whose original subject is not a gateway subject (nothing to replay to)."""


async def replay(
    js: JetStreamContext, sequences: Sequence[int], *, dry_run: bool = False
) -> ReplayReport:
    """Republish quarantined messages (by quarantine stream sequence) on their original subject.

    The republished message gets ``Nats-Msg-Id = replay:<quarantine seq>`` so that replaying
    the same entry twice within the stream's duplicate window is dropped by JetStream, and
    ingest's frame ledger makes a later replay of an already stored frame a no-op.
    """
    report = ReplayReport()
    for seq in sequences:
        try:
            raw = await js.get_msg(subjects.QUARANTINE_STREAM, seq)
        except NotFoundError:
            report.missing.append(seq)
            continue
        headers = raw.headers or {}
        original = headers.get(SUBJECT_HEADER, "")
        if subjects.parse(original) is None:
            report.skipped.append(seq)
            continue
        if not dry_run:
            await js.publish(
                original,
                raw.data or b"",
                headers={subjects.MSG_ID_HEADER: f"replay:{seq}"},
                stream=subjects.STREAM,
            )
        report.replayed.append(seq)
    return report


def select_sequences(
    store: Store, *, territory: str | None = None, reason: str | None = None, limit: int = 10_000
) -> list[int]:
    """Quarantine sequences matching the filters, oldest first (what ``replay --all`` replays)."""
    entries = list_entries(store, territory=territory, reason=reason, limit=limit)
    return sorted({e.quarantine_seq for e in entries if e.quarantine_seq > 0})
