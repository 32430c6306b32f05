"""Native quantile sketches per frame, series and hour (table ``sketches_1h``).

Ingest computes, for every frame it stores and for every (sensor, metric) series and UTC hour
the frame touches, the window statistics of the native aggregation kernel
(``bocage_native.aggregate``: count, min, max, sum) and a ``bocage_native.QuantileSketch``
(DDSketch, 1 % relative accuracy), and inserts them as one Arrow table per batch. Readers
merge the sketches of any set of frames and hours (``QuantileSketch.from_bytes`` + ``merge``)
— see :func:`merged_sketch`.

Exactly once: a row is keyed by (territory, sensor, metric, bucket, frame_id) and its content
depends on the frame only, so writing a frame's rows again (redelivery, retried insert)
writes the same keys; the table is a ReplacingMergeTree and readers group by frame_id, so a
copy not merged yet is never counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]  # no stubs published

import bocage_native

HOUR_MS = 3_600_000
RELATIVE_ACCURACY = 0.01
"""Relative value error of every stored sketch (DDSketch guarantee)."""

SKETCH_COLUMNS: tuple[str, ...] = (
    "territory",
    "sensor",
    "metric",
    "bucket",
    "frame_id",
    "count",
    "min",
    "max",
    "sum",
    "sketch",
)

_BUCKET_TYPE = pa.timestamp("s", tz="UTC")


@dataclass(frozen=True, slots=True)
class FrameReadings:
    """What sketching needs of one frame: its identity, series names and reading columns."""

    territory: str
    frame_id: str
    sensors: Sequence[str]
    metrics: Sequence[str]
    series_index: npt.NDArray[np.integer]
    timestamps: npt.NDArray[np.int64]
    values: npt.NDArray[np.floating]


def sketch_table(frames: Sequence[FrameReadings]) -> pa.Table:
    """One row per (frame, series, hour) of ``frames``, with the columns of ``SKETCH_COLUMNS``.

    ``frame_id`` is a dictionary column whose codes are the positions in ``frames`` (see
    :func:`select_frames`).

    Non-finite values (NaN, infinities) are left out of both the statistics and the sketch.
    Everything per reading runs in numpy or in the native kernels (GIL released); Python
    only loops over the (frame, series, hour) groups.
    """
    if not frames:
        return _empty()
    offsets = np.cumsum([0] + [len(f.sensors) for f in frames[:-1]], dtype=np.int64)
    gid = np.concatenate(
        [f.series_index.astype(np.int64) + off for f, off in zip(frames, offsets, strict=True)]
    )
    ts = np.concatenate([np.asarray(f.timestamps, dtype=np.int64) for f in frames])
    values = np.concatenate([np.asarray(f.values, dtype=np.float64) for f in frames])
    finite = np.isfinite(values)
    if not finite.all():
        gid, ts, values = gid[finite], ts[finite], values[finite]
    if len(values) == 0:
        return _empty()
    # group the readings by (series of the batch, hour): usually already in that order
    window = ts // HOUR_MS
    key = (gid << 32) | (window - window.min())
    if len(key) > 1 and not bool(np.all(key[1:] >= key[:-1])):
        order = np.argsort(key, kind="stable")
        key, values, gid, ts = key[order], values[order], gid[order], ts[order]
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    stats = bocage_native.aggregate(gid, ts, values, HOUR_MS, stats=["count", "min", "max", "sum"])
    group_gid = stats["series"].astype(np.int64)
    if len(group_gid) != len(starts) or not np.array_equal(group_gid, gid[starts]):
        raise AssertionError("native aggregation groups differ from the sketch groups")
    ends = np.append(starts[1:], len(values)).tolist()
    blobs = []
    for a, b in zip(starts.tolist(), ends, strict=True):
        sketch = bocage_native.QuantileSketch(RELATIVE_ACCURACY)
        sketch.add(values[a:b])
        blobs.append(sketch.to_bytes())
    # names of each group, through dictionary codes (no Python string per row)
    frame_of = np.repeat(np.arange(len(frames)), [len(f.sensors) for f in frames])[group_gid]
    territories, territory_code = _codes([f.territory for f in frames])
    frame_ids = [f.frame_id for f in frames]
    sensors, sensor_code = _codes([s for f in frames for s in f.sensors])
    metrics, metric_code = _codes([m for f in frames for m in f.metrics])
    return pa.table(
        {
            "territory": _dictionary(territory_code[frame_of], territories),
            "sensor": _dictionary(sensor_code[group_gid], sensors),
            "metric": _dictionary(metric_code[group_gid], metrics),
            "bucket": pa.array(stats["window_start"].astype(np.int64) // 1000).view(_BUCKET_TYPE),
            "frame_id": _dictionary(frame_of.astype(np.int32), frame_ids),
            "count": pa.array(stats["count"].astype(np.uint64)),
            "min": pa.array(stats["min"]),
            "max": pa.array(stats["max"]),
            "sum": pa.array(stats["sum"]),
            "sketch": pa.array(blobs, pa.binary()),
        }
    )


def select_frames(table: pa.Table, positions: Sequence[int]) -> pa.Table:
    """The rows of a :func:`sketch_table` result that belong to the frames at ``positions``
    (indexes into the ``frames`` it was built from)."""
    if table.num_rows == 0:
        return table
    codes = table.column("frame_id").combine_chunks().indices.to_numpy()
    return table.filter(pa.array(np.isin(codes, np.asarray(positions, dtype=np.int64))))


def _codes(names: list[str]) -> tuple[list[str], npt.NDArray[np.int32]]:
    """Distinct names and the code of each of ``names``."""
    distinct: dict[str, int] = {}
    codes = np.fromiter(
        (distinct.setdefault(n, len(distinct)) for n in names), np.int32, len(names)
    )
    return list(distinct), codes


def _dictionary(codes: npt.NDArray[np.int32], names: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(names, pa.string()))


def _empty() -> pa.Table:
    return pa.table(
        {
            "territory": pa.array([], pa.string()),
            "sensor": pa.array([], pa.string()),
            "metric": pa.array([], pa.string()),
            "bucket": pa.array([], _BUCKET_TYPE),
            "frame_id": pa.array([], pa.string()),
            "count": pa.array([], pa.uint64()),
            "min": pa.array([], pa.float64()),
            "max": pa.array([], pa.float64()),
            "sum": pa.array([], pa.float64()),
            "sketch": pa.array([], pa.binary()),
        }
    )


class _Queries(Protocol):
    def table(self, name: str) -> str: ...

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]: ...


@dataclass(frozen=True, slots=True)
class MergedSketch:
    """The sketches of one series over a time range, merged."""

    sketch: bocage_native.QuantileSketch
    count: int
    """Readings behind the sketch (finite values), from the stored window statistics."""
    min: float
    max: float
    sum: float
    hours: int
    """Distinct hours with data."""
    sketches: int
    """Sketches merged: one per (hour, frame) with data."""


def merged_sketch(
    store: _Queries, territory: str, sensor: str, metric: str, *, start_ms: int, end_ms: int
) -> MergedSketch:
    """Merge the stored sketches of one series for the hours starting in [start_ms, end_ms).

    One row per (hour, frame) is read (``GROUP BY`` frame: copies of a frame written twice and
    not merged yet count once).
    """
    rows = store.query(
        "SELECT bucket, frame_id, any(count), any(min), any(max), any(sum), hex(any(sketch)) "
        f"FROM {store.table('sketches_1h')} "
        "WHERE territory = {t:String} AND sensor = {s:String} AND metric = {m:String} "
        "AND bucket >= toStartOfHour(fromUnixTimestamp64Milli({a:Int64}, 'UTC')) "
        "AND bucket < fromUnixTimestamp64Milli({b:Int64}, 'UTC') "
        "GROUP BY bucket, frame_id",
        {"t": territory, "s": sensor, "m": metric, "a": start_ms, "b": end_ms},
    )
    merged = bocage_native.QuantileSketch(RELATIVE_ACCURACY)
    count, low, high, total = 0, float("inf"), float("-inf"), 0.0
    hours = set()
    for bucket, _frame, n, lo, hi, s, blob in rows:
        merged.merge(bocage_native.QuantileSketch.from_bytes(bytes.fromhex(blob)))
        count += int(n)
        low, high, total = min(low, float(lo)), max(high, float(hi)), total + float(s)
        hours.add(bucket)
    if not count:
        low = high = float("nan")
    return MergedSketch(merged, count, low, high, total, len(hours), len(rows))
