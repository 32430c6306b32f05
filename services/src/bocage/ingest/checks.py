"""Checks of a decoded frame against its subject and the register.

A frame that fails a check is quarantined with one short reason code (the ``reason`` label of
``bocage_ingest_quarantined_total``); nothing here raises on bad input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from bocage.core.register import Register
from bocage.store.register_rows import effective_retention

REASONS: Final = (
    "subject",  # not a bocage.<territory>.<gateway>.<kind> subject
    "decode",  # truncated, corrupt, bad checksum, unknown version
    "territory_mismatch",  # territory inside the frame differs from the subject's
    "gateway_mismatch",  # gateway inside the frame differs from the subject's
    "unknown_territory",
    "unknown_gateway",  # gateway not registered in that territory
    "unknown_sensor",  # a series names a sensor this gateway does not have
    "timestamp_absurd",  # before IngestSettings.oldest_reading
    "timestamp_future",  # later than now + future_tolerance
    "event",  # an alarm or status message that does not decode / match
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message is quarantined."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class GatewayEntry:
    """What ingest needs to know about a registered gateway, precomputed once per register."""

    territory: str
    gateway: str
    retention: dict[str, int]
    """Effective retention (days) of each of its sensors, keyed by sensor id."""


class RegisterIndex:
    """Constant-time lookups of the register for the hot path."""

    def __init__(self, register: Register) -> None:
        self.territories = frozenset(t.code for t in register.territories)
        self.gateways: dict[tuple[str, str], GatewayEntry] = {}
        for territory in register.territories:
            for gateway in territory.gateways:
                self.gateways[(territory.code, gateway.id)] = GatewayEntry(
                    territory.code,
                    gateway.id,
                    {s.id: effective_retention(s) for s in gateway.sensors},
                )


def epoch_ms(date: str) -> int:
    """Epoch milliseconds of an ISO date (UTC)."""
    parsed = datetime.fromisoformat(date)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def check_identity(
    index: RegisterIndex, subject_territory: str, subject_gateway: str, territory: str, gateway: str
) -> Rejection | GatewayEntry:
    """The registered gateway a message may come from, or why it may not."""
    if territory != subject_territory:
        return Rejection(
            "territory_mismatch", f"frame says {territory!r}, subject says {subject_territory!r}"
        )
    if gateway != subject_gateway:
        return Rejection(
            "gateway_mismatch", f"frame says {gateway!r}, subject says {subject_gateway!r}"
        )
    if territory not in index.territories:
        return Rejection("unknown_territory", f"territory {territory!r} is not registered")
    entry = index.gateways.get((territory, gateway))
    if entry is None:
        return Rejection(
            "unknown_gateway", f"gateway {gateway!r} is not registered in {territory!r}"
        )
    return entry


def check_sensors(entry: GatewayEntry, sensors: list[str]) -> Rejection | None:
    """Every series must name a sensor of that gateway."""
    unknown = sorted({s for s in sensors if s not in entry.retention})
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:5])
        return Rejection(
            "unknown_sensor", f"{len(unknown)} sensor(s) not on gateway {entry.gateway!r}: {shown}"
        )
    return None


def check_timestamps(
    timestamps: npt.NDArray[np.int64],
    *,
    oldest_ms: int,
    future_tolerance_ms: int,
    now_ms: int | None = None,
) -> Rejection | None:
    """Readings must be after ``oldest_ms`` and not later than now + tolerance."""
    if len(timestamps) == 0:
        return None
    low = int(timestamps.min())
    high = int(timestamps.max())
    if low < oldest_ms:
        return Rejection("timestamp_absurd", f"reading at {low} ms is before {oldest_ms} ms")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if high > now + future_tolerance_ms:
        return Rejection(
            "timestamp_future", f"reading at {high} ms is {(high - now) / 1000:.0f} s in the future"
        )
    return None
