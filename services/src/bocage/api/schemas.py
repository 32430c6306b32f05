"""Response bodies of the API (msgspec Structs: one definition for encoding and OpenAPI)."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from bocage.core.register import SENSOR_KINDS, Gateway, Sensor, Territory
from bocage.indicators import Indicator, IndicatorValue


class IndicatorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A published indicator with its definition (algorithmic transparency)."""

    id: str
    title: str
    unit: str
    definition: str
    period: str
    aggregation: str
    sensor_kind: str | None
    metrics: tuple[str, ...]
    labels: tuple[str, ...]
    href: str
    """Where its values are served."""

    @classmethod
    def of(cls, indicator: Indicator) -> IndicatorInfo:
        """The public view of ``indicator``."""
        return cls(
            id=indicator.id,
            title=indicator.title,
            unit=indicator.unit,
            definition=indicator.definition,
            period=indicator.period,
            aggregation=indicator.aggregation,
            sensor_kind=indicator.sensor_kind,
            metrics=indicator.metrics,
            labels=indicator.labels,
            href=f"/api/v1/indicators/{indicator.id}",
        )


class CatalogResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /api/v1/indicators``."""

    timezone: str
    """Time zone of the local days every indicator is computed on."""
    indicators: list[IndicatorInfo]


class IndicatorValuesResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /api/v1/indicators/{id}``: values per territory and local day."""

    indicator: IndicatorInfo
    territory: str | None
    """The territory asked for (values include the territories beneath it); None: all."""
    from_: date = msgspec.field(name="from")
    to: date
    timezone: str
    values: list[IndicatorValue]


class TerritoryInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A territory of the pooled stack."""

    code: str
    """INSEE COG code of a commune, SIREN of a grouping."""
    name: str
    kind: str
    parent: str | None
    gateways: int
    sensors: int

    @classmethod
    def of(cls, territory: Territory) -> TerritoryInfo:
        """The public view of ``territory``."""
        return cls(
            code=territory.code,
            name=territory.name,
            kind=territory.kind,
            parent=territory.parent,
            gateways=len(territory.gateways),
            sensors=sum(len(g.sensors) for g in territory.gateways),
        )


class MetricInfo(msgspec.Struct, frozen=True):
    """A metric a sensor measures."""

    name: str
    unit: str


class SensorRegisterEntry(msgspec.Struct, frozen=True, kw_only=True):
    """The public register entry of a sensor in public space (what, why, who, how long)."""

    id: str
    territory: str
    gateway: str
    kind: str
    kind_title: str
    name: str
    purpose: str
    metrics: list[MetricInfo]
    personal_data: bool
    legal_basis: str
    controller: str
    retention_days: int
    latitude: float | None
    longitude: float | None
    public: bool
    """False only in answers to a key of the sensor's territory."""

    @classmethod
    def of(cls, territory: Territory, gateway: Gateway, sensor: Sensor) -> SensorRegisterEntry:
        """The register entry of ``sensor``; the controller defaults to its territory."""
        kind = SENSOR_KINDS.get(sensor.kind)
        return cls(
            id=sensor.id,
            territory=territory.code,
            gateway=gateway.id,
            kind=sensor.kind,
            kind_title=kind.title if kind else sensor.kind,
            name=sensor.name or sensor.id,
            purpose=kind.purpose if kind else "",
            metrics=[MetricInfo(m.name, m.unit) for m in (kind.metrics if kind else ())],
            personal_data=sensor.personal_data,
            legal_basis=sensor.legal_basis,
            controller=sensor.controller or territory.name,
            retention_days=sensor.retention_days
            if sensor.retention_days is not None
            else (kind.retention_days if kind else 0),
            latitude=sensor.latitude,
            longitude=sensor.longitude,
            public=sensor.public,
        )


class Health(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /health`` when ready."""

    status: str
    store: str


class QuantileValue(msgspec.Struct, frozen=True, kw_only=True):
    """One quantile of a series with its guaranteed bounds."""

    q: float
    value: float | None
    """The sketch's estimate; None when there is no reading in the period."""
    lower: float | None
    """The exact quantile is at least this (``value`` within the relative accuracy)."""
    upper: float | None
    """The exact quantile is at most this."""


class QuantilesResponse(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /api/v1/sensors/{id}/quantiles``: quantiles of one series over whole UTC hours."""

    sensor: str
    territory: str
    metric: str
    from_: datetime = msgspec.field(name="from")
    """Start of the first hour covered (``from`` rounded down to the hour, UTC)."""
    to: datetime
    """End of the last hour covered (``to`` rounded up to the hour, UTC; exclusive)."""
    count: int
    """Readings behind the quantiles (finite values)."""
    min: float | None
    max: float | None
    mean: float | None
    hours: int
    """Hours with data in the period."""
    relative_accuracy: float
    """Every ``value`` is within this relative error of the exact quantile
    (``|value - exact| <= relative_accuracy * |exact|``); q = 0 and q = 1 are exact."""
    quantiles: list[QuantileValue]
