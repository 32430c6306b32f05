"""W3C Trace Context (``traceparent``) on the wire, without the OpenTelemetry SDK.

A gateway is a low-power device: it does not run a tracer. The trace id of a frame is
*derived* from its frame id (``territory:gateway:sequence``, the ``Nats-Msg-Id``), so the
datacenter puts a frame's ingest in the frame's trace without any header on the wire
(:func:`message_parent`), and every retry of one frame belongs to the same trace without
storing anything in the spool. A gateway may also stamp each message with a ``traceparent``
header (https://www.w3.org/TR/trace-context/; ``forward.traceparent``, off by default: about
70 bytes a message on metered links)::

    traceparent: 00-<trace id: 32 hex>-<parent span id: 16 hex>-01

with the same derived trace id and a random span id per publish attempt (each attempt is one
"publish" of that trace).

Parsing is strict (version ``00`` layout, lower-case hex, non-zero ids) and never raises: an
invalid or missing header is simply no trace context. Higher versions are accepted as the
specification asks (their first 55 characters are read as version 00).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Final

HEADER: Final = "traceparent"
"""Header name (NATS headers, as in HTTP; lower case as the specification writes it)."""

_INVALID_TRACE_ID: Final = "0" * 32
_INVALID_SPAN_ID: Final = "0" * 16
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace_id>[0-9a-f]{32})-(?P<span_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>.*)",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A parsed ``traceparent``: ids as lower-case hex, flags as an int."""

    trace_id: str
    span_id: str
    flags: int = 1

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 1)

    def header(self) -> str:
        """The version-00 header value."""
        return format_traceparent(self.trace_id, self.span_id, sampled=self.sampled)


def new_span_id() -> str:
    """A random, non-zero 8-byte span id (16 hex)."""
    while True:
        span_id = secrets.token_hex(8)
        if span_id != _INVALID_SPAN_ID:
            return span_id


def frame_trace_id(frame_id: str) -> str:
    """The trace id of a frame: the first 16 bytes of SHA-256(frame id), never all zero.

    Stable across retries and restarts (the spool keeps the sequence, hence the frame id), so
    the attempts to publish one frame form one trace; distinct frames get unrelated ids.
    """
    trace_id = hashlib.sha256(frame_id.encode()).hexdigest()[:32]
    return trace_id if trace_id != _INVALID_TRACE_ID else "0" * 31 + "1"


def message_parent(message_id: str) -> TraceParent:
    """The trace context of a message that carries no ``traceparent``, from its
    ``Nats-Msg-Id`` alone: trace id :func:`frame_trace_id`, parent span id the next 8 bytes of
    the same digest (never zero). The datacenter needs nothing more to put a frame's work in
    the frame's trace, so gateways need not send the header (about 70 bytes a message)."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()
    span_id = digest[32:48]
    return TraceParent(
        frame_trace_id(message_id), span_id if span_id != _INVALID_SPAN_ID else "0" * 15 + "1"
    )


def format_traceparent(trace_id: str, span_id: str, *, sampled: bool = True) -> str:
    """``00-<trace_id>-<span_id>-<flags>``; raises ValueError on ids the spec forbids."""
    if not _is_hex(trace_id, 32) or trace_id == _INVALID_TRACE_ID:
        raise ValueError(f"invalid trace id {trace_id!r}: 32 lower-case hex, not all zero")
    if not _is_hex(span_id, 16) or span_id == _INVALID_SPAN_ID:
        raise ValueError(f"invalid span id {span_id!r}: 16 lower-case hex, not all zero")
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The trace context in a header value, or None when missing or malformed (never raises)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    value = value.strip(" \t")
    found = _TRACEPARENT.fullmatch(value)
    if found is None:
        return None
    version = found["version"]
    if version == "ff":
        return None
    if version == "00":
        if found["rest"]:
            return None
    elif found["rest"] and not found["rest"].startswith("-"):
        return None  # a future version may append fields, each after a dash
    trace_id, span_id = found["trace_id"], found["span_id"]
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return TraceParent(trace_id, span_id, int(found["flags"], 16))


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)
