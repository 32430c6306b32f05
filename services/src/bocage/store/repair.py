"""Reconciling derived tables with ``readings`` after an interrupted insert.

One INSERT into ``readings`` writes several parts: the readings themselves, then what the
materialized views derive from them (rollups, frame ledger). ClickHouse has no transaction
across them, so a process killed during an insert can leave a frame's readings stored while
some derived rows are not. Ingest calls :func:`reconcile` for the frames it is not sure about
(redelivered or retried), after making sure their readings are complete:

- each rollup bucket touched by those frames whose count is below the count of its raw
  readings is recomputed from ``readings`` (deleted, then re-aggregated with the view's own
  SELECT, read from ``system.tables``), so the rollups never miss nor double a reading;
- the ledger gets the missing ``readings`` count of each frame (its column is a sum).

Raw counts above rollup counts are the only sign of damage looked for: rollups legitimately
hold *more* than ``readings`` for rows that were already past their retention at insert.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bocage.core.logs import get_logger

if TYPE_CHECKING:
    from bocage.store.store import Store

log = get_logger("bocage.store.repair")

ROLLUPS: tuple[tuple[str, str, str], ...] = (
    ("readings_1m", "readings_1m_mv", "toStartOfMinute"),
    ("readings_1h", "readings_1h_mv", "toStartOfHour"),
    ("readings_1d", "readings_1d_mv", "toStartOfDay"),
)
_READINGS_COLUMNS = (
    "territory, gateway, sensor, metric, ts, value, quality, frame_id, ingested_at, retention_days"
)


@dataclass(frozen=True, slots=True)
class FrameSpan:
    """Where a frame's readings are: enough to find them and their rollup buckets cheaply."""

    territory: str
    frame_id: str
    series: tuple[tuple[str, str], ...]
    """(sensor, metric) of each series of the frame."""
    first_ms: int
    last_ms: int


def _view_select(store: Store, view: str, where: str) -> str:
    """The SELECT of materialized view ``view``, reading only the rows matching ``where``."""
    text = store.scalar(
        "SELECT as_select FROM system.tables WHERE database = {d:String} AND name = {n:String}",
        {"d": store.database, "n": view},
    )
    if not text:
        raise LookupError(f"materialized view {view} not found in {store.database}")
    db = re.escape(store.database)
    source = re.compile(rf"FROM\s+`?{db}`?\.`?readings`?(?=\s|$)")
    subquery = f"FROM (SELECT {_READINGS_COLUMNS} FROM {store.table('readings')} WHERE {where})"
    replaced, count = source.subn(subquery, str(text), count=1)
    if count != 1:
        raise LookupError(f"unexpected definition of {view}: {text}")
    return replaced


def reconcile(store: Store, frames: Sequence[FrameSpan]) -> int:
    """Make rollups and ledger agree with ``readings`` for ``frames``; return buckets fixed."""
    fixed = 0
    by_territory: dict[str, list[FrameSpan]] = {}
    for frame in frames:
        by_territory.setdefault(frame.territory, []).append(frame)
    for territory, group in by_territory.items():
        series = sorted({s for f in group for s in f.series})
        params: dict[str, Any] = {
            "t": territory,
            "k": series,
            "a": min(f.first_ms for f in group),
            "b": max(f.last_ms for f in group),
        }
        for table, view, bucket_of in ROLLUPS:
            fixed += _fix_rollup(store, table, view, bucket_of, params)
        _fix_ledger(store, territory, [f.frame_id for f in group])
    return fixed


def _fix_rollup(store: Store, table: str, view: str, bucket_of: str, params: dict[str, Any]) -> int:
    series = "(sensor, metric) IN {k:Array(Tuple(String, String))}"
    damaged = store.query(
        "SELECT r.sensor, r.metric, r.b FROM "
        f"(SELECT sensor, metric, {bucket_of}(ts) AS b, count() AS n "
        f"FROM {store.table('readings')} WHERE territory = {{t:String}} AND {series} "
        # whole buckets: other frames' readings in the same buckets count too
        f"AND ts >= {bucket_of}(fromUnixTimestamp64Milli({{a:Int64}}, 'UTC')) "
        f"AND b <= {bucket_of}(fromUnixTimestamp64Milli({{b:Int64}}, 'UTC')) "
        "GROUP BY sensor, metric, b) AS r "
        "LEFT JOIN "
        f"(SELECT sensor, metric, bucket AS b, sum(count) AS n FROM {store.table(table)} "
        f"WHERE territory = {{t:String}} AND {series} "
        f"AND bucket BETWEEN {bucket_of}(fromUnixTimestamp64Milli({{a:Int64}}, 'UTC')) "
        "AND fromUnixTimestamp64Milli({b:Int64}, 'UTC') GROUP BY sensor, metric, b) AS g "
        "ON r.sensor = g.sensor AND r.metric = g.metric AND r.b = g.b "
        "WHERE r.n > g.n",
        params,
    )
    if not damaged:
        return 0
    keys = [(str(s), str(m), b) for s, m, b in damaged]
    log.warning(
        "recomputing rollup buckets left incomplete by an interrupted insert",
        table=table,
        buckets=len(keys),
        territory=params["t"],
    )
    bucket_params = {**params, "d": keys}
    store.command(
        f"ALTER TABLE {store.table(table)} DELETE WHERE territory = {{t:String}} "
        "AND (sensor, metric, bucket) IN {d:Array(Tuple(String, String, DateTime('UTC')))}",
        bucket_params,
        settings={"mutations_sync": 2},
    )
    where = (
        "territory = {t:String} AND (sensor, metric, "
        f"toDateTime({bucket_of}(ts), 'UTC')) "
        "IN {d:Array(Tuple(String, String, DateTime('UTC')))}"
    )
    store.command(
        f"INSERT INTO {store.table(table)} {_view_select(store, view, where)}",
        bucket_params,
    )
    return len(keys)


def _fix_ledger(store: Store, territory: str, frame_ids: list[str]) -> None:
    params = {"t": territory, "f": frame_ids}
    short = store.query(
        "SELECT r.frame_id, r.n - g.n FROM "
        f"(SELECT frame_id, count() AS n FROM {store.table('readings')} "
        "WHERE territory = {t:String} AND frame_id IN {f:Array(String)} GROUP BY frame_id) AS r "
        "LEFT JOIN "
        f"(SELECT any(frame_id) AS fid, sum(readings) AS n FROM {store.table('frames')} "
        "WHERE territory = {t:String} AND frame_id IN {f:Array(String)} "
        "GROUP BY territory, gateway, sequence) AS g ON r.frame_id = g.fid "
        "WHERE r.n > g.n",
        params,
    )
    if not short:
        return
    log.warning("completing the frame ledger after an interrupted insert", frames=len(short))
    missing = {str(f): int(n) for f, n in short}
    where = "territory = {t:String} AND frame_id IN {f:Array(String)}"
    select = _view_select(store, "frames_mv", where)
    # the view's SELECT counts every row of the frame; keep only the missing part of the count
    store.command(
        f"INSERT INTO {store.table('frames')} "
        "SELECT territory, gateway, sequence, frame_id, "
        "toUInt64(arrayElement({n:Array(UInt64)}, indexOf({f:Array(String)}, frame_id))) "
        f"AS readings, first_ts, last_ts, ingested_at FROM ({select})",
        {"t": territory, "f": list(missing), "n": list(missing.values())},
    )
