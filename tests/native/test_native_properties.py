"""Property tests: bit-exact round trips of arbitrary arrays, agreement with the independent
reference decoder (tests/native/native_wire_reference.py, written from docs/wire-format.md),
and hostile bytes that must never crash, hang or allocate without bound."""

from __future__ import annotations

import contextlib
import struct

import native_wire_reference as ref
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bocage_native as bn

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT64_EDGES = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, -1, 1]


def sizes(max_size: int = 1500) -> st.SearchStrategy[int]:
    # small batches (HUFF splits into 4 streams from 64 residuals on), and large ones (RHUFF
    # from 1024)
    return st.one_of(st.integers(0, 80), st.integers(500, max_size))



def uvarint(n: int) -> bytes:
    """LEB128 unsigned varint, as the wire format writes counts (docs/wire-format.md)."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)

@st.composite
def int_arrays(draw: st.DrawFn) -> np.ndarray:
    n = draw(sizes())
    shape = draw(st.sampled_from(["any", "small", "walk", "cadence", "edges", "dupes", "sticky"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if shape == "any":
        return rng.integers(
            np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64, endpoint=True
        )
    if shape == "small":
        return rng.integers(
            -draw(st.integers(0, 2**40)), draw(st.integers(1, 2**40)), n, dtype=np.int64
        )
    if shape == "walk":
        return np.cumsum(rng.integers(-1000, 1000, n)).astype(np.int64) + draw(
            st.integers(-(2**60), 2**60)
        )
    if shape == "cadence":
        ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * draw(
            st.sampled_from([1000, 60_000, 300_000])
        )
        jitter = rng.integers(-draw(st.integers(0, 50)), draw(st.integers(1, 50)), n)
        holes = rng.random(n) < draw(st.floats(0, 0.2))
        return np.where(holes, ts * 3, ts + jitter).astype(np.int64)
    if shape == "edges":
        return np.array(
            [draw(st.sampled_from(INT64_EDGES)) for _ in range(min(n, 80))], dtype=np.int64
        )
    if shape == "sticky":  # a counter that stands still for a while (RHUFF's runs)
        lengths = rng.geometric(draw(st.floats(0.02, 0.6)), n)
        steps = rng.integers(-3, draw(st.integers(1, 1000)), n)
        return np.repeat(np.cumsum(steps), lengths)[:n].astype(np.int64)
    return rng.choice(rng.integers(-5, 5, 3), n).astype(np.int64)  # unsorted duplicates


@st.composite
def float_arrays(draw: st.DrawFn) -> np.ndarray:
    n = draw(sizes())
    shape = draw(
        st.sampled_from(["bits", "decimal", "mixed_decimal", "runs", "special", "hypothesis"])
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if shape == "bits":  # any bit pattern: NaN payloads, signalling NaNs, subnormals, ±inf, -0.0
        return rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False).view(np.float64)
    if shape == "decimal":
        e = draw(st.integers(0, 6))
        return np.round(np.cumsum(rng.normal(0, 1, n)) * 10.0**e) / 10.0**e + draw(
            st.integers(-1000, 1000)
        )
    if shape == "mixed_decimal":
        v = rng.integers(0, 10**9, n) / 10.0 ** rng.integers(0, 10, n)
        v[rng.random(n) < 0.3] = 0.0
        return v.astype(np.float64)
    if shape == "runs":
        pool = np.array([31.700000000000003, -0.0, 12.5, np.nan, 1e300])
        return np.repeat(rng.choice(pool, max(1, n // 7 + 1)), 7)[:n].astype(np.float64)
    if shape == "special":
        pool = [
            np.nan,
            -np.nan,
            np.inf,
            -np.inf,
            -0.0,
            0.0,
            5e-324,
            np.finfo(np.float64).max,
            struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf0\x7f")[0],
        ]
        return np.array([draw(st.sampled_from(pool)) for _ in range(min(n, 60))], dtype=np.float64)
    return draw(
        hnp.arrays(np.float64, min(n, 60), elements=st.floats(allow_nan=True, allow_infinity=True))
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@PROPS
@given(int_arrays())
def test_timestamps_round_trip(ts: np.ndarray) -> None:
    data = bn.encode_timestamps(ts)
    assert same_bits(bn.decode_timestamps(data), ts)
    assert same_bits(ref.decode_timestamps(data), ts)
    # int64 values keep their kind
    data = bn.encode_values(ts)
    assert same_bits(bn.decode_values(data), ts)


@PROPS
@given(float_arrays())
def test_float_values_round_trip_bit_exactly(values: np.ndarray) -> None:
    data = bn.encode_values(values)
    assert same_bits(bn.decode_values(data), values)
    assert same_bits(ref.decode_values(data), values)
    assert len(data) <= 8 * len(values) + 16  # never much worse than raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(int_arrays(), st.one_of(float_arrays(), int_arrays()), st.booleans()), max_size=5
    ),
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1),
)
def test_frames_round_trip(parts: list, sequence: int, created: int) -> None:
    series = []
    for i, (ts, values, with_quality) in enumerate(parts):
        n = min(len(ts), len(values))
        q = (np.arange(n) % 5).astype(np.uint8) if with_quality else None
        series.append((f"sensor-{i}", "métrique", ts[:n], values[:n], q))
    data = bn.encode_frame("21231", "gw-é", sequence, created, series)
    frame = bn.decode_frame(data)
    other = ref.decode_frame(data)
    assert (frame.sequence, frame.created_ms, other.sequence, other.created_ms) == (
        sequence,
        created,
        sequence,
        created,
    )
    for got, theirs, (sensor, metric, ts, values, q) in zip(
        frame.series, other.series, series, strict=True
    ):
        assert (got.sensor, got.metric, theirs.sensor, theirs.metric) == (
            sensor,
            metric,
            sensor,
            metric,
        )
        assert same_bits(got.timestamps, ts)
        assert same_bits(theirs.timestamps, ts)
        assert same_bits(got.values, values)
        assert same_bits(theirs.values, values)
        expected_q = np.zeros(len(ts), np.uint8) if q is None else q
        assert same_bits(got.quality, expected_q)
        assert same_bits(theirs.quality, expected_q)


DECODERS = [
    bn.decode_frame,
    bn.peek_header,
    bn.decode_values,
    bn.decode_timestamps,
    bn.QuantileSketch.from_bytes,
]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(ValueError):
            decode(data)


@st.composite
def prefixed_random(draw: st.DrawFn) -> bytes:
    """Random bytes that start like a real column (count and a valid tag) to get past the
    first checks."""
    n = draw(st.integers(0, 2000))
    tag = draw(
        st.sampled_from(
            [
                0x00,
                0x01,
                0x10,
                0x11,
                0x12,
                0x13,
                0x15,
                0x16,
                0x17,
                0x19,
                0x1A,
                0x1B,
                0x20,
                0x21,
                0x22,
                0x40,
                0x41,
                0x42,
                0x43,
                0x44,
                0x45,
            ]
        )
    )
    return uvarint(n) + bytes([tag]) + draw(st.binary(max_size=300))


@settings(max_examples=1000, deadline=None)
@given(prefixed_random())
def test_random_columns_never_crash(data: bytes) -> None:
    for decode in (bn.decode_values, bn.decode_timestamps):
        try:
            out = decode(data)
        except bn.FrameError:
            continue
        assert len(out) <= bn.MAX_READINGS


def _reseal(frame: bytes) -> bytes:
    """Recomputes the body checksum, so that mutations reach the column decoders."""
    header_len = struct.unpack_from("<H", frame, 6)[0]
    body = frame[header_len:-4]
    return frame[:header_len] + body + struct.pack("<I", ref.crc32c(body))


@pytest.fixture(scope="module")
def sample_frame() -> bytes:
    rng = np.random.default_rng(3)
    ts = 1_700_000_000_000 + np.arange(600, dtype=np.int64) * 1000 + rng.integers(0, 30, 600)
    return bn.encode_frame(
        "21231",
        "gw",
        1,
        0,
        [
            ("a", "t", ts, np.round(np.cumsum(rng.normal(0, 1, 600)), 2), None),
            (
                "b",
                "c",
                ts[:40],
                np.cumsum(rng.integers(0, 9, 40)),
                (np.arange(40) % 3).astype(np.uint8),
            ),
            ("c", "r", ts[:100], np.repeat([1.5, 31.700000000000003], 50), None),
        ],
    )


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
    st.sampled_from(["flip", "set", "truncate", "insert", "delete"]),
    st.booleans(),
)
def test_mutated_frames_never_crash(
    sample_frame: bytes, edits: list, how: str, reseal: bool
) -> None:
    data = bytearray(sample_frame)
    for pos, val in edits:
        p = pos % len(data)
        if how == "flip":
            data[p] ^= 1 << (val % 8)
        elif how == "set":
            data[p] = val
        elif how == "truncate":
            del data[p:]
        elif how == "insert":
            data[p:p] = bytes([val])
        else:
            del data[p : p + 1 + val % 4]
        if not data:
            data = bytearray(b"\x00")
    blob = bytes(data)
    if reseal and len(blob) > 48:
        with contextlib.suppress(struct.error):
            blob = _reseal(blob)
    assume(blob != sample_frame)
    try:
        frame = bn.decode_frame(blob)
    except bn.FrameError as e:
        message = str(e)  # every rejection says why
        assert message, "empty FrameError message"
        return
    # a mutation that still decodes must decode the same way in the reference decoder
    theirs = ref.decode_frame(blob)
    for got, other in zip(frame.series, theirs.series, strict=True):
        assert same_bits(got.values, other.values)
        assert same_bits(got.timestamps, other.timestamps)


def test_huge_declared_counts_are_refused_before_allocating() -> None:
    # a 4-byte column claiming 2^40 values, and a constant column claiming more than the limit
    with pytest.raises(bn.FrameError, match="limit"):
        bn.decode_values(b"\x80\x80\x80\x80\x80\x20\x01\x00")
    with pytest.raises(bn.FrameError, match="limit"):
        bn.decode_timestamps(uvarint(bn.MAX_READINGS + 1) + b"\x01\x02")


def test_columns_at_the_limit_decode() -> None:
    # the largest constant column allowed: cheap to describe, bounded to allocate (32 MiB)
    n = bn.MAX_READINGS
    head = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        head.append(b | (0x80 if n else 0))
        if not n:
            break
    assert len(bn.decode_timestamps(bytes(head) + b"\x01\x02")) == bn.MAX_READINGS
