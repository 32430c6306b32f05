"""Computing indicators in ClickHouse, on query, from the raw readings.

Why on query rather than materialised: a commune has tens of sensors, so one indicator over a
commune and a month reads a few hundred thousand rows at most, which ClickHouse aggregates in
milliseconds; in exchange, late data (a gateway draining its spool after an outage) is
reflected as soon as it is stored, with no recompute bookkeeping and no window where a
materialised value is wrong. Repeated identical queries (dashboards) are served from a short
cache (``IndicatorsSettings.cache_seconds``).

Every method computes *own* values: per territory whose gateways produced the readings, and per
local day. Groupings (EPCI, union) are then aggregated in Python from the values of the
territories beneath them, following the indicator's ``aggregation``. A ``ratio`` indicator
keeps its numerator and denominator per territory and day (internally: the API serves the
value), so that a grouping is the ratio of its communes' sums.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar
from zoneinfo import ZoneInfo

import msgspec

from bocage.core.logs import get_logger
from bocage.core.register import Register, Territory
from bocage.indicators.catalog import (
    ATMO_UPPER_BOUNDS,
    COUNTER_MAX_GAP,
    LEAK_THRESHOLD_LPH,
    NIGHT_END_HOUR,
    NIGHT_START_HOUR,
    STATE_HOLD,
    WASTE_BIN_FULL_PCT,
    Catalog,
    Indicator,
)
from bocage.indicators.settings import IndicatorsSettings

_READINGS: Final = "__readings__"
"""Placeholder for the qualified name of the readings table (``Store.table``)."""
_READINGS_1H: Final = "__readings_1h__"
"""Placeholder for the hourly rollup (one row per series and hour with data)."""
_GATEWAY_STATUS: Final = "__gateway_status__"
"""Placeholder for the gateways' periodic status events (cumulative counters)."""
_STATUS_COUNTERS: Final = frozenset(
    {"readings_accepted", "bytes_sent", "messages_sent", "radio_wakeups", "energy_mj",
     "frames_sent"}
)
"""Cumulative ``gateway_status`` counters an indicator may divide (column names, put in SQL)."""

log = get_logger("bocage.indicators")


class QueryStore(Protocol):
    """What the indicators need from :class:`bocage.store.Store`."""

    def table(self, name: str) -> str:
        """The qualified name of table ``name`` (e.g. `` `bocage`.`readings` ``)."""
        ...

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        """Rows of ``sql`` with ClickHouse server-side ``{name:Type}`` parameters bound."""
        ...


class IndicatorValue(msgspec.Struct, frozen=True, kw_only=True):
    """The value of an indicator for one territory and one local day."""

    territory: str
    date: date
    value: float
    sensors: int
    """Number of sensors behind the value (cabinets, meters, stations...)."""
    label: str | None = None
    """Name of the class for an index (e.g. ATMO ``Moyen``)."""


class Period(msgspec.Struct, frozen=True):
    """Inclusive range of local days."""

    first: date
    last: date

    def days(self) -> list[date]:
        """Every day of the period, in order."""
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _dedup() -> str:
    # Readings re-delivered with the same time must count once (ingest should prevent it;
    # indicators must not depend on it): one row per series and time, its highest value.
    # Quality 0 is a measurement, 1 an aggregate made by the gateway (spool compaction), 2 an
    # estimated value.
    return f"""
        SELECT territory, sensor, metric, ts, max(value) AS value
        FROM {_READINGS}
        WHERE metric IN {{metrics:Array(String)}} AND quality <= 1
          AND (territory, sensor) IN {{series:Array(Tuple(String, String))}}
          AND ts >= fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC')
          AND ts < fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC')
        GROUP BY territory, sensor, metric, ts"""


# Each query returns rows (territory, day, value, sensors) of own values.
_COUNTER_INCREASE = f"""
SELECT territory, day, sum(increase) AS total, uniqExact(sensor) AS sensors
FROM (
    SELECT territory, sensor, ts, toDate(ts, {{tz:String}}) AS day,
           if(value >= prev_value, value - prev_value, value) AS increase,
           rn, prev_ts
    FROM (
        SELECT territory, sensor, ts, value,
               lagInFrame(value) OVER w AS prev_value,
               lagInFrame(ts) OVER w AS prev_ts,
               row_number() OVER w AS rn
        FROM ({_dedup()})
        WINDOW w AS (PARTITION BY territory, sensor ORDER BY ts ASC
                     ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
)
WHERE rn > 1
  AND ts >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')
  AND toUnixTimestamp64Milli(ts) - toUnixTimestamp64Milli(prev_ts) < {{max_gap_ms:Int64}}
GROUP BY territory, day
"""

_STATE_DURATION = f"""
SELECT territory, day, avg(on_ms) / 3600000 AS hours, count() AS sensors
FROM (
    SELECT territory, sensor, day, sum(overlap * (value >= 0.5)) AS on_ms
    FROM (
        SELECT territory, sensor, value, day,
               least(end_ms, toUnixTimestamp(toDateTime(day + 1, {{tz:String}})) * 1000)
               - greatest(start_ms, toUnixTimestamp(toDateTime(day, {{tz:String}})) * 1000)
               AS overlap
        FROM (
            SELECT territory, sensor, value, start_ms,
                   least(next_ms, start_ms + {{hold_ms:Int64}}, {{now_ms:Int64}}) AS end_ms,
                   arrayJoin([toDate(ts, {{tz:String}}), toDate(ts, {{tz:String}}) + 1]) AS day
            FROM (
                SELECT territory, sensor, ts, value,
                       toUnixTimestamp64Milli(ts) AS start_ms,
                       toUnixTimestamp64Milli(leadInFrame(ts, 1, ts + toIntervalDay(365)) OVER w)
                           AS next_ms
                FROM ({_dedup()})
                WINDOW w AS (PARTITION BY territory, sensor ORDER BY ts ASC
                             ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
            )
        )
        WHERE overlap > 0
    )
    GROUP BY territory, sensor, day
)
WHERE day >= {{first:Date}} AND day <= {{last:Date}}
GROUP BY territory, day
"""

_NIGHT_MINIMA = f"""
    SELECT territory, sensor, toDate(ts, {{tz:String}}) AS day, min(value) AS night_min
    FROM ({_dedup()})
    WHERE toHour(ts, {{tz:String}}) >= {{night_start:UInt8}}
      AND toHour(ts, {{tz:String}}) < {{night_end:UInt8}}
    GROUP BY territory, sensor, day
"""

_NIGHT_MIN_FLOW = f"""
SELECT territory, day, sum(night_min), count() FROM ({_NIGHT_MINIMA}) GROUP BY territory, day
"""

_NIGHT_FLOW_OVER = f"""
SELECT territory, day, countIf(night_min > {{threshold:Float64}}), count()
FROM ({_NIGHT_MINIMA}) GROUP BY territory, day
"""

_MAX_AT_OR_ABOVE = f"""
SELECT territory, day, countIf(day_max >= {{threshold:Float64}}), count()
FROM (
    SELECT territory, sensor, toDate(ts, {{tz:String}}) AS day, max(value) AS day_max
    FROM ({_dedup()})
    GROUP BY territory, sensor, day
)
GROUP BY territory, day
"""


def _gateway_counter_increases(numerator: str, denominator: str) -> str:
    """Rows (territory, day, numerator increase, denominator increase, gateways): the counter
    increases of the gateways' consecutive statuses, like ``_COUNTER_INCREASE`` per counter."""
    for column in (numerator, denominator):
        if column not in _STATUS_COUNTERS:  # identifiers go into the SQL: closed set only
            raise ValueError(f"not a gateway_status counter: {column!r}")
    increase = "if({c} >= prev_{c}, {c} - prev_{c}, {c})"
    return f"""
SELECT territory, day, sum(num_increase), sum(den_increase), uniqExact(gateway)
FROM (
    SELECT territory, gateway, time, toDate(time, {{tz:String}}) AS day,
           {increase.format(c="num")} AS num_increase,
           {increase.format(c="den")} AS den_increase
    FROM (
        SELECT territory, gateway, time, num, den,
               lagInFrame(num) OVER w AS prev_num,
               lagInFrame(den) OVER w AS prev_den,
               lagInFrame(time) OVER w AS prev_time,
               row_number() OVER w AS rn
        FROM (
            -- a status stored twice (ReplacingMergeTree not merged yet) counts once
            SELECT territory, gateway, time,
                   max(toFloat64({numerator})) AS num, max(toFloat64({denominator})) AS den
            FROM {_GATEWAY_STATUS}
            WHERE (territory, gateway) IN {{gateways:Array(Tuple(String, String))}}
              AND time >= fromUnixTimestamp64Milli({{lo:Int64}}, 'UTC')
              AND time < fromUnixTimestamp64Milli({{hi:Int64}}, 'UTC')
            GROUP BY territory, gateway, time
        )
        WINDOW w AS (PARTITION BY territory, gateway ORDER BY time ASC
                     ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
    )
    WHERE rn > 1
      AND time >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC')
      AND toUnixTimestamp64Milli(time) - toUnixTimestamp64Milli(prev_time) < {{max_gap_ms:Int64}}
)
GROUP BY territory, day
"""


# Presence per sensor-hour from the hourly rollup (a row exists for every series and hour
# with at least one reading, of any quality): a fraction of the rows of `readings`. Rollup
# hours are UTC hours, which are the local clock hours in every zone with a whole-hour offset
# (metropolitan and overseas France, the Marquesas excepted).
_AVAILABILITY = f"""
SELECT territory, toDate(bucket, {{tz:String}}) AS day, uniqExact(sensor, bucket) AS present
FROM {_READINGS_1H}
WHERE (territory, sensor) IN {{series:Array(Tuple(String, String))}}
  AND bucket >= toDateTime(intDiv({{lo:Int64}}, 1000), 'UTC')
  AND bucket < toDateTime(intDiv({{hi:Int64}}, 1000), 'UTC')
GROUP BY territory, day
"""


def _atmo_bounds_sql() -> str:
    cases = ", ".join(
        f"metric = '{metric}', [{', '.join(str(float(b)) for b in bounds)}]"
        for metric, bounds in ATMO_UPPER_BOUNDS.items()
    )
    return f"multiIf({cases}, CAST([], 'Array(Float64)'))"


_ATMO = f"""
SELECT territory, day, max(station_index), uniqExact(sensor)
FROM (
    SELECT territory, sensor, day, max(1 + arrayCount(b -> concentration > b, bounds))
           AS station_index
    FROM (
        SELECT territory, sensor, metric, day,
               if(metric IN ('pm10', 'pm25'), sum(total) / sum(n), max(total / n))
                   AS concentration,
               {_atmo_bounds_sql()} AS bounds
        FROM (
            SELECT territory, sensor, metric, toDate(ts, {{tz:String}}) AS day,
                   toStartOfHour(ts, {{tz:String}}) AS hour, sum(value) AS total, count() AS n
            FROM ({_dedup()})
            GROUP BY territory, sensor, metric, day, hour
        )
        GROUP BY territory, sensor, metric, day
    )
    GROUP BY territory, sensor, day
)
GROUP BY territory, day
"""


_CacheKey = tuple[str, str | None, date, date]
# an entry of a territory and day (an indicator value, or a ratio's terms)
_Part = TypeVar("_Part")


class _Ratio(msgspec.Struct, frozen=True):
    """The terms of a ``ratio`` indicator for one territory and day (internal)."""

    numerator: float
    denominator: float
    sensors: int


class Indicators:
    """Computes the catalog's indicators for territories and periods, from the store.

    Thread-safe; :meth:`values` runs the query in a worker thread and caches results for
    ``settings.cache_seconds``.
    """

    def __init__(
        self,
        settings: IndicatorsSettings,
        store: QueryStore,
        register: Register,
        *,
        catalog: Catalog | None = None,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.register = register
        self.catalog = catalog or Catalog()
        self.tz = ZoneInfo(settings.timezone)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._monotonic = monotonic  # the cache's clock (tests move it)
        self._cache: OrderedDict[_CacheKey, tuple[float, list[IndicatorValue]]] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[_CacheKey, asyncio.Future[list[IndicatorValue]]] = {}

    # -- territories --------------------------------------------------------------------

    def scope(self, territory: str | None) -> list[Territory]:
        """``territory`` and every territory beneath it (all territories when None).

        Raises KeyError for a territory the register does not know.
        """
        if territory is None:
            return list(self.register.territories)
        root = self.register.territory(territory)
        if root is None:
            raise KeyError(territory)
        return [root, *self._descendants(root.code)]

    def _descendants(self, code: str) -> list[Territory]:
        out: list[Territory] = []
        seen = {code}
        frontier = [code]
        while frontier:
            parent = frontier.pop()
            for t in self.register.territories:
                # `seen` guards against a cycle in a hand-written register
                if t.parent == parent and t.code not in seen:
                    seen.add(t.code)
                    out.append(t)
                    frontier.append(t.code)
        return out

    def today(self) -> date:
        """The current local day."""
        return self._clock().astimezone(self.tz).date()

    def _day_start(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=self.tz)

    # -- computation --------------------------------------------------------------------

    async def values(
        self, indicator: Indicator, territory: str | None, period: Period
    ) -> list[IndicatorValue]:
        """Values of ``indicator`` for ``territory`` (and the territories beneath it), per day.

        The query runs in a worker thread so the event loop keeps serving other requests. With
        ``settings.cache_seconds`` > 0 a result is reused for that long; for as long again it
        is still served while one background query refreshes it (so an expiry never stalls a
        burst of requests), and concurrent requests for a missing result share one query.
        A result is thus at most 2 × ``cache_seconds`` old (plus the query time).
        """
        ttl = self.settings.cache_seconds
        if ttl <= 0:
            return await asyncio.to_thread(self.compute, indicator, territory, period)
        key = (indicator.id, territory, period.first, period.last)
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._refresh(key, indicator, territory, period))
            # a background refresh nobody awaits must not end as "exception never retrieved"
            pending.add_done_callback(_retrieve)
            self._inflight[key] = pending
        if hit is not None and now - hit[0] < 2 * ttl:
            return hit[1]  # stale but recent: the refresh runs in the background
        return await asyncio.shield(pending)

    async def _refresh(
        self, key: _CacheKey, indicator: Indicator, territory: str | None, period: Period
    ) -> list[IndicatorValue]:
        try:
            started = self._monotonic()
            result = await asyncio.to_thread(self.compute, indicator, territory, period)
            with self._lock:
                self._cache[key] = (started, result)
                self._cache.move_to_end(key)
                while len(self._cache) > self.settings.cache_entries:
                    self._cache.popitem(last=False)
            return result
        finally:
            self._inflight.pop(key, None)

    def compute(
        self, indicator: Indicator, territory: str | None, period: Period
    ) -> list[IndicatorValue]:
        """Compute (uncached) the values of ``indicator``; see :meth:`values`.

        Returns one value per territory in scope and day that has data, sorted by territory
        then day. Raises KeyError for an unknown territory.
        """
        scope = self.scope(territory)
        if indicator.aggregation == "ratio":
            return self._aggregate_ratio(scope, self._ratio_terms(indicator, scope, period))
        own = self._own_values(indicator, scope, period)
        return self._aggregate(indicator, scope, own)

    def _query(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        sql = sql.replace(_READINGS_1H, self.store.table("readings_1h"))
        sql = sql.replace(_GATEWAY_STATUS, self.store.table("gateway_status"))
        return self.store.query(sql.replace(_READINGS, self.store.table("readings")), params)

    def _series(self, indicator: Indicator, scope: Iterable[Territory]) -> list[tuple[str, str]]:
        return [
            (t.code, s.id)
            for t in scope
            for g in t.gateways
            for s in g.sensors
            if indicator.sensor_kind is None or s.kind == indicator.sensor_kind
        ]

    def _own_values(
        self, indicator: Indicator, scope: list[Territory], period: Period
    ) -> dict[tuple[str, date], IndicatorValue]:
        series = self._series(indicator, scope)
        if not series:
            return {}
        start = self._day_start(period.first)
        end = self._day_start(period.last + timedelta(days=1))
        now = self._clock()
        params: dict[str, Any] = {
            "tz": self.settings.timezone,
            "series": series,
            "metrics": list(indicator.metrics),
            "lo": _ms(start),
            "hi": _ms(end),
        }
        method = indicator.method
        if method == "counter_increase":
            sql = _COUNTER_INCREASE
            params.update(
                lo=_ms(start - COUNTER_MAX_GAP),
                start=_ms(start),
                max_gap_ms=int(COUNTER_MAX_GAP.total_seconds() * 1000),
            )
        elif method == "state_duration":
            sql = _STATE_DURATION
            params.update(
                lo=_ms(start - STATE_HOLD),
                hold_ms=int(STATE_HOLD.total_seconds() * 1000),
                now_ms=_ms(now),
                first=period.first,
                last=period.last,
            )
        elif method in ("night_min_flow", "night_flow_over"):
            sql = _NIGHT_MIN_FLOW if method == "night_min_flow" else _NIGHT_FLOW_OVER
            params.update(
                night_start=NIGHT_START_HOUR, night_end=NIGHT_END_HOUR, threshold=LEAK_THRESHOLD_LPH
            )
        elif method == "availability":
            return self._availability(indicator, scope, period, params, now)
        elif method == "atmo":
            sql = _ATMO
        elif method == "max_at_or_above":
            sql = _MAX_AT_OR_ABOVE
            params.update(threshold=WASTE_BIN_FULL_PCT)
        else:  # pragma: no cover - Method is a closed Literal
            raise ValueError(f"unknown method {method}")
        out: dict[tuple[str, date], IndicatorValue] = {}
        for code, day, raw, sensors in self._query(sql, params):
            value = float(raw) * indicator.scale
            out[(code, day)] = IndicatorValue(
                territory=code, date=day, value=value, sensors=int(sensors),
                label=_label(indicator, value),
            )
        return out

    def _ratio_terms(
        self, indicator: Indicator, scope: list[Territory], period: Period
    ) -> dict[tuple[str, date], _Ratio]:
        if indicator.method != "gateway_counter_ratio" or indicator.denominator is None:
            raise ValueError(f"{indicator.id}: a ratio reads gateway_status counters")
        gateways = [(t.code, g.id) for t in scope for g in t.gateways]
        if not gateways:
            return {}
        start = self._day_start(period.first)
        end = self._day_start(period.last + timedelta(days=1))
        params: dict[str, Any] = {
            "tz": self.settings.timezone,
            "gateways": gateways,
            "lo": _ms(start - COUNTER_MAX_GAP),
            "hi": _ms(end),
            "start": _ms(start),
            "max_gap_ms": int(COUNTER_MAX_GAP.total_seconds() * 1000),
        }
        sql = _gateway_counter_increases(indicator.metrics[0], indicator.denominator)
        return {
            (code, day): _Ratio(float(num) * indicator.scale, float(den), int(gws))
            for code, day, num, den, gws in self._query(sql, params)
        }

    def _availability(
        self,
        indicator: Indicator,
        scope: list[Territory],
        period: Period,
        params: dict[str, Any],
        now: datetime,
    ) -> dict[tuple[str, date], IndicatorValue]:
        # Only ended clock hours are expected: today's value is not dragged down by the hours
        # still to come, nor by the current hour whose readings may still be in flight.
        cutoff = now.astimezone(self.tz).replace(minute=0, second=0, microsecond=0)
        params["hi"] = min(params["hi"], _ms(cutoff))
        present: dict[tuple[str, date], int] = {}
        if params["lo"] < params["hi"]:
            for code, day, count in self._query(_AVAILABILITY, params):
                present[(code, day)] = int(count)
        expected = {
            t.code: sum(1 for g in t.gateways for _ in g.sensors) for t in scope
        }
        out: dict[tuple[str, date], IndicatorValue] = {}
        for day in period.days():
            begin = self._day_start(day)
            finish = min(self._day_start(day + timedelta(days=1)), cutoff)
            hours = math.floor((finish - begin).total_seconds() / 3600)
            if hours <= 0:
                continue
            for code, sensors in expected.items():
                if sensors == 0:
                    continue
                value = 100.0 * present.get((code, day), 0) / (sensors * hours)
                out[(code, day)] = IndicatorValue(
                    territory=code, date=day, value=value, sensors=sensors
                )
        return out

    def _parts(
        self, scope: list[Territory], keyed: Mapping[tuple[str, date], _Part]
    ) -> Iterator[tuple[str, date, list[_Part]]]:
        """For each territory of `scope` and each day of `keyed`, the entries of the territory
        and of everything beneath it (only pairs with at least one)."""
        days = sorted({day for _, day in keyed})
        for territory in scope:
            members = [territory.code, *(t.code for t in self._descendants(territory.code))]
            for day in days:
                parts = [keyed[(m, day)] for m in members if (m, day) in keyed]
                if parts:
                    yield territory.code, day, parts

    def _aggregate(
        self,
        indicator: Indicator,
        scope: list[Territory],
        own: dict[tuple[str, date], IndicatorValue],
    ) -> list[IndicatorValue]:
        out: list[IndicatorValue] = []
        for code, day, parts in self._parts(scope, own):
            if len(parts) == 1 and parts[0].territory == code:
                out.append(parts[0])
            else:
                out.append(_combine(indicator, code, day, parts))
        out.sort(key=lambda v: (v.territory, v.date))
        return out

    def _aggregate_ratio(
        self, scope: list[Territory], terms: dict[tuple[str, date], _Ratio]
    ) -> list[IndicatorValue]:
        # Numerators and denominators are summed over the territory and everything beneath it
        # (a commune whose own denominator is zero has no value but still counts in its
        # groupings), then divided: a ratio of sums, never a mean of ratios.
        out: list[IndicatorValue] = []
        for code, day, parts in self._parts(scope, terms):
            denominator = sum(p.denominator for p in parts)
            if denominator <= 0:
                continue
            out.append(IndicatorValue(
                territory=code, date=day,
                value=sum(p.numerator for p in parts) / denominator,
                sensors=sum(p.sensors for p in parts),
            ))
        out.sort(key=lambda v: (v.territory, v.date))
        return out


def _retrieve(future: asyncio.Future[list[IndicatorValue]]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("indicator refresh failed", error=repr(future.exception()))


def _combine(
    indicator: Indicator, code: str, day: date, parts: list[IndicatorValue]
) -> IndicatorValue:
    sensors = sum(p.sensors for p in parts)
    if indicator.aggregation == "sum":
        value = sum(p.value for p in parts)
    elif indicator.aggregation == "max":
        value = max(p.value for p in parts)
    elif indicator.aggregation == "ratio":  # pragma: no cover - _aggregate_ratio handles them
        raise ValueError(f"{indicator.id}: a ratio is aggregated from its terms")
    else:  # sensor_mean: every commune value is itself a mean over its sensors
        value = sum(p.value * p.sensors for p in parts) / sensors if sensors else 0.0
    return IndicatorValue(
        territory=code, date=day, value=value, sensors=sensors, label=_label(indicator, value)
    )


def _label(indicator: Indicator, value: float) -> str | None:
    if not indicator.labels:
        return None
    index = int(value)
    if 1 <= index <= len(indicator.labels):
        return indicator.labels[index - 1]
    return None
