"""The store against a real ClickHouse engine (chDB, or a server with CLICKHOUSE_URL)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest
from ingest_helpers import TERRITORY, now_ms

from bocage.core.errors import ConfigError, UnreachableError
from bocage.core.natsserver import free_port
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.store import ReadingsBatch, Store, StoreSettings, schema

CONTRACT_COLUMNS = [
    "territory",
    "gateway",
    "sensor",
    "metric",
    "ts",
    "value",
    "quality",
    "frame_id",
    "ingested_at",
]
DAY_MS = 86_400_000


@pytest.fixture(params=["chdb", "http"])
def store_dsn(request: pytest.FixtureRequest, chdb_path: Path) -> str:
    """Every store test runs on both backends: embedded chDB and HTTP (a server, or the
    test-only HTTP-over-chDB fixture when CLICKHOUSE_URL is not set)."""
    if os.environ.get("CLICKHOUSE_URL"):
        return os.environ["CLICKHOUSE_URL"]
    if request.param == "chdb":
        return f"chdb://{chdb_path}"
    return request.getfixturevalue("chdb_http").url


def batch_of(
    frames: list[tuple[str, list[int], list[float]]], *, retention: int = 730
) -> ReadingsBatch:
    """A batch with one series (gw0-s1 / power) per frame: (frame_id, timestamps, values)."""
    batch = ReadingsBatch()
    for frame_id, ts, values in frames:
        batch.add_frame(
            territory=TERRITORY,
            gateway="gw0",
            frame_id=frame_id,
            sensors=["gw0-s1"],
            metrics=["power"],
            retention_days=[retention],
            series_index=np.zeros(len(ts), np.uint32),
            timestamps=np.asarray(ts, np.int64),
            values=np.asarray(values, np.float64),
        )
    return batch


def test_migrations_are_versioned_and_idempotent(store: Store) -> None:
    files = schema.load(schema.locate())
    assert [m.version for m in files] == sorted(m.version for m in files)
    assert store.applied_migrations() == [m.version for m in files]
    assert store.migrate() == []  # nothing pending the second time
    # a half-applied migration is re-run without error: statements are idempotent
    for migration in files:
        for statement in migration.statements(store.database):
            store.command(statement)
    tables = {
        r[0]
        for r in store.query(
            "SELECT name FROM system.tables WHERE database = {d:String}", {"d": store.database}
        )
    }
    expected = {
        "readings",
        "readings_1m",
        "readings_1h",
        "readings_1d",
        "frames",
        "quarantine",
        "territories",
        "gateways",
        "sensors",
        "sensor_metrics",
        "alarms",
        "gateway_status",
        "schema_migrations",
    }
    assert expected <= tables


def test_migrations_dir_setting_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="migrations_dir"):
        schema.locate(str(tmp_path / "nowhere"))


def test_readings_table_is_the_contract(store: Store) -> None:
    result = store.query_arrow("SELECT * FROM readings LIMIT 0")
    assert result.column_names == CONTRACT_COLUMNS
    key = store.query(
        "SELECT partition_key, sorting_key, engine FROM system.tables "
        "WHERE database = {d:String} AND name = 'readings'",
        {"d": store.database},
    )
    assert key == [("toYYYYMM(ts)", "territory, sensor, metric, ts", "MergeTree")]


def test_sync_register_replaces_the_register(store: Store, register: Register) -> None:
    store.sync_register(register)
    assert store.scalar("SELECT count() FROM sensors") == 3 * 4 + 4
    assert store.retention_days()[(TERRITORY, "gw0-s0")] == 30  # declared by the sensor
    assert store.retention_days()[(TERRITORY, "gw0-s1")] == 730  # from its kind
    smaller = Register(
        territories=(
            Territory(
                code=TERRITORY,
                name="Rennes",
                gateways=(
                    Gateway(
                        id="gw0",
                        territory=TERRITORY,
                        sensors=(Sensor(id="gw0-s0", kind="water_meter"),),
                    ),
                ),
            ),
        )
    )
    store.sync_register(smaller)
    assert store.query("SELECT territory, gateway, id, kind FROM sensors") == [
        (TERRITORY, "gw0", "gw0-s0", "water_meter")
    ]
    assert store.scalar("SELECT count() FROM territories") == 1
    assert store.scalar("SELECT count() FROM sensor_metrics WHERE kind = 'air_quality'") == 5


def test_insert_with_the_same_token_is_a_noop(store: Store) -> None:
    t0 = now_ms() - 3_600_000
    table = batch_of([("35238:gw0:1", [t0, t0 + 1000], [1.0, 2.0])]).to_arrow()
    assert store.insert_readings(table, dedup_token="35238:gw0:1") == 2
    store.insert_readings(table, dedup_token="35238:gw0:1")
    assert store.scalar("SELECT count() FROM readings") == 2
    # the materialized views skip the deduplicated block too
    assert store.scalar("SELECT sum(count) FROM readings_1m") == 2
    assert store.scalar("SELECT sum(count) FROM readings_1d") == 2
    stored = store.stored_frames([(TERRITORY, "gw0", 1), (TERRITORY, "gw0", 2)])
    assert stored == {"35238:gw0:1": (2, t0, t0 + 1000)}
    # another token is another insert
    store.insert_readings(table, dedup_token="other")
    assert store.scalar("SELECT count() FROM readings") == 4


def test_late_and_out_of_order_data_land_in_their_partitions_and_rollups(store: Store) -> None:
    rng = np.random.default_rng(7)
    now = now_ms() // 3_600_000 * 3_600_000
    recent = np.sort(now - rng.integers(0, 6 * 3_600_000, 500))
    backlog = np.sort(now - 3 * DAY_MS + rng.integers(0, DAY_MS, 500))  # three days late
    old = np.sort(now - 70 * DAY_MS + rng.integers(0, DAY_MS, 500))  # another month
    frames = []
    for i, ts in enumerate((recent, old, backlog)):  # out of order on purpose
        frames.append((f"35238:gw0:{i + 1}", ts.tolist(), rng.normal(100, 20, len(ts)).tolist()))
    store.insert_readings(batch_of(frames).to_arrow(), dedup_token="late")
    parts = {
        r[0]
        for r in store.query(
            "SELECT DISTINCT partition FROM system.parts WHERE database = {d:String} "
            "AND table = 'readings' AND active",
            {"d": store.database},
        )
    }
    every_ts = np.concatenate([recent, backlog, old])
    months = {dt.datetime.fromtimestamp(int(t) / 1000, dt.UTC).strftime("%Y%m") for t in every_ts}
    assert months == parts
    raw = store.query(
        "SELECT toStartOfHour(ts) AS h, count(), sum(value), min(value), max(value), "
        "argMax(value, ts) FROM readings GROUP BY h ORDER BY h"
    )
    rolled = store.query(
        "SELECT bucket, sum(count), sum(sum), min(min), max(max), argMaxMerge(last) "
        "FROM readings_1h GROUP BY bucket ORDER BY bucket"
    )
    assert len(raw) == len(rolled)
    for r, g in zip(raw, rolled, strict=True):
        assert r[0].replace(tzinfo=None) == g[0].replace(tzinfo=None)
        assert (r[1], r[3], r[4], r[5]) == (g[1], g[3], g[4], g[5])
        assert r[2] == pytest.approx(g[2])
    exact, sketched = store.query(
        "SELECT quantileExact(0.9)(value), "
        "(SELECT quantileDDMerge(0.01, 0.9)(quantiles) FROM readings_1d) FROM readings"
    )[0]
    assert sketched == pytest.approx(exact, rel=0.02)


def test_retention_comes_from_the_sensor(store: Store) -> None:
    old = now_ms() - 40 * DAY_MS
    store.insert_readings(batch_of([("35238:gw0:1", [old], [1.0])], retention=30).to_arrow())
    store.insert_readings(batch_of([("35238:gw0:2", [old], [2.0])], retention=730).to_arrow())
    store.command(f"OPTIMIZE TABLE {store.table('readings')} FINAL")
    assert store.query("SELECT value FROM readings") == [(2.0,)]
    assert store.scalar("SELECT sum(count) FROM readings_1d") == 2  # aggregates are kept


def test_unreachable_server_is_a_clear_error() -> None:
    settings = StoreSettings(dsn=f"http://127.0.0.1:{free_port()}", connect_timeout_s=2)
    with pytest.raises(UnreachableError, match=r"cannot reach ClickHouse at http://127\.0\.0\.1"):
        Store.connect(settings)


def test_password_is_not_shown(store_dsn: str) -> None:
    settings = StoreSettings(
        dsn=f"http://bocage:s3cret@127.0.0.1:{free_port()}", connect_timeout_s=2
    )
    with pytest.raises(UnreachableError) as info:
        Store.connect(settings)
    assert "s3cret" not in str(info.value)


def test_a_second_chdb_path_is_refused(chdb_path: Path, tmp_path: Path) -> None:
    # the engine stays on chdb_path while one client is open
    opened = Store.connect(StoreSettings(dsn=f"chdb://{chdb_path}", migrate_on_connect=False))
    with opened, pytest.raises(ConfigError, match="one per process"):
        Store.connect(StoreSettings(dsn=f"chdb://{tmp_path / 'other'}"))


def test_bad_dsn_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"store\.dsn"):
        Store.connect(StoreSettings(dsn="postgres://nope"))
