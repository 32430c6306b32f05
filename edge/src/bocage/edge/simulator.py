"""Deterministic, realistic readings for every sensor kind of the register.

A simulated sensor is a pure function of (sensor id, kind, start, step, seed, profile, place):
:func:`simulate` regenerates exactly the readings a simulated gateway produced, so tests can
compare what reached the datacenter with what was sent. Profiles:

- ``lighting_cabinet``: on from sunset to sunrise at the gateway's latitude/longitude (profile
  ``night_cut``: off from 23:00 to 05:00 local, as many French villages do), rated power with
  a little noise when on, standby draw when off, an energy counter in Wh.
- ``building_meter``: base load plus an occupancy curve on working days (08:00–18:00 with a
  lunch dip), more in winter (heating), an energy counter.
- ``water_meter``: morning/noon/evening draws, near zero at night; profile ``leak`` adds a
  constant flow so that the night flow never falls to zero; a volume counter in litres.
- ``air_quality``: PM10/PM2.5 with traffic and heating peaks, NO2 at rush hours, O3 in the
  sunny afternoon, a seasonal and diurnal temperature, all with autocorrelated noise.
- ``waste_bin``: fill level rising with the day's activity, emptied on collection days
  (Monday and Thursday mornings), stuck at 100 % when overflowing.
- ``counter``: cumulative passages, Poisson arrivals following a daily profile.

Counters and states are ``int``, gauges ``float`` rounded to the sensor's resolution.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from itertools import islice

from bocage.core.register import SENSOR_KINDS
from bocage.edge.reading import Reading
from bocage.edge.sun import DAY_MS, sun_times

HOUR_MS = 3_600_000
Sample = list[tuple[str, float | int]]


class Place:
    """Where the simulated sensor is: position (for the sun) and the local UTC offset."""

    __slots__ = ("latitude", "longitude", "utc_offset_h")

    def __init__(
        self, latitude: float = 46.6, longitude: float = 2.4, utc_offset_h: float = 1.0
    ) -> None:
        self.latitude = latitude
        self.longitude = longitude
        self.utc_offset_h = utc_offset_h

    def local_hour(self, time_ms: int) -> float:
        """Hour of the local day, 0 ≤ h < 24."""
        return ((time_ms / HOUR_MS) + self.utc_offset_h) % 24

    def weekday(self, time_ms: int) -> int:
        """Local day of the week, Monday = 0 (1970-01-01 was a Thursday)."""
        local_days = int((time_ms + self.utc_offset_h * HOUR_MS) // DAY_MS)
        return (local_days + 3) % 7

    def season(self, time_ms: int) -> float:
        """+1 in mid-July, -1 in mid-January (a cosine over the year)."""
        day = (time_ms / DAY_MS) % 365.25
        return -math.cos(2 * math.pi * (day - 15) / 365.25)


class _Noise:
    """First-order autoregressive noise: sensor values drift, they do not jump."""

    def __init__(self, rng: random.Random, sigma: float, keep: float = 0.95) -> None:
        self.rng = rng
        self.sigma = sigma
        self.keep = keep
        self.value = 0.0

    def __call__(self) -> float:
        spread = self.sigma * math.sqrt(1 - self.keep**2)
        self.value = self.keep * self.value + self.rng.gauss(0.0, spread)
        return self.value


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation: exact enough for counts and much cheaper
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _bump(hour: float, centre: float, width: float) -> float:
    """A smooth peak of height 1 at ``centre`` hours, ``width`` hours wide."""
    d = min(abs(hour - centre), 24 - abs(hour - centre))
    return math.exp(-0.5 * (d / width) ** 2)


Generator = Callable[[int], Sample]


def _lighting(rng: random.Random, place: Place, profile: str, step_ms: int) -> Generator:
    rated = round(rng.uniform(800, 3000) / 50) * 50
    standby = rng.uniform(3.0, 6.0)
    energy = rng.uniform(0, 5e6)
    failed = 0  # lamps out: a cabinet slowly loses power as lamps fail until maintenance
    sun_cache: dict[int, tuple[int, int]] = {}

    def sample(t: int) -> Sample:
        nonlocal energy, failed
        day = t - t % DAY_MS
        if day not in sun_cache:
            sun_cache.clear()
            sun_cache[day] = sun_times(day, place.latitude, place.longitude)
        sunrise, sunset = sun_cache[day]
        on = not (sunrise <= t < sunset)
        if on and profile == "night_cut":
            hour = place.local_hour(t)
            on = not (hour >= 23.0 or hour < 5.0)
        if rng.random() < 1e-4:
            failed = min(failed + 1, 5)
        if failed and rng.random() < 1e-4:
            failed = 0
        if on:
            power = rated * (1 - 0.04 * failed) * (1 + rng.gauss(0, 0.005))
        else:
            power = standby + rng.gauss(0, 0.2)
        power = max(0.0, round(power, 1))
        energy += power * step_ms / HOUR_MS
        return [("power", power), ("energy", int(energy)), ("on", int(on))]

    return sample


def _building(rng: random.Random, place: Place, profile: str, step_ms: int) -> Generator:
    base = rng.uniform(1500, 4000)
    peak = base * rng.uniform(3, 6)
    noise = _Noise(rng, 0.04)
    energy = rng.uniform(0, 5e7)

    def sample(t: int) -> Sample:
        nonlocal energy
        hour = place.local_hour(t)
        occupied = 0.0
        if place.weekday(t) < 5 or profile == "always_open":
            ramp_up = min(1.0, max(0.0, (hour - 7) / 2))
            ramp_down = min(1.0, max(0.0, (19 - hour) / 2))
            occupied = min(ramp_up, ramp_down) * (1 - 0.15 * _bump(hour, 13, 0.8))
        heating = 1 + 0.3 * max(0.0, -place.season(t))
        power = (base + (peak - base) * occupied) * heating * (1 + noise())
        power = max(0.0, round(power, 1))
        energy += power * step_ms / HOUR_MS
        return [("power", power), ("energy", int(energy))]

    return sample


def _water(rng: random.Random, place: Place, profile: str, step_ms: int) -> Generator:
    scale = rng.uniform(50, 300)
    leak = rng.uniform(20, 60) if profile == "leak" else 0.0
    volume = rng.uniform(0, 1e7)

    def sample(t: int) -> Sample:
        nonlocal volume
        hour = place.local_hour(t)
        demand = 0.9 * _bump(hour, 7.5, 1.0) + 0.5 * _bump(hour, 12.5, 1.0) + 0.8 * _bump(
            hour, 19.5, 1.3
        )
        flow = scale * demand * rng.lognormvariate(0, 0.25)
        if rng.random() < 0.01:  # someone fills a bucket, a toilet flushes
            flow += rng.uniform(100, 600)
        flow = round(max(0.0, flow + leak), 1)
        volume += flow * step_ms / HOUR_MS
        return [("flow", flow), ("volume", int(volume))]

    return sample


def _air(rng: random.Random, place: Place, profile: str, step_ms: int) -> Generator:
    pm_noise, no2_noise, o3_noise, t_noise = (_Noise(rng, s, 0.98) for s in (5.0, 6.0, 8.0, 1.0))
    pm_ratio = rng.uniform(0.55, 0.7)
    mean_temp = rng.uniform(10, 14)

    def sample(t: int) -> Sample:
        hour = place.local_hour(t)
        season = place.season(t)
        traffic = _bump(hour, 8, 1.2) + _bump(hour, 18, 1.5)
        heating = max(0.0, -season) * (_bump(hour, 20, 3) + 0.5)
        pm10 = max(0.0, 14 + 10 * traffic + 12 * heating + pm_noise())
        pm25 = max(0.0, pm10 * pm_ratio + rng.gauss(0, 0.5))
        no2 = max(0.0, 12 + 25 * traffic + no2_noise())
        sunny = max(0.0, math.sin(math.pi * (hour - 8) / 12)) if 8 <= hour <= 20 else 0.0
        o3 = max(0.0, 35 + 45 * sunny * (1 + season) / 2 * 1.5 - 0.3 * no2 + o3_noise())
        temperature = (
            mean_temp + 8 * season + 4 * math.sin(2 * math.pi * (hour - 9) / 24) + t_noise()
        )
        return [
            ("pm10", round(pm10, 1)),
            ("pm25", round(pm25, 1)),
            ("no2", round(no2, 1)),
            ("o3", round(o3, 1)),
            ("temperature", round(temperature, 1)),
        ]

    return sample


def _waste(rng: random.Random, place: Place, profile: str, step_ms: int) -> Generator:
    rate = rng.uniform(0.3, 1.2)  # % per active hour
    fill = rng.uniform(0, 40)
    emptied_day = -1
    t_noise = _Noise(rng, 1.0, 0.98)

    def sample(t: int) -> Sample:
        nonlocal fill, emptied_day
        hour = place.local_hour(t)
        day = int((t + place.utc_offset_h * HOUR_MS) // DAY_MS)
        if place.weekday(t) in (0, 3) and hour >= 6 and emptied_day != day:
            fill, emptied_day = rng.uniform(0, 3), day
        activity = 0.2 + _bump(hour, 12, 3) + _bump(hour, 19, 2)
        fill = min(100.0, fill + rate * activity * step_ms / HOUR_MS * rng.uniform(0.5, 1.5))
        temperature = 11 + 8 * place.season(t) + 5 * math.sin(2 * math.pi * (hour - 9) / 24)
        return [("fill", round(fill, 1)), ("temperature", round(temperature + t_noise(), 1))]

    return sample


def _counter(rng: random.Random, place: Place, profile: str, step_ms: int) -> Generator:
    peak_per_hour = rng.uniform(20, 200)
    count = rng.randrange(0, 100_000)

    def sample(t: int) -> Sample:
        nonlocal count
        hour = place.local_hour(t)
        weekend = place.weekday(t) >= 5
        if weekend:
            profile_ = 0.6 * _bump(hour, 11, 2.5) + 0.5 * _bump(hour, 16, 2.5)
        else:
            profile_ = _bump(hour, 8, 1) + 0.6 * _bump(hour, 12.5, 1) + 0.9 * _bump(hour, 17.5, 1.2)
        count += _poisson(rng, peak_per_hour * (profile_ + 0.02) * step_ms / HOUR_MS)
        return [("count", count)]

    return sample


_PROFILES: dict[str, Callable[[random.Random, Place, str, int], Generator]] = {
    "lighting_cabinet": _lighting,
    "building_meter": _building,
    "water_meter": _water,
    "air_quality": _air,
    "waste_bin": _waste,
    "counter": _counter,
}
assert set(_PROFILES) == set(SENSOR_KINDS), "every sensor kind needs a simulator profile"


def samples(
    sensor_id: str,
    kind: str,
    *,
    start_ms: int,
    step_ms: int,
    seed: int = 0,
    profile: str = "default",
    place: Place | None = None,
) -> Iterator[list[Reading]]:
    """Endless samples of one simulated sensor: each is the list of its metrics at one time.

    The i-th sample is at ``start_ms + i * step_ms``; the sequence depends on nothing but the
    arguments (the random generator is seeded from ``seed`` and ``sensor_id``).
    """
    if kind not in _PROFILES:
        raise ValueError(f"no simulator profile for sensor kind {kind!r}")
    if step_ms <= 0:
        raise ValueError("step_ms must be positive")
    rng = random.Random(f"bocage:{seed}:{sensor_id}:{kind}:{profile}")
    generate = _PROFILES[kind](rng, place or Place(), profile, step_ms)
    t = start_ms
    while True:
        yield [Reading(sensor_id, metric, t, value) for metric, value in generate(t)]
        t += step_ms


def simulate(  # noqa: PLR0917 - the documented call shape used by tests and the e2e
    sensor_id: str,
    kind: str,
    start_ms: int,
    step_ms: int,
    count: int,
    seed: int = 0,
    *,
    profile: str = "default",
    place: Place | None = None,
) -> list[Reading]:
    """The readings of ``count`` samples of a simulated sensor, in order.

    A sample holds one reading per metric of the kind, so the list has
    ``count * len(SENSOR_KINDS[kind].metrics)`` readings. This is exactly what the simulator
    adapter of a gateway configured with the same sensor settings produces.
    """
    gen = samples(
        sensor_id, kind, start_ms=start_ms, step_ms=step_ms, seed=seed, profile=profile, place=place
    )
    return [reading for sample in islice(gen, count) for reading in sample]
