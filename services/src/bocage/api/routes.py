"""Route handlers of ``/api/v1`` (indicators, territories, sensor register) and operations."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bocage.api import opendata
from bocage.api.access import scope_of
from bocage.api.problems import bad_parameter, not_found, problem
from bocage.api.schemas import (
    CatalogResponse,
    Health,
    IndicatorInfo,
    IndicatorValuesResponse,
    QuantilesResponse,
    QuantileValue,
    SensorRegisterEntry,
    TerritoryInfo,
)
from bocage.indicators import Indicator, Period
from bocage.store.sketches import RELATIVE_ACCURACY, merged_sketch

if TYPE_CHECKING:
    from bocage.api.app import Resources

def resources(state: State) -> Resources:
    """The resources ``create_app`` was given."""
    res: Resources = state["resources"]
    return res


def _parse_date(name: str, raw: str | None) -> date | None:
    if raw is None or raw == "":
        return None
    reason = f"expected a date as YYYY-MM-DD, got {raw!r}"
    # fromisoformat alone would also accept 20250101 or 2025-W01-1: only the documented form
    if len(raw) != 10:
        raise bad_parameter(name, reason)
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise bad_parameter(name, reason) from None


def period_of(res: Resources, raw_from: str | None, raw_to: str | None) -> Period:
    """The inclusive local-day period of a query; defaults to the last days up to today."""
    settings = res.indicators.settings
    first = _parse_date("from", raw_from)
    last = _parse_date("to", raw_to)
    if last is None:
        last = res.indicators.today() if first is None else first + timedelta(
            days=settings.default_days - 1
        )
    if first is None:
        first = last - timedelta(days=settings.default_days - 1)
    if first > last:
        raise bad_parameter("from", f"{first} is after `to` ({last})")
    if (last - first).days + 1 > settings.max_days:
        raise bad_parameter("to", f"the period is longer than {settings.max_days} days")
    return Period(first, last)


def _indicator(res: Resources, indicator_id: str) -> Indicator:
    indicator = res.indicators.catalog.get(indicator_id)
    if indicator is None:
        known = ", ".join(res.indicators.catalog.ids())
        raise not_found(f"no indicator {indicator_id!r}; the catalog has: {known}")
    return indicator


def _check_territory(res: Resources, territory: str | None) -> None:
    if territory is not None and res.register.territory(territory) is None:
        raise not_found(f"no territory {territory!r} in the register")


@get("/indicators", summary="Catalog of indicators with their published definitions")
async def list_indicators(state: State) -> CatalogResponse:
    """Every indicator: id, title, unit, exact definition, sensors it reads, aggregation."""
    res = resources(state)
    return CatalogResponse(
        timezone=res.indicators.settings.timezone,
        indicators=[IndicatorInfo.of(i) for i in res.indicators.catalog],
    )


@get(
    "/indicators/{indicator_id:str}",
    summary="Values of an indicator per territory and day (JSON; `{id}.csv` for CSV)",
)
async def indicator_values(
    state: State,
    indicator_id: FromPath[str],
    territory: Annotated[
        str | None,
        QueryParameter(
            description="INSEE code of a commune or SIREN of a grouping (its communes too)"
        ),
    ] = None,
    from_: Annotated[
        str | None, QueryParameter(name="from", description="first local day, YYYY-MM-DD")
    ] = None,
    to: Annotated[
        str | None, QueryParameter(description="last local day (inclusive), YYYY-MM-DD")
    ] = None,
) -> IndicatorValuesResponse | Response[str]:
    """Values per territory and local day, computed from the stored readings.

    ``/api/v1/indicators/{id}.csv`` answers the same values as CSV (open data), described by
    ``/api/v1/indicators/{id}/schema.json``.
    """
    res = resources(state)
    as_csv = indicator_id.endswith(".csv")
    indicator = _indicator(res, indicator_id.removesuffix(".csv"))
    territory = territory or None
    period = period_of(res, from_, to)
    _check_territory(res, territory)
    values = await res.indicators.values(indicator, territory, period)
    if as_csv:
        filename = f"{indicator.id}_{territory or 'all'}_{period.first}_{period.last}.csv"
        return Response(
            opendata.to_csv(indicator, values, res.register),
            media_type=opendata.CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return IndicatorValuesResponse(
        indicator=IndicatorInfo.of(indicator),
        territory=territory,
        from_=period.first,
        to=period.last,
        timezone=res.indicators.settings.timezone,
        values=values,
    )


@get("/indicators/{indicator_id:str}/schema.json", summary="Table Schema of the CSV export")
async def indicator_table_schema(state: State, indicator_id: FromPath[str]) -> dict[str, Any]:
    """The Table Schema (frictionless) describing ``/api/v1/indicators/{id}.csv``."""
    res = resources(state)
    return opendata.table_schema(_indicator(res, indicator_id), res.settings.public_url)


@get("/territories", summary="Territories of the pooled stack")
async def list_territories(state: State) -> list[TerritoryInfo]:
    """Communes (INSEE code) and groupings (SIREN), with their parent grouping."""
    return [TerritoryInfo.of(t) for t in resources(state).register.territories]


@get("/sensors", summary="Sensor register (public sensors; a territory's key adds its own)")
async def list_sensors(
    request: Request[Any, Any, Any],
    state: State,
    territory: Annotated[
        str | None, QueryParameter(description="only this territory's sensors")
    ] = None,
) -> list[SensorRegisterEntry]:
    """The sensors in public space: purpose, data, retention, legal basis, controller.

    Without an API key only the sensors declared public; with a territory's key, also that
    territory's non-public sensors (``public`` is false on those).
    """
    res = resources(state)
    scope = scope_of(request, res.settings.keys, res.register)
    territory = territory or None
    _check_territory(res, territory)
    return [
        SensorRegisterEntry.of(t, g, s)
        for t, g, s in res.register.sensors()
        if scope.sees(t.code, s.public) and (territory is None or t.code == territory)
    ]


HOUR_MS = 3_600_000
QUANTILES_MAX_DAYS = 366
QUANTILES_DEFAULT_HOURS = 24
QUANTILES_MAX_LEVELS = 20


def _parse_instant(name: str, raw: str | None) -> int | None:
    """Epoch ms of an ISO 8601 date (UTC midnight) or date-time with a zone (or ``Z``)."""
    if raw is None or raw == "":
        return None
    reason = f"expected YYYY-MM-DD or an ISO 8601 date-time with a time zone, got {raw!r}"
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_parameter(name, reason) from None
    if moment.tzinfo is None:
        raise bad_parameter(name, reason)
    return int(moment.timestamp() * 1000)


def _parse_levels(raw: str) -> list[float]:
    parts = [p.strip() for p in raw.split(",")]
    levels = []
    for part in parts:
        try:
            level = float(part)
        except ValueError:
            level = math.nan
        if not 0.0 <= level <= 1.0:  # also refuses NaN
            raise bad_parameter(
                "q", f"expected numbers between 0 and 1 separated by commas, got {part!r}"
            )
        levels.append(level)
    if len(levels) > QUANTILES_MAX_LEVELS:
        raise bad_parameter("q", f"at most {QUANTILES_MAX_LEVELS} levels")
    return levels


def _bounds(q: float, value: float) -> tuple[float, float]:
    """Where the exact quantile lies given the sketch's relative accuracy."""
    if q in (0.0, 1.0):  # the exact min and max are kept
        return value, value
    a = RELATIVE_ACCURACY
    low, high = value / (1 + a), value / (1 - a)
    return (low, high) if value >= 0 else (high, low)


@get(
    "/sensors/{sensor_id:str}/quantiles",
    summary="Quantiles of one sensor's metric over a period (merged hourly sketches)",
)
async def sensor_quantiles(
    request: Request[Any, Any, Any],
    *,
    state: State,
    sensor_id: FromPath[str],
    metric: Annotated[
        str | None, QueryParameter(description="metric of the sensor, e.g. power")
    ] = None,
    from_: Annotated[
        str | None,
        QueryParameter(
            name="from",
            description="start (YYYY-MM-DD = 00:00 UTC, or ISO 8601 with a zone); "
            "rounded down to the hour; default: 24 hours before `to`",
        ),
    ] = None,
    to: Annotated[
        str | None,
        QueryParameter(description="end (exclusive), rounded up to the hour; default: now"),
    ] = None,
    q: Annotated[
        str, QueryParameter(description="levels in [0, 1], comma-separated")
    ] = "0.5,0.9,0.99",
    territory: Annotated[
        str | None,
        QueryParameter(description="territory of the sensor, when its id exists in several"),
    ] = None,
) -> QuantilesResponse:
    """Quantiles of a (sensor, metric) series over whole UTC hours, with their error bound.

    Ingest keeps one native DDSketch per frame, series and hour; they are merged here. Every
    value is within ``relative_accuracy`` (1 %) relative error of the exact quantile of the
    stored readings (``lower`` / ``upper`` bound it). Public sensors are open; a territory's
    key also reaches its non-public sensors.
    """
    res = resources(state)
    scope = scope_of(request, res.settings.keys, res.register)
    if not metric:
        raise bad_parameter("metric", "required, e.g. metric=power")
    levels = _parse_levels(q)
    end = _parse_instant("to", to)
    start = _parse_instant("from", from_)
    if end is None:
        now = int(time.time() * 1000)
        end = now if start is None else start + QUANTILES_DEFAULT_HOURS * HOUR_MS
    if start is None:
        start = end - QUANTILES_DEFAULT_HOURS * HOUR_MS
    start -= start % HOUR_MS
    end += -end % HOUR_MS
    if start >= end:
        raise bad_parameter("from", "must be before `to`")
    if end - start > QUANTILES_MAX_DAYS * 24 * HOUR_MS:
        raise bad_parameter("to", f"the period is longer than {QUANTILES_MAX_DAYS} days")
    territory = territory or None
    _check_territory(res, territory)
    found = [
        t.code
        for t, _g, s in res.register.sensors()
        if s.id == sensor_id
        and scope.sees(t.code, s.public)
        and (territory is None or t.code == territory)
    ]
    if not found:  # a sensor out of the caller's scope does not exist for them
        where = f" in territory {territory!r}" if territory else ""
        raise not_found(f"no sensor {sensor_id!r}{where}")
    if len(found) > 1:
        raise bad_parameter(
            "territory", f"sensor {sensor_id!r} exists in {', '.join(found)}: name one"
        )
    merged = await asyncio.to_thread(
        merged_sketch, res.store, found[0], sensor_id, metric, start_ms=start, end_ms=end
    )
    quantiles = []
    for level in levels:
        if merged.count:
            value = merged.sketch.quantile(level)
            low, high = _bounds(level, value)
            quantiles.append(QuantileValue(q=level, value=value, lower=low, upper=high))
        else:
            quantiles.append(QuantileValue(q=level, value=None, lower=None, upper=None))
    return QuantilesResponse(
        sensor=sensor_id,
        territory=found[0],
        metric=metric,
        from_=datetime.fromtimestamp(start / 1000, UTC),
        to=datetime.fromtimestamp(end / 1000, UTC),
        count=merged.count,
        min=merged.min if merged.count else None,
        max=merged.max if merged.count else None,
        mean=merged.sum / merged.count if merged.count else None,
        hours=merged.hours,
        relative_accuracy=RELATIVE_ACCURACY,
        quantiles=quantiles,
    )


@get("/health", summary="Ready when the store answers", include_in_schema=True)
async def health(state: State) -> Health:
    """200 when the store answers a trivial query in time, else a 503 problem."""
    res = resources(state)
    try:
        await asyncio.wait_for(
            asyncio.to_thread(res.store.query, "SELECT 1"),
            timeout=res.settings.health_timeout_seconds,
        )
    except Exception as exc:  # any failure of the store means "not ready", said plainly
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        raise problem(503, f"the store is not reachable ({reason})") from None
    return Health(status="ready", store="reachable")


@get("/catalog.jsonld", summary="DCAT catalogue of the open data (JSON-LD)",
     media_type="application/ld+json")
async def catalog(state: State) -> dict[str, Any]:
    """Datasets (one per indicator, the sensor register) and the SensorThings service."""
    res = resources(state)
    return opendata.dcat_catalog(
        list(res.indicators.catalog), res.register, res.settings.public_url, res.settings.title,
        res.indicators.today().isoformat(),
    )


@get("/metrics", summary="Prometheus metrics", media_type=CONTENT_TYPE_LATEST)
async def metrics(state: State) -> Response[bytes]:
    """Prometheus text exposition of the API's registry."""
    body = generate_latest(resources(state).metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


API_V1 = [
    list_indicators,
    indicator_values,
    indicator_table_schema,
    list_territories,
    list_sensors,
    sensor_quantiles,
]
OPS = [health, metrics, catalog]
