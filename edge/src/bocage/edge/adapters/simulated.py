"""The simulator adapter: the sensors of a gateway whose ``adapter = "simulator"``.

Live (``realtime = true``) it emits each sample when the wall clock reaches its time; as a
replay (``realtime = false``) it emits as fast as the pipeline takes them, interleaving the
sensors in time order, and stops after ``limit`` samples per sensor. After a restart it skips
every reading at or before the spool's watermark of its series, so a replay killed at any
moment resumes without loss or duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Iterator
from itertools import islice

from bocage.core.register import SENSOR_KINDS
from bocage.edge.adapters import Sink
from bocage.edge.reading import Reading
from bocage.edge.settings import EdgeSettings, SensorSection
from bocage.edge.simulator import Place, samples

_BREATHE_EVERY = 2000


def place_of(settings: EdgeSettings, sensor: SensorSection) -> Place:
    """Where a simulated sensor is: the gateway's position, the sensor's UTC offset option."""
    return Place(
        latitude=float(sensor.options.get("latitude", settings.gateway.latitude)),
        longitude=float(sensor.options.get("longitude", settings.gateway.longitude)),
        utc_offset_h=float(sensor.options.get("utc_offset_h", 1.0)),
    )


def _start_ms(sensor: SensorSection, now_ms: int) -> int:
    if sensor.start_ms is not None:
        return sensor.start_ms
    return now_ms - now_ms % sensor.step_ms


def sensor_samples(
    settings: EdgeSettings, sensor: SensorSection, *, now_ms: int | None = None
) -> Iterator[list[Reading]]:
    """The samples the simulator adapter produces for ``sensor`` (finite if it has a limit)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    gen = samples(
        sensor.id, sensor.kind, start_ms=_start_ms(sensor, now_ms), step_ms=sensor.step_ms,
        seed=sensor.seed, profile=sensor.profile, place=place_of(settings, sensor),
    )
    return gen if sensor.limit is None else islice(gen, sensor.limit)


def expected_readings(settings: EdgeSettings) -> list[Reading]:
    """Every reading the simulated sensors of ``settings`` produce in a finite replay.

    Each simulated sensor needs ``start_ms`` and ``limit`` set (otherwise its readings depend
    on the wall clock or never end): this is what an end-to-end test compares with the rows
    stored in the datacenter.
    """
    out: list[Reading] = []
    for sensor in settings.sensors:
        if sensor.adapter != "simulator":
            continue
        if sensor.start_ms is None or sensor.limit is None:
            raise ValueError(f"sensor {sensor.id}: expected_readings needs start_ms and limit")
        for sample in sensor_samples(settings, sensor):
            out.extend(sample)
    return out


class SimulatorSource:
    """Every simulated sensor of one gateway, merged in time order."""

    name = "simulator"

    def __init__(self, settings: EdgeSettings, sensors: list[SensorSection]) -> None:
        self.settings = settings
        self.sensors = sensors
        self.realtime = any(s.realtime for s in sensors)
        self.step_of = [s.step_ms for s in sensors]

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Emit every sample (in time order across sensors) until done or stopped."""
        now_ms = int(time.time() * 1000)
        streams = [
            (sensor, sensor_samples(self.settings, sensor, now_ms=now_ms))
            for sensor in self.sensors
        ]
        marks = {
            (s.id, metric.name): sink.watermark(s.id, metric.name)
            for s in self.sensors
            for metric in SENSOR_KINDS[s.kind].metrics
        }
        heap: list[tuple[int, int, list[Reading], Iterator[list[Reading]], bool]] = []
        for index, (sensor, stream) in enumerate(streams):
            first = next(stream, None)
            if first:
                heap.append((first[0].time_ms, index, first, stream, sensor.realtime))
        heapq.heapify(heap)
        emitted = 0
        while heap and not stop.is_set():
            t, index, sample, stream, realtime = heap[0]
            if realtime:
                delay = t / 1000 - time.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
                    continue
            # live sensors sample less on a low battery: skip samples (never produced, so
            # nothing to count); a replay always produces everything
            factor = round(sink.sampling_factor()) if realtime else 1
            skip = factor > 1 and (t // self.step_of[index]) % factor
            for reading in () if skip else sample:
                mark = marks.get((reading.sensor, reading.metric))
                if mark is None or reading.time_ms > mark:
                    sink.push(reading)
            nxt = next(stream, None)
            if nxt:
                heapq.heapreplace(heap, (nxt[0].time_ms, index, nxt, stream, realtime))
            else:
                heapq.heappop(heap)
            emitted += len(sample)
            if emitted >= _BREATHE_EVERY:
                emitted = 0
                await sink.breathe()
