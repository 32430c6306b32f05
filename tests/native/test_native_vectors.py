"""The hex test vectors of docs/wire-format.md: the encoder produces exactly those bytes, and
both decoders (native and the reference one written from the document) give the inputs back."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import native_wire_reference as ref
import numpy as np
import pytest

import bocage_native as bn

DOC = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"

T0 = 1_700_000_000_000


def _frame_input() -> tuple[tuple, list]:
    ts = np.array([T0, T0 + 1000, T0 + 2000, T0 + 3000], dtype=np.int64)
    series = [
        ("t1", "temperature", ts, np.array([20.5, 20.5, 20.6, 20.4]), None),
        (
            "m1",
            "energy_wh",
            ts,
            np.array([1000, 1003, 1007, 1007], dtype=np.int64),
            np.array([0, 0, 1, 0], dtype=np.uint8),
        ),
    ]
    return ("21231", "gw-01", 42, T0 + 4000), series


# name -> (input, encoder); no encoder for a vector checked by decoding only (a coding that
# earlier encoders wrote and decoders still read)
VECTORS: dict[str, tuple[object, Callable[[object], bytes] | None]] = {
    "timestamps-regular": (T0 + np.arange(8, dtype=np.int64) * 1000, bn.encode_timestamps),
    "timestamps-gap": (
        np.array([0, 60, 120, 180, 240, 420, 480, 540, 600, 660], dtype=np.int64) * 1000 + T0,
        bn.encode_timestamps,
    ),
    "timestamps-jitter": (
        T0 + np.array([0, 998, 2003, 2999, 4001, 5010, 5996, 7002], dtype=np.int64),
        bn.encode_timestamps,
    ),
    "values-int-counter": (
        np.array([1000, 1003, 1007, 1007, 1012, 1012, 1013, 1020], dtype=np.int64),
        bn.encode_values,
    ),
    "values-decimal": (
        np.array([20.5, 20.6, 20.4, 20.5, 21.0, 21.2, 20.9, 20.8]),
        bn.encode_values,
    ),
    "values-decimal-long": (np.round(np.sin(np.arange(48) / 5.0) * 40 + 12.0, 1), bn.encode_values),
    "values-huffman": (
        np.array(
            [
                1000,
                1001,
                1001,
                1000,
                1000,
                1000,
                1002,
                1002,
                1001,
                1001,
                1001,
                1002,
                1002,
                1002,
                962,
                962,
                963,
                963,
                963,
                962,
                962,
                962,
                963,
                964,
                964,
                964,
                964,
                999,
                999,
                998,
                998,
                998,
                999,
                999,
                999,
                999,
                998,
                998,
                998,
                1000,
            ],
            dtype=np.int64,
        ),
        bn.encode_values,
    ),
    "values-counter-runs": (
        np.repeat(
            7000 + np.cumsum([0, 1, 1, 3, 2, 3, 1, 3, 3, 2, 3, 2, 3, 3, 3, 3, 3, 1, 3, 1, 2, 3, 2]),
            [
                58,
                37,
                26,
                76,
                1,
                85,
                56,
                53,
                52,
                76,
                63,
                59,
                37,
                58,
                24,
                31,
                50,
                63,
                80,
                39,
                1,
                37,
                47,
            ],
        ).astype(np.int64),
        bn.encode_values,
    ),
    "values-mixed-decimal": (
        np.array([0.0, 1234.5677, 0.0, 87.25, 0.012345678, 3.0, 0.0, 941.1]),
        bn.encode_values,
    ),
    "values-mixed-decimal-deck": (
        np.array([0.0, 1234.5677, 0.0, 87.25, 0.012345678, 3.0, 0.0, 941.1]),
        None,
    ),
    "values-runs": (
        np.repeat([31.700000000000003, 12.5, 31.700000000000003], [10, 5, 9]),
        bn.encode_values,
    ),
    "values-special": (np.array([np.nan, -0.0, np.inf, -np.inf, 5e-324]), bn.encode_values),
    "values-empty-float": (np.array([], dtype=np.float64), bn.encode_values),
    "frame-small": (_frame_input(), lambda a: bn.encode_frame(*a[0], a[1])),  # type: ignore[index]
}


def doc_vectors() -> dict[str, bytes]:
    text = DOC.read_text()
    found = re.findall(r"<!-- vector: ([\w-]+) -->\s*```hex\n(.*?)```", text, flags=re.S)
    return {
        name: bytes.fromhex(re.sub(r"#.*", "", body).replace("\n", " ")) for name, body in found
    }


def test_every_vector_is_documented() -> None:
    assert set(doc_vectors()) == set(VECTORS)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_vector(name: str) -> None:
    expected = doc_vectors()[name]
    value, encode = VECTORS[name]
    if encode is not None:
        assert encode(value) == expected, f"{name}: encoder output {encode(value).hex()}"
    if name.startswith("frame"):
        (territory, gateway, seq, created), series = value  # type: ignore[misc]
        for frame in (bn.decode_frame(expected), ref.decode_frame(expected)):
            assert (frame.territory, frame.gateway, frame.sequence, frame.created_ms) == (
                territory,
                gateway,
                seq,
                created,
            )
            for got, (sensor, metric, ts, vals, q) in zip(frame.series, series, strict=True):
                assert (got.sensor, got.metric) == (sensor, metric)
                assert got.timestamps.tobytes() == ts.tobytes()
                assert got.values.dtype == vals.dtype
                assert got.values.tobytes() == vals.tobytes()
                assert got.quality.tolist() == (q.tolist() if q is not None else [0] * len(ts))
        return
    decoders = (
        (bn.decode_timestamps, ref.decode_timestamps)
        if name.startswith("timestamps")
        else (bn.decode_values, ref.decode_values)
    )
    for decode in decoders:
        got = decode(expected)
        assert got.dtype == value.dtype
        assert got.tobytes() == value.tobytes()
