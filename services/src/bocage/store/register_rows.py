"""Rows of the register tables, computed from a :class:`~bocage.core.register.Register`."""

from __future__ import annotations

from typing import Any

from bocage.core.register import SENSOR_KINDS, Register, Sensor

DEFAULT_RETENTION_DAYS = 730
MAX_RETENTION_DAYS = 65_535
"""``retention_days`` is stored as UInt16 (about 179 years): longer is clamped."""

Table = tuple[list[str], list[tuple[Any, ...]]]


def effective_retention(sensor: Sensor) -> int:
    """Days a reading of ``sensor`` is kept: its own declaration, else its kind's."""
    if sensor.retention_days is not None:
        days = sensor.retention_days
    else:
        kind = SENSOR_KINDS.get(sensor.kind)
        days = kind.retention_days if kind is not None else DEFAULT_RETENTION_DAYS
    return max(1, min(days, MAX_RETENTION_DAYS))


def register_tables(register: Register) -> dict[str, Table]:
    """Column names and rows of ``territories``, ``gateways``, ``sensors``, ``sensor_metrics``."""
    territories = [(t.code, t.name, t.kind, t.parent) for t in register.territories]
    gateways = [
        (g.territory or t.code, g.id, g.name) for t in register.territories for g in t.gateways
    ]
    sensors = []
    for territory, gateway, sensor in register.sensors():
        kind = SENSOR_KINDS.get(sensor.kind)
        sensors.append(
            (
                territory.code,
                gateway.id,
                sensor.id,
                sensor.kind,
                sensor.name,
                kind.purpose if kind is not None else "",
                sensor.personal_data,
                sensor.legal_basis,
                sensor.controller,
                sensor.public,
                effective_retention(sensor),
                sensor.latitude,
                sensor.longitude,
            )
        )
    metrics = [
        (kind.name, m.name, m.unit, m.kind, m.min, m.max)
        for kind in SENSOR_KINDS.values()
        for m in kind.metrics
    ]
    return {
        "territories": (["code", "name", "kind", "parent"], territories),
        "gateways": (["territory", "id", "name"], gateways),
        "sensors": (
            [
                "territory",
                "gateway",
                "id",
                "kind",
                "name",
                "purpose",
                "personal_data",
                "legal_basis",
                "controller",
                "public",
                "retention_days",
                "latitude",
                "longitude",
            ],
            sensors,
        ),
        "sensor_metrics": (["kind", "metric", "unit", "metric_kind", "min", "max"], metrics),
    }
