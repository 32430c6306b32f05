"""Sunrise and sunset for a place and a day: when street lighting switches on and off.

Uses NOAA's "general solar position" approximation (fractional-year series for the equation of
time and the declination, zenith 90.833° for refraction and the solar disc). It is accurate to
a minute or two at French latitudes, far better than the photocells of real cabinets.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

DAY_MS = 86_400_000


def sun_times(day_ms: int, latitude: float, longitude: float) -> tuple[int, int]:
    """(sunrise, sunset) in epoch ms UTC for the UTC day containing ``day_ms``.

    In polar day the sun "rises" at the start of the day and "sets" at its end; in polar night
    both are at solar noon (so the lights stay on all day).
    """
    day_start = day_ms - day_ms % DAY_MS
    day_of_year = _day_of_year(day_start)
    gamma = 2 * math.pi / 365 * (day_of_year - 1)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(gamma)
        - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma)
        - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(gamma)
        + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma)
        + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma)
        + 0.00148 * math.sin(3 * gamma)
    )
    lat = math.radians(latitude)
    cos_ha = math.cos(math.radians(90.833)) / (math.cos(lat) * math.cos(decl)) - math.tan(
        lat
    ) * math.tan(decl)
    noon_min = 720 - 4 * longitude - eqtime
    if cos_ha <= -1:  # polar day
        return day_start, day_start + DAY_MS - 1
    if cos_ha >= 1:  # polar night
        noon = day_start + int(noon_min * 60_000)
        return noon, noon
    ha_deg = math.degrees(math.acos(cos_ha))
    sunrise = day_start + int((noon_min - 4 * ha_deg) * 60_000)
    sunset = day_start + int((noon_min + 4 * ha_deg) * 60_000)
    return sunrise, sunset


def is_daylight(time_ms: int, latitude: float, longitude: float) -> bool:
    """True between sunrise and sunset."""
    sunrise, sunset = sun_times(time_ms, latitude, longitude)
    return sunrise <= time_ms < sunset


def _day_of_year(day_start_ms: int) -> int:
    return datetime.fromtimestamp(day_start_ms / 1000, tz=UTC).timetuple().tm_yday
