"""The indicators service publishes the latest values as Prometheus gauges."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prometheus_client import CollectorRegistry
from territory_sample import EPCI, A, B, Writer, at, base_day, register

from bocage.indicators import IndicatorService, IndicatorsSettings
from bocage.store import Store


def test_refresh_exports_the_latest_value_per_territory(store: Store, writer: Writer) -> None:
    d = base_day() + timedelta(days=9)  # yesterday: inside the service's window
    writer.add(B, "lc-b1", "energy", [(at(d, "00:00"), 0), (at(d, "12:00"), 2500)])
    registry = CollectorRegistry()
    service = IndicatorService(IndicatorsSettings(), store, register(), metrics_registry=registry)
    assert service.refresh() == 0
    value = registry.get_sample_value
    assert value("bocage_indicators_value",
                 {"indicator": "lighting_energy_kwh", "territory": B}) == 2.5
    assert value("bocage_indicators_value",
                 {"indicator": "lighting_energy_kwh", "territory": EPCI}) == 2.5
    assert value("bocage_indicators_value",
                 {"indicator": "lighting_energy_kwh", "territory": A}) is None
    assert value("bocage_indicators_computations_total",
                 {"indicator": "lighting_energy_kwh"}) == 1.0
    # a second service on the same registry (a restart, another test) reuses the collectors
    IndicatorService(IndicatorsSettings(), store, register(), metrics_registry=registry)


def test_a_failing_computation_is_counted_and_the_others_go_on(store: Store) -> None:
    store.command(f"DROP TABLE {store.table('readings_1h')}")  # availability reads it
    registry = CollectorRegistry()
    service = IndicatorService(IndicatorsSettings(), store, register(), metrics_registry=registry)
    assert service.refresh() == 1
    assert registry.get_sample_value(
        "bocage_indicators_errors_total", {"indicator": "sensor_availability"}) == 1.0
    assert registry.get_sample_value(
        "bocage_indicators_computations_total", {"indicator": "lighting_energy_kwh"}) == 1.0


async def test_run_stops_when_asked(store: Store) -> None:
    service = IndicatorService(IndicatorsSettings(refresh_seconds=3600), store, register(),
                               metrics_registry=CollectorRegistry())
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    stop.set()
    await asyncio.wait_for(task, 30)
