"""Columnar batches of readings, built frame by frame and inserted as one Arrow table.

Strings that repeat on every row (territory, gateway, sensor, metric, frame id) are Arrow
dictionary columns: one small index array per column instead of a Python string per reading,
and ClickHouse reads them straight into ``LowCardinality``/``String`` columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]  # no stubs published

TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")

READINGS_COLUMNS: tuple[str, ...] = (
    "territory",
    "gateway",
    "sensor",
    "metric",
    "ts",
    "value",
    "quality",
    "frame_id",
    "retention",
)
"""Columns a batch inserts into ``readings`` (``retention`` is the EPHEMERAL input column)."""


class _Dictionary:
    """Codes of the distinct strings of one column."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []

    def code(self, value: str) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code

    def array(self, indices: npt.NDArray[np.int32]) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(self.values, pa.string()))


class ReadingsBatch:
    """Readings of several frames, accumulated as numpy columns, inserted as one Arrow table."""

    def __init__(self) -> None:
        self._territory = _Dictionary()
        self._gateway = _Dictionary()
        self._sensor = _Dictionary()
        self._metric = _Dictionary()
        self._frame = _Dictionary()
        self._columns: dict[str, list[npt.NDArray[np.generic]]] = {
            name: []
            for name in (
                "territory",
                "gateway",
                "sensor",
                "metric",
                "frame",
                "ts",
                "value",
                "quality",
                "retention",
            )
        }
        self.rows = 0
        self.frame_ids: list[str] = []

    def __len__(self) -> int:
        return self.rows

    def add_frame(
        self,
        *,
        territory: str,
        gateway: str,
        frame_id: str,
        sensors: Sequence[str],
        metrics: Sequence[str],
        retention_days: Sequence[int],
        series_index: npt.NDArray[np.integer],
        timestamps: npt.NDArray[np.int64],
        values: npt.NDArray[np.floating] | npt.NDArray[np.integer],
        quality: npt.NDArray[np.uint8] | None = None,
    ) -> None:
        """Append the readings of one frame.

        ``sensors``, ``metrics`` and ``retention_days`` are per series; ``series_index``,
        ``timestamps`` (epoch ms), ``values`` and ``quality`` are per reading.
        """
        n = len(timestamps)
        self.frame_ids.append(frame_id)
        if n == 0:
            return
        cols = self._columns
        cols["territory"].append(np.full(n, self._territory.code(territory), np.int32))
        cols["gateway"].append(np.full(n, self._gateway.code(gateway), np.int32))
        cols["frame"].append(np.full(n, self._frame.code(frame_id), np.int32))
        sensor_codes = np.fromiter((self._sensor.code(s) for s in sensors), np.int32, len(sensors))
        metric_codes = np.fromiter((self._metric.code(m) for m in metrics), np.int32, len(metrics))
        retention = np.asarray(retention_days, dtype=np.uint16)
        cols["sensor"].append(sensor_codes[series_index])
        cols["metric"].append(metric_codes[series_index])
        cols["retention"].append(retention[series_index])
        cols["ts"].append(np.asarray(timestamps, dtype=np.int64))
        cols["value"].append(np.asarray(values, dtype=np.float64))
        cols["quality"].append(
            np.zeros(n, np.uint8) if quality is None else np.asarray(quality, dtype=np.uint8)
        )
        self.rows += n

    def to_arrow(self) -> pa.Table:
        """The batch as an Arrow table with the columns of :data:`READINGS_COLUMNS`."""
        cols = self._columns

        def cat(name: str, dtype: type[np.generic]) -> npt.NDArray[np.generic]:
            parts = cols[name]
            return np.concatenate(parts) if parts else np.empty(0, dtype)

        ts = pa.array(cat("ts", np.int64)).view(TIMESTAMP_TYPE)
        return pa.table(
            {
                "territory": self._territory.array(cat("territory", np.int32)),  # type: ignore[arg-type]
                "gateway": self._gateway.array(cat("gateway", np.int32)),  # type: ignore[arg-type]
                "sensor": self._sensor.array(cat("sensor", np.int32)),  # type: ignore[arg-type]
                "metric": self._metric.array(cat("metric", np.int32)),  # type: ignore[arg-type]
                "ts": ts,
                "value": pa.array(cat("value", np.float64)),
                "quality": pa.array(cat("quality", np.uint8)),
                "frame_id": self._frame.array(cat("frame", np.int32)),  # type: ignore[arg-type]
                "retention": pa.array(cat("retention", np.uint16)),
            }
        )
