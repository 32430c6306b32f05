"""The register: territories, gateways, sensors and what each sensor measures.

A *territory* is a tenant (a commune by INSEE COG code, or a grouping by SIREN). A *gateway*
belongs to one territory; a *sensor* belongs to one gateway and carries its public register
entry (purpose, personal data, retention, legal basis, controller). The same structures are
read from TOML by the edge (its own sensors) and by the datacenter (the whole territory).
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

MetricKind = Literal["gauge", "counter", "state"]


class MetricSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One metric a sensor kind produces, with its unit and plausible range."""

    name: str
    unit: str
    kind: MetricKind = "gauge"
    min: float = float("-inf")
    max: float = float("inf")


class SensorKind(msgspec.Struct, frozen=True):
    """A family of sensors (street-lighting cabinet, water meter...) and its metrics."""

    name: str
    title: str
    metrics: tuple[MetricSpec, ...]
    purpose: str
    retention_days: int = 730

    def metric(self, name: str) -> MetricSpec | None:
        """The spec of metric ``name``, or None if this kind does not produce it."""
        for spec in self.metrics:
            if spec.name == name:
                return spec
        return None


def _kind(
    name: str, title: str, purpose: str, *metrics: MetricSpec, retention: int = 730
) -> SensorKind:
    return SensorKind(name, title, tuple(metrics), purpose, retention)


SENSOR_KINDS: Final[dict[str, SensorKind]] = {
    k.name: k
    for k in (
        _kind(
            "lighting_cabinet",
            "Street-lighting cabinet",
            "Measure public-lighting consumption and burn hours",
            MetricSpec("power", "W", "gauge", 0, 50_000),
            MetricSpec("energy", "Wh", "counter", 0, 1e12),
            MetricSpec("on", "1", "state", 0, 1),
        ),
        _kind(
            "building_meter",
            "Building electricity meter",
            "Follow the energy use of municipal buildings",
            MetricSpec("power", "W", "gauge", 0, 250_000),
            MetricSpec("energy", "Wh", "counter", 0, 1e13),
        ),
        _kind(
            "water_meter",
            "Water meter",
            "Follow water use and detect leaks on the municipal network",
            MetricSpec("flow", "L/h", "gauge", 0, 100_000),
            MetricSpec("volume", "L", "counter", 0, 1e12),
        ),
        _kind(
            "air_quality",
            "Air-quality station",
            "Measure outdoor air quality (ATMO index inputs)",
            MetricSpec("pm10", "ug/m3", "gauge", 0, 1000),
            MetricSpec("pm25", "ug/m3", "gauge", 0, 1000),
            MetricSpec("no2", "ug/m3", "gauge", 0, 1000),
            MetricSpec("o3", "ug/m3", "gauge", 0, 1000),
            MetricSpec("temperature", "Cel", "gauge", -50, 60),
        ),
        _kind(
            "waste_bin",
            "Waste-bin fill sensor",
            "Plan waste collection rounds",
            MetricSpec("fill", "%", "gauge", 0, 100),
            MetricSpec("temperature", "Cel", "gauge", -40, 90),
        ),
        _kind(
            "counter",
            "People or bike counter",
            "Count passages (aggregate counts only, no identification)",
            MetricSpec("count", "1", "counter", 0, 1e12),
        ),
    )
}


class Sensor(msgspec.Struct, frozen=True, kw_only=True):
    """A sensor and its public register entry."""

    id: str
    kind: str
    name: str = ""
    gateway: str = ""
    personal_data: bool = False
    legal_basis: str = "public task (GDPR art. 6-1-e)"
    controller: str = ""
    public: bool = True
    retention_days: int | None = None
    latitude: float | None = None
    longitude: float | None = None

    @property
    def spec(self) -> SensorKind:
        """The sensor kind (raises KeyError for an unknown kind; settings validate it first)."""
        return SENSOR_KINDS[self.kind]


class Gateway(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway of a territory and the sensors it reads."""

    id: str
    territory: str
    name: str = ""
    sensors: tuple[Sensor, ...] = ()


class Territory(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant: a commune (INSEE COG code) or a grouping (SIREN)."""

    code: str
    name: str
    kind: Literal["commune", "epci", "union"] = "commune"
    parent: str | None = None
    gateways: tuple[Gateway, ...] = ()


class Register(msgspec.Struct, frozen=True, kw_only=True):
    """Every territory, gateway and sensor the datacenter accepts data from."""

    territories: tuple[Territory, ...] = ()

    def territory(self, code: str) -> Territory | None:
        """The territory with INSEE/SIREN ``code``, or None."""
        return next((t for t in self.territories if t.code == code), None)

    def gateway(self, territory: str, gateway: str) -> Gateway | None:
        """The gateway ``gateway`` if it belongs to ``territory``, else None."""
        t = self.territory(territory)
        if t is None:
            return None
        return next((g for g in t.gateways if g.id == gateway), None)

    def sensors(self) -> list[tuple[Territory, Gateway, Sensor]]:
        """Every sensor with its territory and gateway."""
        return [(t, g, s) for t in self.territories for g in t.gateways for s in g.sensors]
