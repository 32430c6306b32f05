"""The CSV replay adapter: historical readings from a file, with a progress bar (tqdm).

Columns: ``time`` (ISO 8601 with a zone, or epoch milliseconds), ``sensor``, ``metric``,
``value`` and optionally ``quality``. Rows are replayed in file order, as fast as possible or
at ``csv.speed`` times the recorded pace; a restart skips rows at or before the spool's
watermark of their series. A row that does not parse is counted (``bad_csv_row``).
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs in the workspace

from bocage.core.errors import ConfigError
from bocage.core.logs import get_logger
from bocage.edge.adapters import Sink
from bocage.edge.adapters.chirpstack import parse_time_ms
from bocage.edge.reading import Reading
from bocage.edge.settings import EdgeSettings, SensorSection

log = get_logger("bocage.edge.csv")

_BREATHE_EVERY = 2000


def _number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_row(row: dict[str, str]) -> Reading | None:
    """The reading of a CSV row, or None if it does not parse."""
    try:
        raw_time = row["time"].strip()
        time_ms = int(raw_time) if raw_time.isdigit() else parse_time_ms(raw_time)
        if time_ms is None:
            return None
        quality = int(row.get("quality") or 0)
        return Reading(row["sensor"], row["metric"], time_ms, _number(row["value"]), quality)
    except (KeyError, ValueError, AttributeError):
        return None


class CsvSource:
    """Replays ``csv.path`` for the gateway's CSV sensors."""

    name = "csv"

    def __init__(self, settings: EdgeSettings, sensors: list[SensorSection]) -> None:
        self.settings = settings.csv
        if not self.settings.path:
            raise ConfigError("a CSV sensor needs `csv.path`", field="csv.path")
        self.path = Path(self.settings.path)
        self.sensors = {s.id for s in sensors}

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Replay the file once."""
        size = self.path.stat().st_size
        marks: dict[tuple[str, str], int | None] = {}
        started = time.monotonic()
        first_ms: int | None = None
        speed = self.settings.speed
        count = 0
        with self.path.open("rb") as f, tqdm(
            total=size, unit="B", unit_scale=True, desc=f"replay {self.path.name}",
            disable=None if self.settings.progress else True, leave=False,
        ) as bar:
            for row in csv.DictReader(_lines(f, bar)):
                if stop.is_set():
                    return
                reading = parse_row(row)
                if reading is None:
                    sink.reject("bad_csv_row")
                    continue
                if reading.sensor not in self.sensors:
                    sink.reject("unknown_sensor")
                    continue
                series = (reading.sensor, reading.metric)
                if series not in marks:
                    marks[series] = sink.watermark(*series)
                mark = marks[series]
                if mark is not None and reading.time_ms <= mark:
                    continue
                if speed:
                    first_ms = reading.time_ms if first_ms is None else first_ms
                    due = started + (reading.time_ms - first_ms) / 1000 / speed
                    if due > time.monotonic():
                        await asyncio.sleep(due - time.monotonic())
                sink.push(reading)
                count += 1
                if count % _BREATHE_EVERY == 0:
                    await sink.breathe()
        log.info("CSV replay finished", path=str(self.path), readings=count)


def _lines(f: BinaryIO, bar: Any) -> Iterator[str]:
    """Decoded lines of ``f``, advancing ``bar`` by the bytes read (every 256 KiB)."""
    pending = 0
    for raw in f:
        pending += len(raw)
        if pending >= 256 * 1024:
            bar.update(pending)
            pending = 0
        yield raw.decode("utf-8")
    bar.update(pending)
