"""The frame codec through its Python API: round trips, header, flattened columns, errors."""

from __future__ import annotations

import numpy as np
import pytest

import bocage_native as bn

T0 = 1_700_000_000_000


def minute(n: int = 60) -> list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray | None]]:
    ts = T0 + np.arange(n, dtype=np.int64) * 1000
    return [
        ("lamp-7", "power_w", ts, np.round(np.linspace(20, 80, n), 1), None),
        (
            "meter-2",
            "energy_wh",
            ts + 17,
            np.arange(n, dtype=np.int64) * 3 + 1_000_000,
            (np.arange(n) % 4 == 0).astype(np.uint8),
        ),
        ("aq-1", "pm10", ts, np.full(n, np.nan), np.full(n, 2, dtype=np.uint8)),
    ]


def test_round_trip_keeps_everything() -> None:
    series = minute()
    data = bn.encode_frame("21231", "gw-0001", 42, T0 + 60_000, series)
    frame = bn.decode_frame(data)
    assert isinstance(frame, bn.Frame)
    assert isinstance(frame, bn.FrameHeader)
    assert (frame.version, frame.territory, frame.gateway) == (
        bn.FORMAT_VERSION,
        "21231",
        "gw-0001",
    )
    assert (frame.sequence, frame.created_ms) == (42, T0 + 60_000)
    assert frame.series_count == 3
    assert frame.reading_count == 180
    assert frame.frame_id == "21231:gw-0001:42"
    for got, (sensor, metric, ts, values, quality) in zip(frame.series, series, strict=True):
        assert (got.sensor, got.metric) == (sensor, metric)
        assert got.timestamps.dtype == np.int64
        np.testing.assert_array_equal(got.timestamps, ts)
        assert got.values.dtype == values.dtype
        assert got.values.tobytes() == values.tobytes()
        assert got.quality.dtype == np.uint8
        np.testing.assert_array_equal(
            got.quality, np.zeros(len(ts), np.uint8) if quality is None else quality
        )
        assert len(got) == len(ts)


def test_peek_header_matches_decode() -> None:
    data = bn.encode_frame("21231", "gw-0001", 7, T0, minute())
    header = bn.peek_header(data)
    frame = bn.decode_frame(data)
    for attr in (
        "version",
        "territory",
        "gateway",
        "sequence",
        "created_ms",
        "series_count",
        "reading_count",
        "frame_id",
    ):
        assert getattr(header, attr) == getattr(frame, attr)
    assert "gw-0001" in repr(header)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_bytes_like(kind: type) -> None:
    data = bn.encode_frame("t", "g", 1, 0, minute(5))
    assert bn.decode_frame(kind(data)).reading_count == 15
    assert bn.peek_header(kind(data)).sequence == 1


def test_columns_flatten_in_frame_order() -> None:
    series = minute(10)
    cols = bn.decode_frame(bn.encode_frame("t", "g", 1, 0, series)).columns()
    assert set(cols) == {"series_index", "timestamps", "values", "quality"}
    assert cols["series_index"].dtype == np.uint32
    assert cols["timestamps"].dtype == np.int64
    assert cols["values"].dtype == np.float64
    assert cols["quality"].dtype == np.uint8
    np.testing.assert_array_equal(
        cols["series_index"], np.repeat(np.arange(3, dtype=np.uint32), 10)
    )
    np.testing.assert_array_equal(cols["timestamps"], np.concatenate([s[2] for s in series]))
    np.testing.assert_array_equal(cols["values"][10:20], series[1][3].astype(np.float64))
    assert np.isnan(cols["values"][20:]).all()


def test_series_objects_and_four_tuples_are_accepted() -> None:
    ts = np.array([1, 2, 3], dtype=np.int64)
    s = bn.Series("a", "b", ts, np.array([1.5, 2.5, 3.5]))
    assert s.quality.tolist() == [0, 0, 0]
    frame = bn.decode_frame(bn.encode_frame("t", "g", 0, 0, [s, ("c", "d", ts, [1, 2, 3])]))
    assert frame.series[0].values.tolist() == [1.5, 2.5, 3.5]
    assert frame.series[1].values.dtype == np.int64


def test_empty_frame_and_empty_series() -> None:
    frame = bn.decode_frame(bn.encode_frame("t", "g", 0, 0, []))
    assert frame.series == []
    assert frame.reading_count == 0
    empty = np.array([], dtype=np.int64)
    frame = bn.decode_frame(
        bn.encode_frame("t", "g", 0, 0, [("s", "m", empty, np.array([], dtype=np.float64), None)])
    )
    assert frame.series[0].values.dtype == np.float64
    assert len(frame.series[0].values) == 0
    assert {k: len(v) for k, v in frame.columns().items()} == dict.fromkeys(
        ("series_index", "timestamps", "values", "quality"), 0
    )


def test_integer_and_float_dtypes_are_widened() -> None:
    ts = np.array([3, 1, 2], dtype=np.int32)
    frame = bn.decode_frame(
        bn.encode_frame(
            "t",
            "g",
            0,
            0,
            [
                ("s", "m", ts, np.array([1, 2, 3], np.uint16), None),
                ("s", "f", ts, np.array([0.5, 1, 2], np.float32), None),
            ],
        )
    )
    assert frame.series[0].timestamps.tolist() == [3, 1, 2]
    assert frame.series[0].values.dtype == np.int64
    assert frame.series[1].values.dtype == np.float64


@pytest.mark.parametrize(
    ("series", "match"),
    [
        ([("s", "m", np.arange(3), np.arange(2.0), None)], "3 timestamps but 2 values"),
        ([("s", "m", np.arange(3), np.arange(3.0), np.zeros(4, np.uint8))], "quality"),
        ([("", "m", np.arange(3), np.arange(3.0), None)], "sensor must not be empty"),
        ([("s", "m", np.arange(3), np.arange(3.0), np.array([0, 256, 1]))], "outside 0..=255"),
        ([("s", "m", np.arange(3))], "expected 5 items"),
    ],
)
def test_bad_series_raise_value_error(series: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bn.encode_frame("t", "g", 0, 0, series)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must not contain ':'"):
        bn.encode_frame("t:1", "g", 0, 0, [])
    with pytest.raises(ValueError, match="sequence"):
        bn.encode_frame("t", "g", -1, 0, [])
    with pytest.raises(ValueError, match="created_ms"):
        bn.encode_frame("t", "g", 0, 2**63, [])
    with pytest.raises(TypeError, match="integer array"):
        bn.encode_frame("t", "g", 0, 0, [("s", "m", np.array([0.5]), np.array([1.0]), None)])
    with pytest.raises(TypeError):
        bn.decode_frame("not bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        bn.encode_values(np.zeros((2, 2)))


def test_corruption_is_a_frame_error_with_a_reason() -> None:
    data = bn.encode_frame("21231", "gw", 9, 0, minute())
    with pytest.raises(bn.FrameError, match="magic"):
        bn.decode_frame(b"XXXX" + data[4:])
    with pytest.raises(bn.FrameError, match="version"):
        bn.decode_frame(data[:4] + b"\x02" + data[5:])
    with pytest.raises(bn.FrameError, match="header checksum"):
        bn.peek_header(data[:20] + bytes([data[20] ^ 1]) + data[21:])
    with pytest.raises(bn.FrameError, match="body checksum"):
        bn.decode_frame(data[:-10] + bytes([data[-10] ^ 1]) + data[-9:])
    with pytest.raises(bn.FrameError, match=r"truncated|disagrees"):
        bn.decode_frame(data[:-1])
    with pytest.raises(bn.FrameError):
        bn.decode_frame(b"")
    assert issubclass(bn.FrameError, ValueError)


def test_peek_header_does_not_read_the_body() -> None:
    data = bn.encode_frame("t", "g", 5, 0, minute())
    broken = data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]
    assert bn.peek_header(broken).sequence == 5
    with pytest.raises(bn.FrameError):
        bn.decode_frame(broken)


def test_typical_minute_is_small() -> None:
    ts = T0 + np.arange(60, dtype=np.int64) * 1000
    rng = np.random.default_rng(1)
    series = [
        (f"s{i}", "temperature", ts, np.round(20 + np.cumsum(rng.normal(0, 0.05, 60)), 1), None)
        for i in range(10)
    ]
    data = bn.encode_frame("21231", "gw-0001", 1, T0 + 60_000, series)
    assert len(data) / 600 < 3.0
