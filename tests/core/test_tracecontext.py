"""The W3C ``traceparent`` header the gateways put on every message (bocage.core.tracecontext)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bocage.core import tracecontext
from bocage.core.tracecontext import (
    TraceParent,
    format_traceparent,
    frame_trace_id,
    new_span_id,
    parse_traceparent,
)

# the version-00 grammar of https://www.w3.org/TR/trace-context/#traceparent-header
W3C = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")

hex_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
span_ids = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)


def test_generated_headers_are_w3c_version_00() -> None:
    seen = set()
    for seq in range(200):  # as the forwarder stamps them: the frame's trace, a new span
        header = format_traceparent(frame_trace_id(f"35238:gw-1:{seq}"), new_span_id())
        assert W3C.fullmatch(header), header
        assert header.endswith("-01")  # sampled: the datacenter records the ingest spans
        seen.add(header)
    assert len(seen) == 200  # distinct ids


@given(st.text(min_size=0, max_size=80))
def test_frame_trace_id_is_stable_valid_and_distinct(frame_id: str) -> None:
    trace_id = frame_trace_id(frame_id)
    assert trace_id == frame_trace_id(frame_id)  # every retry of a frame: the same trace
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert trace_id != "0" * 32
    assert frame_trace_id(frame_id + "0") != trace_id


@given(hex_ids, span_ids, st.booleans())
def test_format_then_parse_round_trips(trace_id: str, span_id: str, sampled: bool) -> None:
    if trace_id == "0" * 32 or span_id == "0" * 16:
        with pytest.raises(ValueError, match="invalid"):
            format_traceparent(trace_id, span_id, sampled=sampled)
        return
    header = format_traceparent(trace_id, span_id, sampled=sampled)
    assert W3C.fullmatch(header)
    parsed = parse_traceparent(header)
    assert parsed == TraceParent(trace_id, span_id, 1 if sampled else 0)
    assert parsed.sampled is sampled
    assert parsed.header() == header
    assert parse_traceparent(header.encode()) == parsed  # raw NATS header bytes


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  # short span id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  # short flags
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no more
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
        b"\xff\xfe",
    ],
)
def test_malformed_headers_are_no_context(value: str | bytes | None) -> None:
    assert parse_traceparent(value) is None


def test_future_versions_are_read_as_version_00() -> None:
    value = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"
    assert parse_traceparent(value) == TraceParent(
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1
    )
    assert parse_traceparent(value.replace("-what", "what")) is None


@given(st.text(max_size=70) | st.binary(max_size=70))
def test_parsing_never_raises_and_accepts_only_the_grammar(value: str | bytes) -> None:
    parsed = parse_traceparent(value)
    if parsed is not None:
        text = (value.decode() if isinstance(value, bytes) else value).strip(" \t")
        assert W3C.fullmatch("00" + text[2:55])
        assert (parsed.trace_id, parsed.span_id) == (text[3:35], text[36:52])


def test_header_name() -> None:
    assert tracecontext.HEADER == "traceparent"


@given(st.text(min_size=1, max_size=80))
def test_message_parent_is_the_frame_trace_and_a_valid_context(message_id: str) -> None:
    parent = tracecontext.message_parent(message_id)
    assert parent.trace_id == tracecontext.frame_trace_id(message_id)
    assert tracecontext.message_parent(message_id) == parent  # stable: ingest re-derives it
    # a context a header could have carried: it formats and parses back
    assert tracecontext.parse_traceparent(parent.header()) == parent
    assert parent.sampled
