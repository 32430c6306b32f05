"""Bocage native kernels (Rust): frame codec, column codecs, windowed aggregation, sketches."""

from collections.abc import Sequence
from typing import Final, TypeAlias, final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

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

_Bytes: TypeAlias = bytes | bytearray | memoryview
_Int64Array: TypeAlias = npt.NDArray[np.int64]
_Float64Array: TypeAlias = npt.NDArray[np.float64]
_UInt8Array: TypeAlias = npt.NDArray[np.uint8]
_ValuesArray: TypeAlias = npt.NDArray[np.float64] | npt.NDArray[np.int64]
_SeriesTuple: TypeAlias = tuple[str, str, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike | None]

FORMAT_VERSION: Final[int]
"""Frame format version written by `encode_frame` and read by `decode_frame`."""
MAX_READINGS: Final[int]
"""Most readings one frame (or one column) may hold; decoders reject more."""

class FrameError(ValueError):
    """A frame or column that can't be decoded: truncated, corrupt, or of an unknown version."""

@final
class Series:
    """One (sensor, metric) series of a frame."""

    @property
    def sensor(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def timestamps(self) -> _Int64Array:
        """Epoch milliseconds, int64."""
    @property
    def values(self) -> _ValuesArray:
        """float64 or int64, kind preserved bit-exactly."""
    @property
    def quality(self) -> _UInt8Array:
        """uint8 flags, 0 = good."""
    def __new__(
        cls,
        sensor: str,
        metric: str,
        timestamps: npt.ArrayLike,
        values: npt.ArrayLike,
        quality: npt.ArrayLike | None = None,
    ) -> Series: ...
    def __len__(self) -> int: ...

@disjoint_base
class FrameHeader:
    """What `peek_header` reads: the frame's identity and counts, checked by its checksum."""

    @property
    def version(self) -> int: ...
    @property
    def territory(self) -> str: ...
    @property
    def gateway(self) -> str: ...
    @property
    def sequence(self) -> int: ...
    @property
    def created_ms(self) -> int: ...
    @property
    def series_count(self) -> int: ...
    @property
    def reading_count(self) -> int: ...
    @property
    def frame_id(self) -> str:
        """``f"{territory}:{gateway}:{sequence}"``: Nats-Msg-Id and ClickHouse dedup token."""

@final
class Frame(FrameHeader):
    """A decoded frame: the header's attributes plus its series."""

    @property
    def series(self) -> list[Series]: ...
    def columns(self) -> dict[str, npt.NDArray[np.generic]]:
        """Flattened columns, one row per reading in frame order: ``series_index`` (uint32,
        index into `series`), ``timestamps`` (int64), ``values`` (float64; int64 values are
        converted) and ``quality`` (uint8)."""

def encode_frame(
    territory: str,
    gateway: str,
    sequence: int,
    created_ms: int,
    series: Sequence[_SeriesTuple | Series],
) -> bytes:
    """Encodes one frame. Each series is ``(sensor, metric, timestamps, values, quality)``
    (quality None = all good) or a `Series`. Mismatched lengths, empty names, names with ':'
    (territory, gateway) or too many readings raise ValueError."""

def peek_header(data: _Bytes) -> FrameHeader:
    """Checks magic, version, lengths and the header checksum; reads no series."""

def decode_frame(data: _Bytes) -> Frame:
    """Decodes and checks a whole frame (both checksums); FrameError on any problem."""

def encode_timestamps(ts: npt.ArrayLike) -> bytes:
    """Compresses an integer column (epoch ms) on its own: ``varint(n) || column``."""

def decode_timestamps(data: _Bytes) -> _Int64Array: ...
def encode_values(values: npt.ArrayLike) -> bytes:
    """Compresses a float64 or int64 column on its own; the kind is kept."""

def decode_values(data: _Bytes) -> _ValuesArray: ...
def aggregate(
    series: npt.ArrayLike,
    timestamps: npt.ArrayLike,
    values: npt.ArrayLike,
    window_ms: int,
    stats: Sequence[str] | None = None,
) -> dict[str, npt.NDArray[np.generic]]:
    """Tumbling epoch-aligned windows per series. One output row per (series, window), sorted
    by (series, window_start). Keys: series, window_start, count (int64); sum, min, max, mean,
    first, last, time_weighted_mean, increase (float64). NaN values are ignored.

    ``stats`` (a list or tuple of those statistic names, in any order) computes only those:
    the dict then has series, window_start and the statistics named, each bit for bit what
    the default (every statistic) gives. An unknown name raises ValueError."""

@final
class QuantileSketch:
    """DDSketch-class quantile sketch: relative value error <= relative_accuracy, exact merge."""

    def __new__(cls, relative_accuracy: float = 0.01) -> QuantileSketch: ...
    def add(self, values: npt.ArrayLike) -> None:
        """Adds a batch of values; NaN or infinite values raise ValueError and add nothing."""
    def merge(self, other: QuantileSketch) -> None: ...
    def quantile(self, q: float) -> float:
        """Value at quantile ``q`` in [0, 1]; NaN if the sketch is empty."""
    @property
    def count(self) -> int: ...
    @property
    def relative_accuracy(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def sum(self) -> float: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: _Bytes) -> QuantileSketch:
        """Raises ValueError on bytes that are not a valid sketch."""
