"""The indicators service: periodic publication of the latest values as Prometheus gauges.

Values are computed on query (see :mod:`bocage.indicators.compute`), so nothing has to be
materialised for the API. What runs periodically is the operators' view: the latest value of
each indicator per territory as a gauge (a leak suspicion or a drop of sensor availability can
then raise an alert), and counters of computations and failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from datetime import timedelta

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from bocage.core.logs import get_logger
from bocage.core.register import Register
from bocage.indicators.compute import Indicators, Period, QueryStore
from bocage.indicators.settings import IndicatorsSettings

log = get_logger("bocage.indicators")


class _ServiceMetrics:
    """The service's collectors in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.value = Gauge(
            "bocage_indicators_value",
            "Latest local day's value of an indicator for a territory",
            ["indicator", "territory"],
            registry=registry,
        )
        self.computations = Counter(
            "bocage_indicators_computations_total",
            "Indicator computations by the indicators service",
            ["indicator"],
            registry=registry,
        )
        self.errors = Counter(
            "bocage_indicators_errors_total",
            "Indicator computations that failed (the service logs and goes on)",
            ["indicator"],
            registry=registry,
        )
        self.duration = Histogram(
            "bocage_indicators_compute_seconds",
            "Time to compute one indicator for every territory",
            registry=registry,
        )


# Collectors are registered once per registry: a second service (tests, restarts) reuses them.
_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _ServiceMetrics] = (
    weakref.WeakKeyDictionary()
)


class IndicatorService:
    """Recomputes today's and yesterday's values every ``settings.refresh_seconds``."""

    def __init__(
        self,
        settings: IndicatorsSettings,
        store: QueryStore,
        register: Register,
        *,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.indicators = Indicators(settings, store, register)
        registry = REGISTRY if metrics_registry is None else metrics_registry
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = _ServiceMetrics(registry)
        self.value = metrics.value
        self.computations = metrics.computations
        self.errors = metrics.errors
        self.duration = metrics.duration

    def refresh(self) -> int:
        """Compute every indicator once; returns how many computations failed."""
        today = self.indicators.today()
        period = Period(today - timedelta(days=1), today)
        failed = 0
        for indicator in self.indicators.catalog:
            started = time.perf_counter()
            try:
                values = self.indicators.compute(indicator, None, period)
            except Exception:
                failed += 1
                self.errors.labels(indicator.id).inc()
                log.exception("indicator computation failed", indicator=indicator.id)
                continue
            self.computations.labels(indicator.id).inc()
            self.duration.observe(time.perf_counter() - started)
            latest = {v.territory: v.value for v in values}  # sorted by day: the last wins
            for territory, value in latest.items():
                self.value.labels(indicator.id, territory).set(value)
        return failed

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until ``stop`` is set; a failed computation is logged, counted, retried."""
        log.info("indicators service started", refresh_seconds=self.settings.refresh_seconds)
        while not stop.is_set():
            await asyncio.to_thread(self.refresh)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.refresh_seconds)
        log.info("indicators service stopped")
