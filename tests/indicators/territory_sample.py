"""A small pooled territory (an EPCI, two communes) and a writer of real readings.

Shared by the indicator and API tests (tests/api/conftest.py puts this folder on sys.path);
their conftests import the fixtures below. ``store`` uses the session's ``chdb_path``
(tests/conftest.py: chDB opens one data path per process) and a database of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bocage.core.events import GatewayStatus
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.ingest.ingestor import STATUS_FIELDS
from bocage.store import Store, StoreSettings

PARIS = ZoneInfo("Europe/Paris")
EPCI = "200000001"
A = "35001"
B = "35002"

COLUMNS = ["territory", "gateway", "sensor", "metric", "ts", "value", "quality", "frame_id"]


def register() -> Register:
    """An EPCI with two communes: A has every kind of sensor, B lighting and water."""

    def sensor(sid: str, kind: str, **kw: object) -> Sensor:
        return Sensor(id=sid, kind=kind, name=sid, **kw)  # type: ignore[arg-type]

    return Register(
        territories=(
            Territory(code=EPCI, name="CC du Bocage", kind="epci"),
            Territory(
                code=A, name="Saint-A", parent=EPCI,
                gateways=(Gateway(id="gw-a", territory=A, sensors=(
                    sensor("lc-a1", "lighting_cabinet"),
                    sensor("lc-a2", "lighting_cabinet"),
                    sensor("bm-a", "building_meter"),
                    sensor("wm-a", "water_meter"),
                    sensor("aq-a", "air_quality", latitude=48.1, longitude=-1.6),
                    sensor("cnt-a", "counter", public=False, personal_data=False),
                )),),
            ),
            Territory(
                code=B, name="Saint-B", parent=EPCI,
                gateways=(Gateway(id="gw-b", territory=B, sensors=(
                    sensor("lc-b1", "lighting_cabinet"),
                    sensor("wm-b", "water_meter"),
                )),),
            ),
        )
    )


def base_day() -> date:
    """A local day recent enough to be within every retention, far enough to be complete."""
    return datetime.now(PARIS).date() - timedelta(days=10)


def at(day: date, hhmm: str, plus_days: int = 0) -> datetime:
    """Local time ``hhmm`` of ``day + plus_days`` in Europe/Paris, as a UTC datetime."""
    h, m = (int(x) for x in hhmm.split(":"))
    d = day + timedelta(days=plus_days)
    return datetime(d.year, d.month, d.day, h, m, tzinfo=PARIS).astimezone(UTC)


def hours_in(day: date) -> int:
    """Clock hours of a local day (23 or 25 on DST changes)."""
    start = datetime(day.year, day.month, day.day, tzinfo=PARIS)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=PARIS)
    return int((end - start).total_seconds() // 3600)


class Writer:
    """Inserts readings for real into the store's ``readings`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self, territory: str, sensor: str, metric: str, points: list[tuple[datetime, float]],
        *, quality: int = 0,
    ) -> None:
        gateway = "gw-a" if territory == A else "gw-b"
        rows = [
            (territory, gateway, sensor, metric, ts, value, quality,
             f"{territory}:{gateway}:1")
            for ts, value in points
        ]
        self.store.insert_rows("readings", rows, COLUMNS)


class StatusWriter:
    """Inserts gateway status events into ``gateway_status`` as the ingestor stores them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, territory: str, gateway: str,
            points: list[tuple[datetime, int, int, float]]) -> None:
        """Statuses at the given times with (``bytes_sent``, ``readings_accepted``,
        ``energy_mj``); the other counters are left at 0."""
        statuses = [
            GatewayStatus(territory=territory, gateway=gateway,
                          time_ms=round(ts.timestamp() * 1000), bytes_sent=nbytes,
                          readings_accepted=readings, energy_mj=energy)
            for ts, nbytes, readings, energy in points
        ]
        # the same rows and columns as Ingestor._store_events
        rows = []
        for status in statuses:
            row = [getattr(status, name) for name in STATUS_FIELDS]
            row[STATUS_FIELDS.index("time_ms")] = datetime.fromtimestamp(
                status.time_ms / 1000, tz=UTC)
            rows.append(tuple(row))
        columns = tuple("time" if name == "time_ms" else name for name in STATUS_FIELDS)
        self.store.insert_rows("gateway_status", rows, columns)


@pytest.fixture
def store(chdb_path: Path) -> Iterator[Store]:
    """A migrated store in a database of its own, dropped afterwards."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    s = Store.connect(StoreSettings(dsn=f"chdb://{chdb_path}", database=database))
    try:
        yield s
    finally:
        s.command(f"DROP DATABASE IF EXISTS {s.quoted_database}")
        s.close()


@pytest.fixture
def writer(store: Store) -> Writer:
    """Writes readings into ``store``."""
    return Writer(store)


@pytest.fixture
def statuses(store: Store) -> StatusWriter:
    """Writes gateway status events into ``store``."""
    return StatusWriter(store)
