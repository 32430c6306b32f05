"""Helpers of the store/ingest tests: a register, frames, publishing, polling."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

import bocage_native
from bocage.core import subjects
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.core.settings import dumps
from bocage.store import ReadingsBatch

HERE = Path(__file__).resolve().parent
TERRITORY = "35238"
OTHER_TERRITORY = "35001"


def make_register(gateways: int = 3, sensors: int = 4, *, territory: str = TERRITORY) -> Register:
    """One commune (plus a neighbour) with ``gateways`` gateways of ``sensors`` cabinets each."""

    def gw(t: str, g: int) -> Gateway:
        return Gateway(
            id=f"gw{g}",
            territory=t,
            sensors=tuple(
                Sensor(
                    id=f"gw{g}-s{s}",
                    kind="lighting_cabinet",
                    gateway=f"gw{g}",
                    retention_days=30 if s == 0 else None,
                )
                for s in range(sensors)
            ),
        )

    return Register(
        territories=(
            Territory(
                code=territory,
                name="Rennes",
                gateways=tuple(gw(territory, g) for g in range(gateways)),
            ),
            Territory(code=OTHER_TERRITORY, name="Acigné", gateways=(gw(OTHER_TERRITORY, 0),)),
        )
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def make_frame(
    gateway: str,
    sequence: int,
    *,
    territory: str = TERRITORY,
    sensors: int = 4,
    readings: int = 10,
    start_ms: int | None = None,
    step_ms: int = 10_000,
    metric: str = "power",
) -> bytes:
    """An encoded frame: ``readings`` readings per sensor, values identifying (seq, sensor, i)."""
    start = now_ms() - readings * step_ms - 60_000 if start_ms is None else start_ms
    series = []
    for s in range(sensors):
        ts = start + np.arange(readings, dtype=np.int64) * step_ms
        values = sequence * 1_000_000.0 + s * 1_000.0 + np.arange(readings, dtype=np.float64)
        series.append((f"{gateway}-s{s}", metric, ts, values, None))
    return bocage_native.encode_frame(territory, gateway, sequence, now_ms(), series)


async def publish_frame(
    js: Any, data: bytes, *, msg_id: str | None = None, subject: str | None = None
) -> Any:
    """Publish a frame on its gateway subject with ``Nats-Msg-Id`` = frame id (as gateways do)."""
    header = bocage_native.peek_header(data)
    subj = subject or subjects.subject(header.territory, header.gateway, "frames")
    mid = header.frame_id if msg_id is None else msg_id
    return await js.publish(subj, data, headers={subjects.MSG_ID_HEADER: mid} if mid else None)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll ``check`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def readings_batch(frames: Iterable[bocage_native.Frame]) -> ReadingsBatch:
    """The rows ingest would insert for these decoded frames (730-day retention)."""
    batch = ReadingsBatch()
    for frame in frames:
        cols = frame.columns()
        batch.add_frame(
            territory=frame.territory,
            gateway=frame.gateway,
            frame_id=frame.frame_id,
            sensors=[s.sensor for s in frame.series],
            metrics=[s.metric for s in frame.series],
            retention_days=[730] * len(frame.series),
            series_index=cols["series_index"],
            timestamps=cols["timestamps"],
            values=cols["values"],
            quality=cols["quality"],
        )
    return batch


def write_settings(path: Path, sections: dict[str, Any]) -> Path:
    """A datacenter settings file (TOML) with these sections."""
    path.write_text(dumps(sections), encoding="utf-8")
    return path


def metric(port: int, name: str, labels: str = "") -> float:
    """Value of one Prometheus sample served on ``127.0.0.1:port`` (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


class ChdbHttp:
    """TEST FIXTURE: ClickHouse's HTTP interface over chDB (chdb_http.py), as a child process.

    Exercises the HTTP backend of the store with no ClickHouse server installed; its own chDB
    data path lives in its own process. ``stop()`` kills it (a store outage), ``start()``
    brings it back on the same port and data.
    """

    def __init__(self, path: Path, port: int, log: Path) -> None:
        self.path, self.port, self.log = path, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "chdb_http.py"), str(self.path), str(self.port)],
                stdout=subprocess.PIPE,
                stderr=err,
            )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            raise AssertionError(f"chdb_http did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
