"""Messages other than frames on the wire: alarms and gateway status (msgpack-encoded).

Frames (batches of readings) are binary, encoded by ``bocage_native``; these small events are
msgspec Structs encoded with msgpack. New fields must have defaults; receivers ignore unknown
fields.
"""

from __future__ import annotations

from typing import Literal

import msgspec

AlarmKind = Literal["threshold", "tamper", "device_fault", "spool_overflow"]


class Alarm(msgspec.Struct, frozen=True, kw_only=True):
    """Something a field or municipal operator must know now; sent ahead of normal data."""

    territory: str
    gateway: str
    sensor: str
    kind: AlarmKind
    time_ms: int
    message: str = ""
    metric: str | None = None
    value: float | None = None


class GatewayStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Periodic health and sobriety accounting of a gateway."""

    territory: str
    gateway: str
    time_ms: int
    readings_accepted: int = 0
    readings_rejected: int = 0
    readings_dropped: int = 0
    frames_spooled: int = 0
    frames_sent: int = 0
    backlog_frames: int = 0
    bytes_sent: int = 0
    messages_sent: int = 0
    radio_wakeups: int = 0
    energy_mj: float = 0.0
    battery_pct: float | None = None
    link: str = "ethernet"
    agent_version: str = ""


_encoder = msgspec.msgpack.Encoder()


def encode(event: Alarm | GatewayStatus) -> bytes:
    """msgpack bytes of an event."""
    return _encoder.encode(event)


def decode_alarm(data: bytes) -> Alarm:
    """Decode an alarm (raises msgspec.ValidationError / DecodeError on bad input)."""
    return msgspec.msgpack.decode(data, type=Alarm)


def decode_status(data: bytes) -> GatewayStatus:
    """Decode a gateway status event."""
    return msgspec.msgpack.decode(data, type=GatewayStatus)
