"""Filters: every reading is kept, or counted under the reason it was dropped."""

from __future__ import annotations

import math

import msgspec

from bocage.core.events import Alarm
from bocage.edge.counters import Counters
from bocage.edge.filters import Filters
from bocage.edge.reading import QUALITY_AGGREGATE, Reading
from bocage.edge.settings import MetricFilter

T0 = 1_718_928_000_000
SENSORS = {"lamp-1": "lighting_cabinet", "water-1": "water_meter", "aq-1": "air_quality"}


def chain(**config: dict[str, object]) -> tuple[Filters, list[Reading], list[Alarm], Counters]:
    kept: list[Reading] = []
    alarms: list[Alarm] = []
    counters = Counters()
    filters = Filters(
        SENSORS, {k: msgspec.convert(v, MetricFilter) for k, v in config.items()}, counters,
        territory="29042", gateway="gw-1", emit=kept.append, alarm=alarms.append,
    )
    return filters, kept, alarms, counters


def balanced(counters: Counters, kept: list[Reading]) -> bool:
    return counters.produced + counters.derived == (
        len(kept) + counters.rejected_total + counters.filtered_total
    )


def test_malformed_readings_are_rejected_by_reason() -> None:
    filters, kept, _, counters = chain()
    for reading in [
        Reading("ghost", "power", T0, 1.0),
        Reading("lamp-1", "colour", T0, 1.0),
        Reading("lamp-1", "power", T0, "12"),  # type: ignore[arg-type]
        Reading("lamp-1", "power", T0, math.nan),
        Reading("lamp-1", "power", T0, -5.0),
        Reading("lamp-1", "power", T0, 1e9),
        Reading("water-1", "flow", T0, 12.5),
    ]:
        filters.push(reading)
    assert dict(counters.rejected) == {
        "unknown_sensor": 1, "unknown_metric": 1, "bad_type": 1, "not_finite": 1,
        "out_of_range": 2,
    }
    assert kept == [Reading("water-1", "flow", T0, 12.5)]
    assert balanced(counters, kept)


def test_configured_range_overrides_the_metric_spec() -> None:
    filters, kept, _, counters = chain(**{"water_meter.flow": {"max": 500}})
    filters.push(Reading("water-1", "flow", T0, 800.0))
    filters.push(Reading("water-1", "flow", T0 + 1, 400.0))
    assert counters.rejected["out_of_range"] == 1
    assert len(kept) == 1


def test_duplicates_are_suppressed() -> None:
    filters, kept, _, counters = chain()
    for t in (T0, T0 + 1000, T0, T0 + 2000, T0 + 1000):
        filters.push(Reading("lamp-1", "power", t, 100.0))
    assert [r.time_ms for r in kept] == [T0, T0 + 1000, T0 + 2000]
    assert counters.filtered["duplicate"] == 2


def test_deadband_with_heartbeat() -> None:
    filters, kept, _, counters = chain(power={"deadband": 10, "heartbeat_s": 60})
    values = [100.0, 104.0, 109.0, 111.0, 112.0, 112.0, 113.0]
    for i, v in enumerate(values):
        filters.push(Reading("lamp-1", "power", T0 + i * 20_000, v))
    # 104 and 109 within 10 of 100; 111 is not; 112 twice within 10 of 111; 113 too, but
    # it comes 60 s after 111 and goes out as a heartbeat
    assert [r.value for r in kept] == [100.0, 111.0, 113.0]
    assert counters.filtered["deadband"] == 4
    assert balanced(counters, kept)


def test_rate_limit_per_series() -> None:
    filters, kept, _, counters = chain(pm10={"min_interval_s": 60, "duplicates": False})
    for i in range(10):
        filters.push(Reading("aq-1", "pm10", T0 + i * 15_000, 20.0 + i))
    assert [r.time_ms for r in kept] == [T0, T0 + 60_000, T0 + 120_000]
    assert counters.filtered["rate_limited"] == 7


def test_downsampling_to_window_aggregates() -> None:
    filters, kept, _, counters = chain(flow={"downsample_s": 600}, volume={"downsample_s": 600})
    for i in range(30):  # 30 minutes, one reading a minute: 3 windows of 10 minutes
        filters.push(Reading("water-1", "flow", T0 + i * 60_000, float(10 * (i // 10) + 5)))
        filters.push(Reading("water-1", "volume", T0 + i * 60_000, 1000 + i))
    filters.flush()
    flow = [r for r in kept if r.metric == "flow"]
    volume = [r for r in kept if r.metric == "volume"]
    assert [r.time_ms for r in flow] == [T0, T0 + 600_000, T0 + 1_200_000]
    assert [r.value for r in flow] == [5.0, 15.0, 25.0]  # gauge: time-weighted mean
    assert [r.value for r in volume] == [1009, 1019, 1029]  # counter: last value
    assert all(r.quality == QUALITY_AGGREGATE for r in kept)
    assert counters.filtered["downsampled"] == 60
    assert counters.derived == 6
    assert balanced(counters, kept)


def test_threshold_crossings_raise_one_alarm_each() -> None:
    filters, kept, alarms, _ = chain(pm10={"alarm_above": 50})
    for i, v in enumerate([20.0, 60.0, 70.0, 40.0, 55.0]):
        filters.push(Reading("aq-1", "pm10", T0 + i * 60_000, v))
    assert [(a.kind, a.value, a.time_ms) for a in alarms] == [
        ("threshold", 60.0, T0 + 60_000), ("threshold", 55.0, T0 + 240_000),
    ]
    assert len(kept) == 5  # an alarm does not remove the reading
