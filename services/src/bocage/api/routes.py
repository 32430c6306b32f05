"""Route handlers of ``/api/v1`` (indicators, territories, sensor register) and operations."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
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
    SensorRegisterEntry,
    TerritoryInfo,
)
from bocage.indicators import Indicator, Period

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


API_V1 = [list_indicators, indicator_values, indicator_table_schema, list_territories, list_sensors]
OPS = [health, metrics, catalog]
