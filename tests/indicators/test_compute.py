"""Each indicator computed by ClickHouse equals the value worked out by hand from its definition."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from territory_sample import EPCI, PARIS, A, B, Writer, at, base_day, hours_in, register

from bocage.indicators import CATALOG, Catalog, Indicators, IndicatorsSettings, Period
from bocage.store import Store

NO_CACHE = IndicatorsSettings(cache_seconds=0)


def table(values: list) -> dict[tuple[str, date], tuple[float, int]]:
    return {(v.territory, v.date): (round(v.value, 6), v.sensors) for v in values}


def compute(store: Store, indicator_id: str, territory: str | None, first: date, last: date,
            clock: datetime | None = None) -> dict[tuple[str, date], tuple[float, int]]:
    indicators = Indicators(NO_CACHE, store, register(), clock=(lambda: clock) if clock else None)
    indicator = indicators.catalog.get(indicator_id)
    assert indicator is not None
    return table(indicators.compute(indicator, territory, Period(first, last)))


def test_catalog_definitions_are_published_and_unique() -> None:
    ids = [i.id for i in CATALOG]
    assert len(ids) == len(set(ids))
    assert {"lighting_energy_kwh", "sensor_availability"} <= set(ids)
    for indicator in CATALOG:
        assert len(indicator.definition) > 150, indicator.id
        assert indicator.period == "day"
    assert Catalog().get("nope") is None


def lighting_energy(w: Writer, d: date) -> None:
    w.add(A, "lc-a1", "energy", [
        (at(d, "23:00", -1), 1000), (at(d, "01:00"), 1500), (at(d, "06:00"), 4000),
        (at(d, "18:00"), 100),  # the counter was reset: the increase is 100
        (at(d, "23:00"), 2100), (at(d, "02:00", 1), 2600),
    ])
    w.add(A, "lc-a2", "energy", [(at(d, "00:30"), 10), (at(d, "12:00"), 1010),
                                 (at(d, "12:00", 4), 2000)])  # 4 days later: gap > 48 h, unused
    w.add(A, "lc-a2", "energy", [(at(d, "13:00"), 99_999)], quality=2)  # estimated: unused
    w.add(B, "lc-b1", "energy", [(at(d, "00:00"), 0), (at(d, "12:00"), 3000)])
    w.add(B, "lc-b1", "energy", [(at(d, "12:00"), 3000)])  # re-delivered: counts once
    w.add(A, "bm-a", "energy", [(at(d, "00:00"), 50_000), (at(d, "23:00"), 75_000)])


def test_lighting_energy_per_commune_and_epci(store: Store, writer: Writer) -> None:
    d = base_day()
    lighting_energy(writer, d)
    got = compute(store, "lighting_energy_kwh", EPCI, d, d + timedelta(days=4))
    # A on d: lc-a1 500 + 2500 + 100 (reset) + 2000 = 5100 Wh, lc-a2 1000 Wh → 6.1 kWh
    # A on d+1: lc-a1 500 Wh. B on d: 3000 Wh. EPCI: sums.
    assert got == {
        (A, d): (6.1, 2),
        (A, d + timedelta(days=1)): (0.5, 1),
        (B, d): (3.0, 1),
        (EPCI, d): (9.1, 3),
        (EPCI, d + timedelta(days=1)): (0.5, 1),
    }
    # a commune alone: only its own values
    assert compute(store, "lighting_energy_kwh", B, d, d) == {(B, d): (3.0, 1)}
    # building meters are another indicator over the same metric name
    assert compute(store, "building_energy_kwh", None, d, d) == {
        (A, d): (25.0, 1), (EPCI, d): (25.0, 1),
    }


def test_late_data_is_reflected_on_the_next_query(store: Store, writer: Writer) -> None:
    d = base_day()
    lighting_energy(writer, d)
    assert compute(store, "lighting_energy_kwh", B, d, d) == {(B, d): (3.0, 1)}
    writer.add(B, "lc-b1", "energy", [(at(d, "18:00"), 4000)])  # a spool drained late
    assert compute(store, "lighting_energy_kwh", B, d, d) == {(B, d): (4.0, 1)}


async def test_cache_serves_a_result_for_cache_seconds(store: Store, writer: Writer) -> None:
    d = base_day()
    lighting_energy(writer, d)
    indicators = Indicators(IndicatorsSettings(cache_seconds=3600), store, register())
    indicator = indicators.catalog.get("lighting_energy_kwh")
    assert indicator is not None
    first = await indicators.values(indicator, B, Period(d, d))
    writer.add(B, "lc-b1", "energy", [(at(d, "18:00"), 4000)])
    assert await indicators.values(indicator, B, Period(d, d)) == first  # the trade-off
    assert table(indicators.compute(indicator, B, Period(d, d))) == {(B, d): (4.0, 1)}


async def test_stale_result_is_served_once_while_it_is_refreshed(
    store: Store, writer: Writer
) -> None:
    d = base_day()
    lighting_energy(writer, d)
    now = [0.0]
    indicators = Indicators(IndicatorsSettings(cache_seconds=10), store, register(),
                            monotonic=lambda: now[0])
    indicator = indicators.catalog.get("lighting_energy_kwh")
    assert indicator is not None

    async def value() -> float:
        return (await indicators.values(indicator, B, Period(d, d)))[0].value

    assert await value() == 3.0
    writer.add(B, "lc-b1", "energy", [(at(d, "18:00"), 4000)])
    now[0] = 5.0
    assert await value() == 3.0  # fresh
    now[0] = 15.0
    assert await value() == 3.0  # stale but recent: served, refreshed in the background
    now[0] = 100.0
    assert await value() == 4.0  # too old to serve: waits for the query


def test_lighting_burn_hours(store: Store, writer: Writer) -> None:
    d = base_day()
    writer.add(A, "lc-a1", "on", [
        (at(d, "23:00", -1), 1),  # holds 1.5 h, 0.5 h of it on d
        (at(d, "00:30"), 1),      # next at 07:00 but at most 2 h
        (at(d, "07:00"), 0),
        (at(d, "17:00"), 1),      # 1 h
        (at(d, "18:00"), 1),      # last reading: 2 h
    ])
    writer.add(A, "lc-a2", "on", [
        (at(d, "20:00"), 1),      # 2 h (capped)
        (at(d, "23:00"), 1),      # 1 h on d, 0.5 h on d+1
        (at(d, "00:30", 1), 0),   # off: the cabinet counts on d+1 with 0 h
    ])
    writer.add(B, "lc-b1", "on", [(at(d, "19:00"), 1)])
    got = compute(store, "lighting_burn_hours", EPCI, d, d + timedelta(days=1))
    # A on d: lc-a1 0.5 + 2 + 1 + 2 = 5.5 h, lc-a2 2 + 1 = 3 h → mean 4.25 h
    # A on d+1: lc-a2 only (0.5 h on) → 0.5 h. B on d: 2 h. EPCI d: (5.5 + 3 + 2) / 3.
    assert got == {
        (A, d): (4.25, 2),
        (A, d + timedelta(days=1)): (0.5, 1),
        (B, d): (2.0, 1),
        (EPCI, d): (3.5, 3),
        (EPCI, d + timedelta(days=1)): (0.5, 1),
    }


def test_water_night_flow_and_leak_suspicion(store: Store, writer: Writer) -> None:
    d = base_day()
    writer.add(A, "wm-a", "flow", [
        (at(d, "01:50"), 1), (at(d, "02:00"), 12), (at(d, "03:10"), 8), (at(d, "03:59"), 9),
        (at(d, "04:00"), 0),  # outside [02:00, 04:00)
    ])
    writer.add(B, "wm-b", "flow", [(at(d, "02:30"), 3), (at(d, "03:30"), 4), (at(d, "12:00"), 0)])
    writer.add(B, "wm-b", "flow", [(at(d, "02:45"), 2.5)], quality=1)  # a gateway's aggregate
    writer.add(B, "wm-b", "flow", [(at(d, "02:50"), 0.5)], quality=2)  # estimated: unused
    assert compute(store, "water_night_flow_lph", EPCI, d, d) == {
        (A, d): (8.0, 1), (B, d): (2.5, 1), (EPCI, d): (10.5, 2),
    }
    assert compute(store, "water_leak_suspicion", EPCI, d, d) == {
        (A, d): (1.0, 1), (B, d): (0.0, 1), (EPCI, d): (1.0, 2),
    }


def test_atmo_index(store: Store, writer: Writer) -> None:
    d = base_day()
    writer.add(A, "aq-a", "pm10", [(at(d, "08:00"), 30), (at(d, "12:00"), 50)])  # mean 40 → 2
    writer.add(A, "aq-a", "pm25", [(at(d, "10:00"), 5)])  # → 1
    writer.add(A, "aq-a", "no2", [(at(d, "09:00"), 100), (at(d, "09:30"), 140),  # hour: 120 → 3
                                  (at(d, "15:00"), 50)])
    writer.add(A, "aq-a", "o3", [(at(d, "14:00"), 60)])  # → 2
    writer.add(A, "aq-a", "pm10", [(at(d, "12:00", 1), 151)])  # → 6
    indicators = Indicators(NO_CACHE, store, register())
    atmo = indicators.catalog.get("atmo_index")
    assert atmo is not None
    values = indicators.compute(atmo, EPCI, Period(d, d + timedelta(days=1)))
    got = {(v.territory, v.date): (v.value, v.label) for v in values}
    assert got == {
        (A, d): (3.0, "Dégradé"),
        (A, d + timedelta(days=1)): (6.0, "Extrêmement mauvais"),
        (EPCI, d): (3.0, "Dégradé"),
        (EPCI, d + timedelta(days=1)): (6.0, "Extrêmement mauvais"),
    }


def test_sensor_availability(store: Store, writer: Writer) -> None:
    d = base_day()
    # B has 2 sensors. lc-b1: hours 00 and 05 (two readings in hour 00 count once);
    # wm-b: hour 23 and hour 10 (bad quality still proves presence).
    writer.add(B, "lc-b1", "power", [(at(d, "00:10"), 1), (at(d, "00:50"), 1), (at(d, "05:00"), 1)])
    writer.add(B, "wm-b", "flow", [(at(d, "23:59"), 1)])
    writer.add(B, "wm-b", "flow", [(at(d, "10:00"), 1)], quality=2)
    # "now" is 03:30 local on d+2: only hours 00, 01, 02 of d+2 have ended.
    writer.add(B, "lc-b1", "power", [(at(d, "01:00", 2), 1), (at(d, "03:10", 2), 1)])
    now = at(d, "03:30", 2)
    got = compute(store, "sensor_availability", B, d, d + timedelta(days=3), clock=now)
    assert got == {
        (B, d): (round(100 * 4 / (2 * hours_in(d)), 6), 2),
        (B, d + timedelta(days=1)): (0.0, 2),  # expected sensors, nothing received
        (B, d + timedelta(days=2)): (round(100 * 1 / (2 * 3), 6), 2),
        # d+3 has not started: no value
    }
    # the EPCI: A's 6 sensors sent nothing: weighted mean over 8 sensors
    epci = compute(store, "sensor_availability", EPCI, d, d, clock=now)
    assert epci[(A, d)] == (0.0, 6)
    assert epci[(EPCI, d)] == (round(100 * 4 / (2 * hours_in(d)) * 2 / 8, 6), 8)


def test_unknown_territory_raises_key_error(store: Store) -> None:
    indicators = Indicators(NO_CACHE, store, register())
    with pytest.raises(KeyError):
        indicators.compute(CATALOG[0], "99999", Period(base_day(), base_day()))


def test_today_follows_the_configured_time_zone(store: Store) -> None:
    # 23:30 UTC on 31 December is already 1 January in Paris
    clock = datetime(2030, 12, 31, 23, 30, tzinfo=UTC)
    assert Indicators(NO_CACHE, store, register(), clock=lambda: clock).today() == date(2031, 1, 1)
    reunion = IndicatorsSettings(timezone="Indian/Reunion")
    clock2 = datetime(2030, 12, 31, 19, 30, tzinfo=UTC)
    reunion_indicators = Indicators(reunion, store, register(), clock=lambda: clock2)
    assert reunion_indicators.today() == date(2030, 12, 31)
    assert PARIS.key == "Europe/Paris"


def test_docs_quote_every_definition() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "indicators.md"
    text = docs.read_text(encoding="utf-8")
    for indicator in CATALOG:
        assert f"### `{indicator.id}`" in text
        assert f"> {indicator.definition}\n" in text, f"docs/indicators.md: {indicator.id}"
