"""Compaction of old raw frames into window aggregates (the spool's first overflow step).

When the disk budget runs out during a long outage, the oldest raw frames are decoded and
replaced by one frame holding one reading per series and window (``spool.compact_window_s``):
gauges keep their time-weighted mean, counters and states their last value (so a counter's
increase over the outage stays exact). Aggregate readings carry the quality flag
``QUALITY_AGGREGATE`` and are timestamped at the start of their window. The aggregation runs
in the native kernels (``bocage_native.aggregate``).
"""

from __future__ import annotations

import numpy as np

import bocage_native
from bocage.core.logs import get_logger
from bocage.core.register import SENSOR_KINDS
from bocage.edge.batcher import SeriesColumns, encode
from bocage.edge.reading import QUALITY_AGGREGATE

log = get_logger("bocage.edge.compaction")


class WindowCompactor:
    """A spool :class:`~bocage.edge.spool.Compactor` producing window aggregates."""

    def __init__(
        self,
        territory: str,
        gateway: str,
        window_ms: int,
        sensor_kinds: dict[str, str] | None = None,
    ) -> None:
        self.territory = territory
        self.gateway = gateway
        self.window_ms = window_ms
        self.sensor_kinds = sensor_kinds or {}

    def _keeps_last(self, sensor: str, metric: str, values: np.ndarray) -> bool:
        kind = SENSOR_KINDS.get(self.sensor_kinds.get(sensor, ""))
        spec = kind.metric(metric) if kind else None
        if spec is not None:
            return spec.kind != "gauge"
        return bool(values.dtype.kind == "i")  # unknown series: integers are counts or states

    def __call__(self, payloads: list[bytes], sequence: int) -> tuple[bytes, int] | None:
        """Aggregate frame replacing ``payloads`` and its reading count (None if none)."""
        keys: dict[tuple[str, str], int] = {}
        ids: list[np.ndarray] = []
        ts: list[np.ndarray] = []
        values: list[np.ndarray] = []
        integer: dict[int, bool] = {}
        newest = 0
        for payload in payloads:
            try:
                frame = bocage_native.decode_frame(payload)
            except bocage_native.FrameError as exc:
                log.error("cannot decode a spooled frame", error=str(exc))  # noqa: TRY400
                return None
            newest = max(newest, frame.created_ms)
            for series in frame.series:
                key = (series.sensor, series.metric)
                index = keys.setdefault(key, len(keys))
                integer[index] = integer.get(index, True) and series.values.dtype.kind == "i"
                ids.append(np.full(len(series), index, dtype=np.int64))
                ts.append(series.timestamps)
                values.append(series.values.astype(np.float64))
        if not keys:
            return None
        result = bocage_native.aggregate(
            np.concatenate(ids),
            np.concatenate(ts),
            np.concatenate(values),
            self.window_ms,
            stats=["last", "time_weighted_mean"],
        )
        out: list[SeriesColumns] = []
        rows = result["series"]
        for (sensor, metric), index in keys.items():
            mask = rows == index
            starts = result["window_start"][mask].astype(np.int64)
            last = self._keeps_last(sensor, metric, result["last"][mask])
            column = result["last" if last or integer[index] else "time_weighted_mean"][mask]
            vals = column.astype(np.int64) if integer[index] else column.astype(np.float64)
            quality = np.full(len(starts), QUALITY_AGGREGATE, dtype=np.uint8)
            out.append((sensor, metric, starts, vals, quality))
        readings = int(sum(len(s[2]) for s in out))
        return encode(self.territory, self.gateway, sequence, newest, out), readings
