"""The simulator: deterministic, realistic, within each metric's declared range."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from bocage.core.register import SENSOR_KINDS
from bocage.edge.reading import Reading
from bocage.edge.simulator import Place, simulate
from bocage.edge.sun import sun_times

HOUR = 3_600_000
BREST = Place(latitude=48.39, longitude=-4.49, utc_offset_h=2.0)


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def by_metric(readings: list[Reading], metric: str) -> list[Reading]:
    return [r for r in readings if r.metric == metric]


@pytest.mark.parametrize("kind", list(SENSOR_KINDS))
def test_same_arguments_same_readings(kind: str) -> None:
    a = simulate("s-1", kind, ms("2024-03-01T00:00:00"), 60_000, 500, seed=3)
    b = simulate("s-1", kind, ms("2024-03-01T00:00:00"), 60_000, 500, seed=3)
    c = simulate("s-1", kind, ms("2024-03-01T00:00:00"), 60_000, 500, seed=4)
    assert a == b
    assert a != c
    assert len(a) == 500 * len(SENSOR_KINDS[kind].metrics)


@pytest.mark.parametrize("kind", list(SENSOR_KINDS))
def test_a_year_of_hourly_values_stays_in_the_declared_ranges(kind: str) -> None:
    spec = SENSOR_KINDS[kind]
    readings = simulate("s-1", kind, ms("2024-01-01T00:00:00"), HOUR, 24 * 366, seed=1)
    for metric in spec.metrics:
        values = [r.value for r in by_metric(readings, metric.name)]
        assert min(values) >= metric.min, metric.name
        assert max(values) <= metric.max, metric.name
        if metric.kind == "counter":
            assert values == sorted(values), f"{metric.name} is a counter: never decreases"
            assert all(type(v) is int for v in values)


def test_sunrise_and_sunset_in_brest_at_the_solstice() -> None:
    sunrise, sunset = sun_times(ms("2024-06-21T12:00:00"), 48.39, -4.49)
    # published: 06:17 and 22:23 local (UTC+2)
    assert abs(sunrise - ms("2024-06-21T04:17:00")) < 5 * 60_000
    assert abs(sunset - ms("2024-06-21T20:23:00")) < 5 * 60_000


def test_lighting_follows_dusk_and_dawn() -> None:
    start = ms("2024-12-21T00:00:00")
    readings = simulate("lamp", "lighting_cabinet", start, 60_000, 24 * 60, place=BREST)
    on = {r.time_ms: r.value for r in by_metric(readings, "on")}
    sunrise, sunset = sun_times(start, BREST.latitude, BREST.longitude)
    assert on[ms("2024-12-21T03:00:00")] == 1  # night
    assert on[ms("2024-12-21T12:00:00")] == 0  # day
    assert on[ms("2024-12-21T20:00:00")] == 1  # night again
    switched = sorted(t for t in on if on[t] != on.get(t - 60_000, on[t]))
    assert abs(switched[0] - sunrise) <= 60_000
    assert abs(switched[1] - sunset) <= 60_000
    power = {r.time_ms: r.value for r in by_metric(readings, "power")}
    assert power[ms("2024-12-21T03:00:00")] > 100 > power[ms("2024-12-21T12:00:00")]


def test_night_cut_profile_switches_off_around_midnight() -> None:
    start = ms("2024-12-21T00:00:00")
    readings = simulate("lamp", "lighting_cabinet", start, 60_000, 24 * 60, profile="night_cut",
                        place=BREST)
    on = {r.time_ms: r.value for r in by_metric(readings, "on")}
    assert on[ms("2024-12-21T00:30:00")] == 0  # 02:30 local: cut
    assert on[ms("2024-12-21T19:00:00")] == 1  # 21:00 local: lit


def test_water_leak_shows_in_the_night_flow() -> None:
    start = ms("2024-05-06T00:00:00")
    normal = simulate("w", "water_meter", start, 60_000, 7 * 24 * 60, seed=2)
    leaking = simulate("w", "water_meter", start, 60_000, 7 * 24 * 60, seed=2, profile="leak")

    def night_min(readings: list[Reading]) -> float:
        flows = by_metric(readings, "flow")
        return min(r.value for r in flows if 1 <= (r.time_ms // HOUR + 1) % 24 < 4)

    assert night_min(normal) < 5
    assert night_min(leaking) >= 20


def test_building_load_is_higher_on_working_days() -> None:
    start = ms("2024-05-06T00:00:00")  # a Monday
    readings = simulate("b", "building_meter", start, HOUR, 7 * 24, seed=5)
    power = {r.time_ms: r.value for r in by_metric(readings, "power")}
    tuesday_10h = power[ms("2024-05-07T08:00:00")]
    tuesday_3h = power[ms("2024-05-07T01:00:00")]
    sunday_10h = power[ms("2024-05-12T08:00:00")]
    assert tuesday_10h > 2 * tuesday_3h
    assert tuesday_10h > 2 * sunday_10h


def test_waste_bins_are_emptied_on_collection_days() -> None:
    start = ms("2024-05-06T00:00:00")
    readings = simulate("bin", "waste_bin", start, HOUR, 14 * 24, seed=9)
    fill = [r.value for r in by_metric(readings, "fill")]
    drops = [b - a for a, b in itertools.pairwise(fill) if b < a - 10]
    assert len(drops) >= 3  # Mondays and Thursdays


def test_counter_counts_more_by_day_than_by_night() -> None:
    start = ms("2024-05-07T00:00:00")
    readings = simulate("c", "counter", start, HOUR, 24, seed=1, place=BREST)
    counts = [r.value for r in readings]
    per_hour = [b - a for a, b in itertools.pairwise(counts)]
    assert sum(per_hour[6:18]) > 3 * sum(per_hour[0:5] + per_hour[21:])
