"""Bocage native kernels: frame codec, column codecs, windowed aggregation, quantile sketch.

Everything here is implemented in Rust (``bocage_native._native``); see ``__init__.pyi`` for
the typed API and ``docs/wire-format.md`` for the frame's byte layout.
"""

from __future__ import annotations

from bocage_native._native import (
    FORMAT_VERSION,
    MAX_READINGS,
    Frame,
    FrameError,
    FrameHeader,
    QuantileSketch,
    Series,
    aggregate,
    decode_frame,
    decode_timestamps,
    decode_values,
    encode_frame,
    encode_timestamps,
    encode_values,
    peek_header,
)

__all__ = [
    "FORMAT_VERSION",
    "MAX_READINGS",
    "Frame",
    "FrameError",
    "FrameHeader",
    "QuantileSketch",
    "Series",
    "aggregate",
    "decode_frame",
    "decode_timestamps",
    "decode_values",
    "encode_frame",
    "encode_timestamps",
    "encode_values",
    "peek_header",
]
