"""Per-metric filters between the adapters and the batcher; every drop is counted by reason.

In order, for each reading:

1. validation (``rejected``): unknown sensor, metric the kind does not have, value that is not
   a number, NaN/infinite, outside the plausibility range (the metric spec's range, or the
   filter's ``min``/``max``);
2. alarms: a threshold crossing (``alarm_above`` / ``alarm_below``) raises an alarm, sent ahead
   of data; the reading itself continues;
3. ``filtered``: duplicate (same series and timestamp seen recently), rate limit
   (``min_interval_s``), deadband / change-of-value with heartbeat, downsampling to window
   aggregates computed by the native kernels.

Time is the readings' own time, never the wall clock, so a replay filters exactly like the
live run did.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

import bocage_native
from bocage.core.events import Alarm
from bocage.core.register import SENSOR_KINDS, MetricSpec, SensorKind
from bocage.edge.counters import Counters
from bocage.edge.reading import QUALITY_AGGREGATE, Reading
from bocage.edge.settings import MetricFilter

_RECENT = 16
"""Timestamps remembered per series for duplicate suppression (late repeats are rare)."""

_DEFAULT_FILTER = MetricFilter()


class _Series:
    """Filter state of one (sensor, metric) series."""

    __slots__ = (
        "alarm_high", "alarm_low", "config", "high", "last_kept_ms", "last_sent_ms",
        "last_sent_value", "low", "recent", "spec", "window", "window_start", "window_ts",
        "window_values",
    )

    def __init__(self, spec: MetricSpec, config: MetricFilter) -> None:
        self.spec = spec
        self.config = config
        self.low = spec.min if config.min is None else config.min
        self.high = spec.max if config.max is None else config.max
        self.recent: deque[int] = deque(maxlen=_RECENT)
        self.last_kept_ms: int | None = None
        self.last_sent_ms: int | None = None
        self.last_sent_value: float = 0.0
        self.alarm_high = False
        self.alarm_low = False
        self.window = int(config.downsample_s * 1000)
        self.window_start: int | None = None
        self.window_ts: list[int] = []
        self.window_values: list[float] = []


class Filters:
    """The filter chain of one gateway.

    ``emit`` receives the readings that pass (and downsampling aggregates); ``alarm`` receives
    alarms. ``sensors`` maps each known sensor id to its kind.
    """

    def __init__(
        self,
        sensors: dict[str, str],
        config: dict[str, MetricFilter],
        counters: Counters,
        *,
        territory: str,
        gateway: str,
        emit: Callable[[Reading], None],
        alarm: Callable[[Alarm], None],
        spooled: Callable[[str, str], int | None] | None = None,
    ) -> None:
        self.kinds: dict[str, SensorKind] = {s: SENSOR_KINDS[k] for s, k in sensors.items()}
        self.config = config
        self.counters = counters
        self.territory = territory
        self.gateway = gateway
        self.emit = emit
        self.alarm = alarm
        self.spooled = spooled
        """Newest time already in the spool for a series: it seeds the duplicate memory, so
        a repeat of the last reading spooled before a restart is still a duplicate."""
        self.series: dict[tuple[str, str], _Series] = {}

    def reject(self, reason: str, count: int = 1) -> None:
        """Count input refused before it became a reading (bad JSON, unknown device...)."""
        self.counters.produced += count
        self.counters.rejected[reason] += count

    def _state(self, sensor: str, metric: str) -> _Series | str:
        kind = self.kinds.get(sensor)
        if kind is None:
            return "unknown_sensor"
        spec = kind.metric(metric)
        if spec is None:
            return "unknown_metric"
        config = (
            self.config.get(f"{kind.name}.{metric}") or self.config.get(metric) or _DEFAULT_FILTER
        )
        state = self.series[(sensor, metric)] = _Series(spec, config)
        newest = None if self.spooled is None else self.spooled(sensor, metric)
        if newest is not None:
            state.recent.append(newest)
        return state

    def push(self, reading: Reading) -> bool:
        """Filter one reading; True if it (or its window) continues to the batcher."""
        counters = self.counters
        counters.produced += 1
        state = self.series.get((reading.sensor, reading.metric))
        if state is None:
            found = self._state(reading.sensor, reading.metric)
            if isinstance(found, str):
                counters.rejected[found] += 1
                return False
            state = found
        value = reading.value
        if type(value) not in (int, float) or type(reading.time_ms) is not int:
            counters.rejected["bad_type"] += 1
            return False
        if not math.isfinite(value):
            counters.rejected["not_finite"] += 1
            return False
        if not state.low <= value <= state.high:
            counters.rejected["out_of_range"] += 1
            return False
        config = state.config
        if config.alarm_above is not None or config.alarm_below is not None:
            self._alarms(state, reading)
        t = reading.time_ms
        if config.duplicates:
            if t in state.recent:
                counters.filtered["duplicate"] += 1
                return False
            state.recent.append(t)
        if (
            config.min_interval_s
            and state.last_kept_ms is not None
            and abs(t - state.last_kept_ms) < config.min_interval_s * 1000
        ):
            counters.filtered["rate_limited"] += 1
            return False
        state.last_kept_ms = t
        if config.deadband and state.last_sent_ms is not None:
            fresh = t - state.last_sent_ms < config.heartbeat_s * 1000
            if fresh and abs(value - state.last_sent_value) < config.deadband:
                counters.filtered["deadband"] += 1
                return False
        state.last_sent_ms = t
        state.last_sent_value = value
        if state.window:
            self._downsample(state, reading)
            return True
        self.emit(reading)
        return True

    def _alarms(self, state: _Series, reading: Reading) -> None:
        config = state.config
        above = config.alarm_above is not None and reading.value > config.alarm_above
        below = config.alarm_below is not None and reading.value < config.alarm_below
        # raise on the crossing only: a value that stays high is one alarm, not one per reading
        if above and not state.alarm_high:
            self._raise(reading, f"{reading.metric} above {config.alarm_above}")
        if below and not state.alarm_low:
            self._raise(reading, f"{reading.metric} below {config.alarm_below}")
        state.alarm_high, state.alarm_low = above, below

    def _raise(self, reading: Reading, message: str) -> None:
        self.alarm(
            Alarm(
                territory=self.territory,
                gateway=self.gateway,
                sensor=reading.sensor,
                kind="threshold",
                time_ms=reading.time_ms,
                message=message,
                metric=reading.metric,
                value=float(reading.value),
            )
        )

    def _downsample(self, state: _Series, reading: Reading) -> None:
        start = reading.time_ms - reading.time_ms % state.window
        if state.window_start is not None and start != state.window_start:
            self._close_window(state, reading.sensor, reading.metric)
        state.window_start = start
        state.window_ts.append(reading.time_ms)
        state.window_values.append(float(reading.value))
        self.counters.filtered["downsampled"] += 1

    def _close_window(self, state: _Series, sensor: str, metric: str) -> None:
        if state.window_start is None or not state.window_ts:
            return
        value = window_value(
            state.spec, np.asarray(state.window_ts, dtype=np.int64),
            np.asarray(state.window_values, dtype=np.float64), state.window,
        )
        state.window_ts.clear()
        state.window_values.clear()
        start, state.window_start = state.window_start, None
        self.counters.derived += 1
        self.emit(Reading(sensor, metric, start, value, QUALITY_AGGREGATE))

    def flush(self) -> None:
        """Close every open downsampling window (at a graceful stop)."""
        for (sensor, metric), state in self.series.items():
            if state.window:
                self._close_window(state, sensor, metric)


def window_value(spec: MetricSpec, ts: np.ndarray, values: np.ndarray, window_ms: int) -> float:
    """The one value standing for a window of raw readings of one series.

    Gauges keep their time-weighted mean (robust to irregular sampling), counters their last
    value (so increases stay exact), states their last value. Computed by the native kernels.
    """
    series_ids = np.zeros(len(ts), dtype=np.int64)
    column = "time_weighted_mean" if spec.kind == "gauge" else "last"
    result = bocage_native.aggregate(series_ids, ts, values, window_ms, stats=[column])
    return float(result[column][0])
