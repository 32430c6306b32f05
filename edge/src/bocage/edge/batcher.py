"""Groups readings per series until a batch is worth a frame, then encodes it natively.

A batch closes when it holds ``max_readings`` readings or its first reading waited
``max_age_s`` (wall clock: a replay at full speed fills batches by size, a live site by age).
One batch becomes one frame: per (sensor, metric) series an int64 timestamp column, an int64
or float64 value column and a quality column (omitted when every reading is good).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

import bocage_native
from bocage.edge.reading import Reading

SeriesKey = tuple[str, str]
SeriesColumns = tuple[str, str, np.ndarray, np.ndarray, np.ndarray | None]


class _Column:
    __slots__ = ("any_float", "any_quality", "quality", "timestamps", "values")

    def __init__(self) -> None:
        self.timestamps: list[int] = []
        self.values: list[float | int] = []
        self.quality: list[int] = []
        self.any_float = False
        self.any_quality = False


class Batch:
    """A closed batch: its series columns, reading count and newest time per series."""

    __slots__ = ("readings", "series", "watermarks")

    def __init__(self, series: list[SeriesColumns], readings: int) -> None:
        self.series = series
        self.readings = readings
        self.watermarks: dict[SeriesKey, int] = {
            (sensor, metric): int(ts.max()) for sensor, metric, ts, _, _ in series
        }

    def encode(self, territory: str, gateway: str, sequence: int, created_ms: int) -> bytes:
        """The frame bytes of this batch (``bocage_native.encode_frame``)."""
        return encode(territory, gateway, sequence, created_ms, self.series)


def encode(
    territory: str, gateway: str, sequence: int, created_ms: int, series: Sequence[SeriesColumns]
) -> bytes:
    """Encode series columns as one frame."""
    return bocage_native.encode_frame(territory, gateway, sequence, created_ms, series)


class Batcher:
    """Accumulates readings per series; :meth:`add` returns a :class:`Batch` when one closes."""

    def __init__(self, max_readings: int, max_age_s: float) -> None:
        self.max_readings = max_readings
        self.max_age_s = max_age_s
        self.columns: dict[SeriesKey, _Column] = {}
        self.count = 0
        self.opened_at = 0.0

    def add(self, reading: Reading) -> Batch | None:
        """Add one reading; the closed batch if this reading filled it."""
        key = (reading.sensor, reading.metric)
        column = self.columns.get(key)
        if column is None:
            column = self.columns[key] = _Column()
        if not self.count:
            self.opened_at = time.monotonic()
        column.timestamps.append(reading.time_ms)
        value = reading.value
        column.values.append(value)
        if type(value) is float:
            column.any_float = True
        column.quality.append(reading.quality)
        if reading.quality:
            column.any_quality = True
        self.count += 1
        if self.count >= self.max_readings:
            return self.take()
        return None

    def newest(self, key: SeriesKey) -> int | None:
        """Newest time of a series in the open batch, or None (not a hot-path call)."""
        column = self.columns.get(key)
        return max(column.timestamps) if column is not None and column.timestamps else None

    def due(self, now: float | None = None, *, age_s: float | None = None) -> bool:
        """True if the open batch has waited long enough (``age_s`` overrides the setting)."""
        if not self.count:
            return False
        now = time.monotonic() if now is None else now
        return now - self.opened_at >= (self.max_age_s if age_s is None else age_s)

    def take(self) -> Batch | None:
        """Close and return the open batch (None if empty)."""
        if not self.count:
            return None
        series: list[SeriesColumns] = []
        for (sensor, metric), column in self.columns.items():
            ts = np.asarray(column.timestamps, dtype=np.int64)
            dtype = np.float64 if column.any_float else np.int64
            values = np.asarray(column.values, dtype=dtype)
            quality = np.asarray(column.quality, dtype=np.uint8) if column.any_quality else None
            series.append((sensor, metric, ts, values, quality))
        batch = Batch(series, self.count)
        self.columns = {}
        self.count = 0
        return batch
