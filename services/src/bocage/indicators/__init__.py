"""Territorial indicators: a declarative, published catalog, computed in ClickHouse on query.

See ``docs/indicators.md`` for every definition and the reasons behind the design.
"""

from __future__ import annotations

from bocage.indicators.catalog import CATALOG, Catalog, Indicator
from bocage.indicators.compute import Indicators, IndicatorValue, Period, QueryStore
from bocage.indicators.service import IndicatorService
from bocage.indicators.settings import IndicatorsSettings

__all__ = [
    "CATALOG",
    "Catalog",
    "Indicator",
    "IndicatorService",
    "IndicatorValue",
    "Indicators",
    "IndicatorsSettings",
    "Period",
    "QueryStore",
]
