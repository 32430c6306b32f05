"""Settings of the indicator computation (section ``[indicators]`` of ``bocage.toml``)."""

from __future__ import annotations

import msgspec


class IndicatorsSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How indicators are computed and published.

    Indicators are computed on query from the raw readings (see ``docs/indicators.md``), so
    late data is reflected as soon as it is stored; ``cache_seconds`` bounds how stale an
    answer may be in exchange for cheap repeated queries (dashboards poll the same values).
    """

    timezone: str = "Europe/Paris"
    """IANA time zone of the local days indicators are computed on (e.g. Indian/Reunion)."""
    cache_seconds: float = 10.0
    """How long an identical query reuses a computed result (0 disables the cache)."""
    cache_entries: int = 4096
    """Most results kept in the cache (least recently used are evicted)."""
    max_days: int = 366
    """Longest period one query may ask for, in days."""
    default_days: int = 7
    """Period returned when a query gives no dates: the last ``default_days`` days to today."""
    refresh_seconds: float = 300.0
    """Period of :class:`~bocage.indicators.service.IndicatorService`: how often the latest
    values are recomputed and exported as Prometheus gauges."""
    metrics_port: int = 0
    """Port of the Prometheus endpoint of an indicators process of its own (0: none). Not used
    when the API runs in the same process: its ``/metrics`` serves the same registry."""
