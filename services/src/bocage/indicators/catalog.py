"""The catalog of territorial indicators: what each one measures, exactly, in published words.

Each :class:`Indicator` is declared once here. Its ``definition`` is served as is by the API and
copied in ``docs/indicators.md``: it is precise enough that anyone can recompute a value by hand
from the readings (algorithmic transparency). The ``method`` names the computation in
:mod:`bocage.indicators.compute`; the other fields parameterise it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Final, Literal

import msgspec

Method = Literal[
    "counter_increase",
    "state_duration",
    "night_min_flow",
    "night_flow_over",
    "availability",
    "atmo",
    "max_at_or_above",
    "gateway_counter_ratio",
]
"""How an indicator is computed (one SQL query shape per method). Every method reads the
``readings`` table but ``gateway_counter_ratio``, which reads ``gateway_status``."""

Aggregation = Literal["sum", "sensor_mean", "max", "ratio"]
"""How commune values combine into a grouping (EPCI, union): a sum, a mean weighted by the
number of sensors behind each commune value, the maximum, or a ratio of sums (the commune
value is numerator / denominator; a grouping divides the sum of its communes' numerators by
the sum of their denominators, which is not the mean of their ratios)."""

Period = Literal["day"]

COUNTER_MAX_GAP: Final = timedelta(hours=48)
"""Consecutive counter readings further apart than this are not used: the consumption between
them cannot be placed on a day."""
STATE_HOLD: Final = timedelta(hours=2)
"""A state reading (lamp on/off) is trusted until the next reading, for at most this long."""
NIGHT_START_HOUR: Final = 2
NIGHT_END_HOUR: Final = 4
LEAK_THRESHOLD_LPH: Final = 5.0
"""Minimum night flow (L/h) above which a municipal water meter is suspected of a leak."""
WASTE_BIN_FULL_PCT: Final = 90.0
"""Fill level (%) at or above which a waste bin counts as overflowing."""

ATMO_LABELS: Final = ("Bon", "Moyen", "Dégradé", "Mauvais", "Très mauvais", "Extrêmement mauvais")
"""The six classes of the French ATMO index (arrêté du 10 juillet 2020), index 1 to 6."""

ATMO_UPPER_BOUNDS: Final[dict[str, tuple[float, ...]]] = {
    # µg/m³, upper bound of classes 1..5 (inclusive); above the last bound: class 6.
    "pm10": (20, 40, 50, 100, 150),
    "pm25": (10, 20, 25, 50, 75),
    "no2": (40, 90, 120, 230, 340),
    "o3": (50, 100, 130, 240, 380),
}


class Indicator(msgspec.Struct, frozen=True, kw_only=True):
    """A territorial indicator and its published definition."""

    id: str
    """Stable identifier, used in URLs (``/api/v1/indicators/{id}``)."""
    title: str
    unit: str
    """UCUM-like unit of the value (``kWh``, ``h``, ``%``, ``L/h``, ``1``)."""
    definition: str
    """The published, exact definition (algorithmic transparency)."""
    sensor_kind: str | None
    """Kind of sensor read (see ``bocage.core.register.SENSOR_KINDS``); None: every kind."""
    metrics: tuple[str, ...]
    """Metrics read from those sensors."""
    method: Method
    aggregation: Aggregation
    period: Period = "day"
    scale: float = 1.0
    """Factor applied to the raw metric unit (Wh → kWh: 0.001)."""
    labels: tuple[str, ...] = ()
    """Names of the classes for an index (value ``k`` is ``labels[k - 1]``)."""
    denominator: str | None = None
    """For ``gateway_counter_ratio``: the ``gateway_status`` counter dividing the one named in
    ``metrics`` (the value is the ratio of their increases)."""


_COMMON = (
    " Days are local calendar days in the stack's time zone (Europe/Paris unless configured;"
    " the catalog states it). Only readings of quality 0 (a measurement) or 1 (an aggregate"
    " of measurements made by the gateway) are used, not estimated or degraded values;"
    " readings of one sensor and metric with the same time count once, with their highest"
    " value."
)

_COUNTER = (
    " For each {what} of the commune, readings of the `{metric}` counter ({raw}) are ordered by"
    " time; each pair of consecutive readings less than 48 h apart gives an increase: the"
    " difference if the counter did not decrease, otherwise the later value (the counter was"
    " reset to zero in between). The increase is counted on the local day of the later reading."
    " The commune value is the sum over its {what}s of these increases, divided by 1000;"
    " a grouping (EPCI, union) sums its communes. A commune with no such pair on a day has no"
    " value for that day."
)

_GATEWAY_RATIO = (
    " The gateways are those the register declares for the commune. Each gateway sends a"
    " status periodically (table `gateway_status`) whose counters `{numerator}` ({num_what})"
    " and `readings_accepted` (readings written to its spool) count since its agent process"
    " started, so they restart from zero when it restarts. For each gateway, statuses are"
    " ordered by time (statuses with the same time count once, with their highest counters);"
    " each pair of consecutive statuses less than 48 h apart gives, for each counter, an"
    " increase: the difference if the counter did not decrease, otherwise the later value (the"
    " agent restarted in between). Increases are counted on the local day of the later status."
    " The commune value is the sum over its gateways of the `{numerator}` increases divided by"
    " the sum of the `readings_accepted` increases; a day whose `readings_accepted` sum is zero,"
    " or with no such pair, has no value. A grouping (EPCI, union) divides the sum of its"
    " communes' `{numerator}` increases by the sum of their `readings_accepted` increases (a"
    " ratio of sums, not a mean of the communes' ratios). Days are local calendar days in the"
    " stack's time zone (Europe/Paris unless configured; the catalog states it)."
)

CATALOG: Final[tuple[Indicator, ...]] = (
    Indicator(
        id="lighting_energy_kwh",
        title="Public-lighting energy",
        unit="kWh",
        definition=(
            "Electricity consumed by public lighting per commune and day, in kWh."
            + _COUNTER.format(what="street-lighting cabinet", metric="energy", raw="Wh")
            + _COMMON
        ),
        sensor_kind="lighting_cabinet",
        metrics=("energy",),
        method="counter_increase",
        aggregation="sum",
        scale=0.001,
    ),
    Indicator(
        id="lighting_burn_hours",
        title="Public-lighting burn hours",
        unit="h",
        definition=(
            "Mean number of hours the street lights of a commune were on, per day."
            " For each street-lighting cabinet, each reading of the `on` state (1 = on) holds"
            " from its time until the next reading of that cabinet, and for at most 2 h (after"
            " that the state is unknown and not counted); the time it holds the value 1 is split"
            " on local days. A cabinet's burn hours for a day are the hours it was on; the commune"
            " value is the mean over the cabinets that have at least one `on` reading (0 or 1)"
            " holding during that day. A grouping is the mean over all the cabinets of its"
            " communes."
            + _COMMON
        ),
        sensor_kind="lighting_cabinet",
        metrics=("on",),
        method="state_duration",
        aggregation="sensor_mean",
    ),
    Indicator(
        id="building_energy_kwh",
        title="Municipal building energy",
        unit="kWh",
        definition=(
            "Electricity consumed by the metered municipal buildings per commune and day, in kWh."
            + _COUNTER.format(what="building meter", metric="energy", raw="Wh")
            + _COMMON
        ),
        sensor_kind="building_meter",
        metrics=("energy",),
        method="counter_increase",
        aggregation="sum",
        scale=0.001,
    ),
    Indicator(
        id="water_night_flow_lph",
        title="Minimum night water flow",
        unit="L/h",
        definition=(
            "Minimum night flow of the municipal water meters per commune and day, in L/h: a"
            " leak indicator (at night, between 02:00 and 04:00, legitimate use is close to"
            " zero). For each water meter, the minimum of its `flow` readings whose local time"
            " is at or after 02:00 and before 04:00 of the day; the commune value is the sum of"
            " these minima over its meters that have such readings. A grouping sums its communes."
            + _COMMON
        ),
        sensor_kind="water_meter",
        metrics=("flow",),
        method="night_min_flow",
        aggregation="sum",
    ),
    Indicator(
        id="water_leak_suspicion",
        title="Water meters with a suspected leak",
        unit="1",
        definition=(
            "Number of municipal water meters of the commune whose minimum night flow (minimum"
            " of the `flow` readings at or after 02:00 and before 04:00 local time) is above"
            " 5 L/h on that day. Only meters with such readings count (the value can be 0)."
            " A grouping sums its communes." + _COMMON
        ),
        sensor_kind="water_meter",
        metrics=("flow",),
        method="night_flow_over",
        aggregation="sum",
    ),
    Indicator(
        id="sensor_availability",
        title="Sensor availability",
        unit="%",
        definition=(
            "Share of the expected hourly presence of the commune's sensors, in percent. The"
            " expected sensors are those declared in the register for the commune's gateways;"
            " the hours are the clock hours of the local day (23, 24 or 25) that have ended at"
            " the time of computation. A sensor is present in an hour if at least one of its"
            " readings (any metric, any quality) has a time within that hour. The value is 100 ×"
            " (number of present sensor-hours) / (number of sensors × number of hours). A"
            " grouping is the mean of its communes weighted by their number of sensors. A day"
            " with no ended hour has no value. Days are local calendar days in the stack's time"
            " zone."
        ),
        sensor_kind=None,
        metrics=(),
        method="availability",
        aggregation="sensor_mean",
    ),
    Indicator(
        id="atmo_index",
        title="Air-quality index (ATMO-like)",
        unit="1",
        definition=(
            "Daily air-quality index from 1 (Bon) to 6 (Extrêmement mauvais) following the"
            " classes of the French ATMO index (arrêté du 10 juillet 2020), computed from the"
            " commune's own stations (it is not the official index, which the approved regional"
            " association publishes with modelling). For each air-quality station: PM10 and PM2.5"
            " concentrations are the daily mean of the readings; NO2 and O3 concentrations are"
            " the maximum over the day's local clock hours of the hourly mean of the readings."
            " Each concentration (µg/m³) gives a sub-index: the first class whose upper bound is"
            " greater than or equal to it, with bounds PM10 20/40/50/100/150, PM2.5"
            " 10/20/25/50/75, NO2 40/90/120/230/340, O3 50/100/130/240/380 (above the last"
            " bound: 6). The station index is the highest sub-index of the pollutants it"
            " measured that day; the commune value is the highest station index; a grouping"
            " takes the highest of its communes." + _COMMON
        ),
        sensor_kind="air_quality",
        metrics=("pm10", "pm25", "no2", "o3"),
        method="atmo",
        aggregation="max",
        labels=ATMO_LABELS,
    ),
    Indicator(
        id="waste_bin_overflow",
        title="Overflowing waste bins",
        unit="1",
        definition=(
            "Number of waste bins of the commune that were full or overflowing on that day: the"
            " waste-bin fill sensors whose highest `fill` reading (%) of the local day is at or"
            " above 90 %. Only bins with at least one `fill` reading that day count (the value"
            " can be 0). A grouping sums its communes." + _COMMON
        ),
        sensor_kind="waste_bin",
        metrics=("fill",),
        method="max_at_or_above",
        aggregation="sum",
    ),
    Indicator(
        id="transmission_bytes_per_reading",
        title="Bytes sent per reading (digital sobriety)",
        unit="By",
        definition=(
            "Bytes the commune's gateways sent on the network per reading they accepted, per"
            " local day: digital sobriety of the stack itself, measured."
            + _GATEWAY_RATIO.format(
                numerator="bytes_sent",
                num_what="bytes sent upstream (message payloads plus 90 bytes of NATS protocol"
                " per message)",
            )
        ),
        sensor_kind=None,
        metrics=("bytes_sent",),
        denominator="readings_accepted",
        method="gateway_counter_ratio",
        aggregation="ratio",
    ),
    Indicator(
        id="gateway_energy_per_reading",
        title="Gateway energy per reading (digital sobriety)",
        unit="mJ",
        definition=(
            "Energy the commune's gateways spent transmitting per reading they accepted, per"
            " local day, in millijoules. The energy is the gateway agent's model estimate"
            " (wake-ups × E_wake + messages × E_message + bytes × E_byte, with orders of"
            " magnitude per link type published in docs/edge.md), not a measurement of the"
            " board."
            + _GATEWAY_RATIO.format(
                numerator="energy_mj",
                num_what="estimated transmission energy in mJ",
            )
        ),
        sensor_kind=None,
        metrics=("energy_mj",),
        denominator="readings_accepted",
        method="gateway_counter_ratio",
        aggregation="ratio",
    ),
)
"""Every published indicator, in display order."""


class Catalog:
    """Look-up of the published indicators by id."""

    def __init__(self, indicators: tuple[Indicator, ...] = CATALOG) -> None:
        self.indicators = indicators
        self._by_id = {i.id: i for i in indicators}

    def __iter__(self) -> Iterator[Indicator]:
        return iter(self.indicators)

    def get(self, indicator_id: str) -> Indicator | None:
        """The indicator ``indicator_id``, or None if the catalog has no such indicator."""
        return self._by_id.get(indicator_id)

    def ids(self) -> tuple[str, ...]:
        """Every indicator id, in display order."""
        return tuple(self._by_id)
