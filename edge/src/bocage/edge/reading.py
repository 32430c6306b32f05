"""The normalised reading every adapter produces: (sensor, metric, time, value, quality)."""

from __future__ import annotations

import msgspec

QUALITY_GOOD = 0
"""Quality codes travel in the frame's uint8 quality column; 0 means a plain measurement."""
QUALITY_AGGREGATE = 1
"""The value summarises a window of raw readings (downsampling or spool compaction)."""
QUALITY_ESTIMATED = 2
"""The device flagged the value as estimated or degraded."""


class Reading(msgspec.Struct, frozen=True, gc=False):
    """One value of one metric of one sensor at one instant (epoch milliseconds, UTC).

    ``value`` is an ``int`` for counters and states and a ``float`` for gauges, as the frame
    codec keeps int64 and float64 series apart. Instances are hashable and compare by value, so
    tests can compare sets of readings.
    """

    sensor: str
    metric: str
    time_ms: int
    value: float | int
    quality: int = QUALITY_GOOD

    @property
    def series(self) -> tuple[str, str]:
        """The (sensor, metric) pair identifying the series this reading belongs to."""
        return (self.sensor, self.metric)
