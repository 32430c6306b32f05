"""Waste-bin overflow and the stack's digital sobriety, computed by ClickHouse, equal the values
worked out by hand from their published definitions."""

from __future__ import annotations

from datetime import date, timedelta

import msgspec
import pytest
from territory_sample import EPCI, A, B, StatusWriter, Writer, at, base_day, register

from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.indicators import CATALOG, Indicators, IndicatorsSettings, Period
from bocage.indicators.catalog import WASTE_BIN_FULL_PCT
from bocage.store import Store

NO_CACHE = IndicatorsSettings(cache_seconds=0)


def _extended(extra: dict[str, Gateway]) -> Register:
    """The sample register with one more gateway in some communes."""

    def grow(t: Territory) -> Territory:
        gateway = extra.get(t.code)
        return t if gateway is None else msgspec.structs.replace(
            t, gateways=(*t.gateways, gateway))

    return Register(territories=tuple(grow(t) for t in register().territories))


def waste_register() -> Register:
    """A has three bins (wb-a3 never reports), B one."""
    bins = {
        A: Gateway(id="gw-a-bins", territory=A, sensors=tuple(
            Sensor(id=f"wb-a{i}", kind="waste_bin") for i in (1, 2, 3))),
        B: Gateway(id="gw-b-bins", territory=B, sensors=(Sensor(id="wb-b1", kind="waste_bin"),)),
    }
    return _extended(bins)


def sobriety_register() -> Register:
    """A has two gateways (gw-a and gw-a2), B one (gw-b)."""
    return _extended({A: Gateway(id="gw-a2", territory=A)})


def compute(store: Store, reg: Register, indicator_id: str, territory: str | None,
            first: date, last: date) -> dict[tuple[str, date], tuple[float, int]]:
    indicators = Indicators(NO_CACHE, store, reg)
    indicator = indicators.catalog.get(indicator_id)
    assert indicator is not None
    values = indicators.compute(indicator, territory, Period(first, last))
    assert all(v.label is None for v in values)
    return {(v.territory, v.date): (round(v.value, 6), v.sensors) for v in values}


def test_new_indicators_are_in_the_catalog() -> None:
    by_id = {i.id: i for i in CATALOG}
    assert by_id["waste_bin_overflow"].unit == "1"
    assert by_id["waste_bin_overflow"].aggregation == "sum"
    assert "90 %" in by_id["waste_bin_overflow"].definition
    assert WASTE_BIN_FULL_PCT == 90.0
    for iid, unit in (("transmission_bytes_per_reading", "By"),
                      ("gateway_energy_per_reading", "mJ")):
        assert by_id[iid].unit == unit
        assert by_id[iid].aggregation == "ratio"
        assert "not a mean" in by_id[iid].definition
        assert "restarted" in by_id[iid].definition
    assert "estimate" in by_id["gateway_energy_per_reading"].definition


def test_waste_bin_overflow(store: Store, writer: Writer) -> None:
    d = base_day()
    d1 = d + timedelta(days=1)
    writer.add(A, "wb-a1", "fill", [(at(d, "08:00"), 40), (at(d, "12:00"), 90),  # exactly 90: in
                                    (at(d, "18:00"), 30)])
    writer.add(A, "wb-a2", "fill", [(at(d, "10:00"), 89.9),
                                    (at(d, "00:10", 1), 95)])  # local d+1 (23:10 UTC on d)
    writer.add(A, "wb-a2", "fill", [(at(d, "11:00"), 99)], quality=2)  # estimated: unused
    writer.add(A, "wb-a1", "power", [(at(d, "13:00"), 1000)])  # another metric: unused
    # wb-a3 sends nothing: it does not count
    writer.add(B, "wb-b1", "fill", [(at(d, "09:00"), 20), (at(d, "23:50"), 100),
                                    (at(d, "00:10", 1), 50)])
    writer.add(B, "wb-b1", "fill", [(at(d, "23:50"), 100)])  # re-delivered: counts once
    writer.add(B, "wb-b1", "fill", [(at(d, "07:00", 2), 91)], quality=1)  # gateway aggregate
    got = compute(store, waste_register(), "waste_bin_overflow", EPCI, d, d + timedelta(days=2))
    # d: A has wb-a1 (max 90: full) and wb-a2 (max 89.9) reading → 1 of 2; B wb-b1 (100) → 1 of 1
    # d+1: A wb-a2 (95) → 1 of 1; B wb-b1 (50) → 0 of 1. d+2: B wb-b1 (91) → 1 of 1.
    assert got == {
        (A, d): (1.0, 2),
        (A, d1): (1.0, 1),
        (B, d): (1.0, 1),
        (B, d1): (0.0, 1),
        (B, d + timedelta(days=2)): (1.0, 1),
        (EPCI, d): (2.0, 3),
        (EPCI, d1): (1.0, 2),
        (EPCI, d + timedelta(days=2)): (1.0, 1),
    }
    assert compute(store, waste_register(), "waste_bin_overflow", A, d, d) == {(A, d): (1.0, 2)}
    # the sample register has no waste bins: nothing to count, no value
    assert compute(store, register(), "waste_bin_overflow", None, d, d) == {}


def sobriety(s: StatusWriter, d: date) -> None:
    """(time, bytes_sent, readings_accepted, energy_mj) of each gateway's statuses."""
    s.add(A, "gw-a", [
        (at(d, "22:00", -1), 1000, 10, 5.0),
        (at(d, "00:30"), 3000, 30, 7.0),   # crosses local midnight: on d, +2000 B, +20, +2 mJ
        (at(d, "12:00"), 500, 4, 1.0),     # the agent restarted: +500 B, +4, +1 mJ
        (at(d, "23:30"), 2500, 24, 3.0),   # +2000 B, +20, +2 mJ
        (at(d, "00:30", 1), 2600, 25, 3.5),  # on d+1: +100 B, +1, +0.5 mJ
        (at(d, "01:00", 4), 9999, 99, 9.0),  # more than 48 h later: unused
    ])
    s.add(A, "gw-a", [(at(d, "12:00"), 500, 4, 1.0)])  # stored twice: counts once
    s.add(A, "gw-a2", [
        (at(d, "08:00"), 0, 0, 0.0),
        (at(d, "20:00"), 1500, 6, 4.0),    # +1500 B, +6, +4 mJ
    ])
    s.add(B, "gw-b", [
        (at(d, "06:00"), 100, 1, 0.0),
        (at(d, "18:00"), 10_100, 21, 20.0),  # +10000 B, +20, +20 mJ
        (at(d, "06:00", 1), 10_300, 21, 20.5),  # d+1: +200 B, no reading accepted, +0.5 mJ
    ])
    # not declared in the register for that territory: unused
    s.add(A, "gw-x", [(at(d, "01:00"), 0, 0, 0.0), (at(d, "02:00"), 10**6, 1, 1000.0)])
    s.add(A, "gw-b", [(at(d, "01:00"), 0, 0, 0.0), (at(d, "02:00"), 10**6, 1, 1000.0)])


def test_transmission_bytes_per_reading(store: Store, statuses: StatusWriter) -> None:
    d = base_day()
    d1 = d + timedelta(days=1)
    sobriety(statuses, d)
    got = compute(store, sobriety_register(), "transmission_bytes_per_reading", EPCI,
                  d, d + timedelta(days=4))
    # A on d: gw-a 2000 + 500 + 2000 = 4500 B for 20 + 4 + 20 = 44 readings, gw-a2 1500 B
    # for 6 → 6000 / 50 = 120 B per reading (2 gateways). A on d+1: 100 / 1.
    # B on d: 10000 / 20 = 500. B on d+1: 200 B for 0 readings: no value.
    # EPCI on d: (6000 + 10000) / (50 + 20) = 228.571429 (the mean of the communes' ratios
    # would be 310, weighted by gateways 246.67). EPCI on d+1: (100 + 200) / (1 + 0) = 300:
    # B's bytes count in the grouping though B has no value (a mean of ratios would be 100).
    assert got == {
        (A, d): (120.0, 2),
        (A, d1): (100.0, 1),
        (B, d): (500.0, 1),
        (EPCI, d): (round(16_000 / 70, 6), 3),
        (EPCI, d1): (300.0, 2),
    }
    assert got[(EPCI, d)] != (round((120.0 + 500.0) / 2, 6), 3)
    # a commune alone: its own gateways only
    assert compute(store, sobriety_register(), "transmission_bytes_per_reading", B, d, d1) == {
        (B, d): (500.0, 1),
    }
    # the sample register does not declare gw-a2: its statuses are not used
    assert compute(store, register(), "transmission_bytes_per_reading", A, d, d) == {
        (A, d): (round(4500 / 44, 6), 1),
    }


def test_gateway_energy_per_reading(store: Store, statuses: StatusWriter) -> None:
    d = base_day()
    d1 = d + timedelta(days=1)
    sobriety(statuses, d)
    got = compute(store, sobriety_register(), "gateway_energy_per_reading", EPCI, d, d1)
    # A on d: gw-a 2 + 1 + 2 = 5 mJ, gw-a2 4 mJ → 9 / 50; A on d+1: 0.5 / 1.
    # B on d: 20 / 20; d+1: no reading. EPCI d: 29 / 70; d+1: (0.5 + 0.5) / 1.
    assert got == {
        (A, d): (0.18, 2),
        (A, d1): (0.5, 1),
        (B, d): (1.0, 1),
        (EPCI, d): (round(29 / 70, 6), 3),
        (EPCI, d1): (1.0, 2),
    }


def test_period_start_uses_the_status_before_it(store: Store, statuses: StatusWriter) -> None:
    # asking from d+1 still pairs the d 23:30 status with d+1 00:30 (the earlier status is
    # read from up to 48 h before the period)
    d = base_day()
    sobriety(statuses, d)
    d1 = d + timedelta(days=1)
    assert compute(store, sobriety_register(), "transmission_bytes_per_reading", A, d1, d1) == {
        (A, d1): (100.0, 1),
    }


def test_no_status_no_value(store: Store) -> None:
    d = base_day()
    assert compute(store, sobriety_register(), "gateway_energy_per_reading", None, d, d) == {}


def test_a_ratio_needs_gateway_counters(store: Store) -> None:
    indicators = Indicators(NO_CACHE, store, register())
    bad = msgspec.structs.replace(CATALOG[0], aggregation="ratio")
    with pytest.raises(ValueError, match="gateway_status counters"):
        indicators.compute(bad, None, Period(base_day(), base_day()))
