"""Quantile sketches at ingest: real nats-server, real chDB, frames from the native codec.

Ingest keeps one native DDSketch (with the native window statistics) per frame, series and
hour in ``sketches_1h``; merged across frames and hours they give every quantile within 1 %
relative error of the exact quantile of the same readings, however often a frame arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
from ingest_helpers import TERRITORY, eventually, now_ms, publish_frame, readings_batch
from litestar.testing import AsyncTestClient
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

import bocage_native
from bocage.api import ApiSettings, create_app
from bocage.core import subjects
from bocage.core.register import Register
from bocage.ingest import Ingestor, IngestSettings
from bocage.store import FrameReadings, Store, merged_sketch, sketch_table

FAST = IngestSettings(
    batch_age_s=0.1, fetch_timeout_s=0.2, retry_initial_s=0.05, retry_max_s=0.5, ack_wait_s=5
)
HOUR = 3_600_000
LEVELS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


@contextlib.asynccontextmanager
async def running(ingestor: Ingestor) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def drained(nc: NatsClient) -> bool:
    try:
        info = await nc.jetstream().consumer_info(subjects.STREAM, "bocage-ingest")
    except NotFoundError:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


def random_frames(
    gateway: str, count: int, start_ms: int, *, seed: int = 1
) -> tuple[list[bytes], dict[str, list[np.ndarray]]]:
    """``count`` frames of 4 sensors x 150 readings 20 s apart (50 min each, so each frame
    spans two hours), values of different shapes: skewed, signed, constant, with NaN."""
    rng = np.random.default_rng(seed)
    frames, values = [], {}
    for i in range(count):
        ts = start_ms + i * 3_000_000 + np.arange(150, dtype=np.int64) * 20_000
        shapes = {
            f"{gateway}-s0": rng.lognormal(5, 1.5, 150),  # skewed, positive
            f"{gateway}-s1": rng.normal(0, 50, 150),  # both signs and near zero
            f"{gateway}-s2": np.full(150, 230.0),  # constant
            f"{gateway}-s3": np.where(rng.random(150) < 0.1, np.nan, rng.normal(2_000, 300, 150)),
        }
        series = []
        for sensor, v in shapes.items():
            series.append((sensor, "power", ts, v, None))
            values.setdefault(sensor, []).append(v)
        frames.append(bocage_native.encode_frame(TERRITORY, gateway, i + 1, now_ms(), series))
    return frames, values


def exact(values: list[np.ndarray]) -> np.ndarray:
    v = np.concatenate(values)
    return v[np.isfinite(v)]


def unique_count(store: Store) -> int:
    """Readings behind the sketch rows, one row per (series, hour, frame)."""
    return int(
        store.scalar(
            "SELECT sum(c) FROM (SELECT any(count) AS c FROM sketches_1h "
            "GROUP BY territory, sensor, metric, bucket, frame_id)"
        )
        or 0
    )


def finite_readings(store: Store) -> int:
    return int(store.scalar("SELECT countIf(isFinite(value)) FROM readings"))


def assert_within_one_percent(
    store: Store, values: dict[str, list[np.ndarray]], start: int
) -> None:
    for sensor, parts in values.items():
        v = exact(parts)
        merged = merged_sketch(
            store, TERRITORY, sensor, "power", start_ms=start - HOUR, end_ms=now_ms() + HOUR
        )
        assert merged.count == len(v), sensor
        assert merged.min == v.min(), sensor
        assert merged.max == v.max(), sensor
        assert abs(merged.sum - v.sum()) <= 1e-9 * abs(v.sum()) + 1e-6
        assert merged.sketch.count == len(v)
        for q in LEVELS:
            truth = float(np.quantile(v, q, method="lower"))
            estimate = merged.sketch.quantile(q)
            assert abs(estimate - truth) <= 0.01 * abs(truth) + 1e-12, (sensor, q, estimate, truth)
        # 1 % relative accuracy holds for the merge of many frames and hours
        assert merged.sketches > 1
        assert merged.hours > 1


async def test_ingest_stores_mergeable_sketches_within_one_percent(
    store: Store, register: Register, nc: NatsClient
) -> None:
    js = nc.jetstream()
    start = now_ms() - 12 * HOUR
    frames, values = random_frames("gw0", 10, start)
    for data in frames:
        await publish_frame(js, data)
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="consumer drained")
    total = sum(len(exact(v)) for v in values.values())
    assert unique_count(store) == finite_readings(store) == total
    # one row per frame, series and hour it touches; small sketches
    per_frame = store.query(
        "SELECT frame_id, count() FROM sketches_1h GROUP BY frame_id ORDER BY frame_id"
    )
    assert len(per_frame) == 10
    # exactly one row per (series, hour) that holds a finite reading of the frame
    touched = store.query(
        "SELECT frame_id, uniqExact(sensor, metric, toStartOfHour(ts)) FROM readings"
        " WHERE isFinite(value) GROUP BY frame_id ORDER BY frame_id"
    )
    assert per_frame == touched
    assert all(4 <= n <= 8 for _fid, n in per_frame)  # 4 series x 1 or 2 hours
    assert int(store.scalar("SELECT max(length(sketch)) FROM sketches_1h")) <= 5 * 1024
    # the window statistics come from the native kernel and agree with the raw readings;
    # sketches hold finite readings only, so an hour whose readings are all NaN has none
    # (which hour that is depends on the clock: the frames start 12 hours before now)
    raw = store.query(
        "SELECT sensor, toStartOfHour(ts) AS b, count(), min(value), max(value) "
        "FROM readings WHERE isFinite(value) GROUP BY sensor, b ORDER BY sensor, b"
    )
    sketched = store.query(
        "SELECT sensor, bucket, sum(count), min(min), max(max) FROM sketches_1h "
        "GROUP BY sensor, bucket ORDER BY sensor, bucket"
    )
    assert raw == sketched
    assert_within_one_percent(store, values, start)

    # the API merges the same sketches
    app = create_app(ApiSettings(), store=store, register=register)
    async with AsyncTestClient(app=app) as client:
        v = exact(values["gw0-s0"])
        params = {
            "metric": "power",
            "from": _iso(start - HOUR),
            "to": _iso(now_ms()),
            "q": "0.5,0.9,0.99",
        }
        # the test register has a gw0-s0 in both communes: the territory must be named
        r = await client.get("/api/v1/sensors/gw0-s0/quantiles", params=params)
        assert r.status_code == 400
        assert r.json()["invalid_params"][0]["name"] == "territory"
        r = await client.get(
            "/api/v1/sensors/gw0-s0/quantiles", params={**params, "territory": TERRITORY}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(v)
        assert body["territory"] == TERRITORY
        assert body["relative_accuracy"] == 0.01
        assert body["min"] == v.min()
        assert body["max"] == v.max()
        for item in body["quantiles"]:
            truth = float(np.quantile(v, item["q"], method="lower"))
            assert abs(item["value"] - truth) <= 0.01 * abs(truth)
            assert item["lower"] <= truth <= item["upper"]


def _iso(ms: int) -> str:
    return np.datetime_as_string(np.datetime64(ms, "ms"), unit="s") + "Z"


async def test_a_frame_delivered_twice_counts_once(
    store: Store, register: Register, nc: NatsClient
) -> None:
    js = nc.jetstream()
    start = now_ms() - 8 * HOUR
    frames, values = random_frames("gw1", 6, start, seed=2)
    for data in frames:
        await publish_frame(js, data)
    # another path for two frames (another message id): the ledger makes them duplicates
    for data in frames[:2]:
        await publish_frame(js, data, msg_id=f"again-{bocage_native.peek_header(data).frame_id}")
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="first drain")
        before = unique_count(store)
        rows_before = int(store.scalar("SELECT count() FROM sketches_1h"))
        # a late retry of a stored frame, beyond the duplicate window
        await publish_frame(js, frames[3], msg_id="after-the-window")
        await eventually(lambda: drained(nc), what="second drain")
    assert unique_count(store) == before == finite_readings(store)
    assert int(store.scalar("SELECT count() FROM sketches_1h")) == rows_before
    assert_within_one_percent(store, values, start)


async def test_redelivery_after_a_crash_completes_sketches_without_doubling(
    store: Store, register: Register, nc: NatsClient
) -> None:
    """A previous ingest died after inserting: frames 1-2 with readings and sketches, frames
    3-4 with readings only (killed between the two inserts); nothing was acknowledged."""
    js = nc.jetstream()
    start = now_ms() - 8 * HOUR
    frames, values = random_frames("gw2", 6, start, seed=3)
    for data in frames:
        await publish_frame(js, data)
    decoded = [bocage_native.decode_frame(d) for d in frames]
    batch = readings_batch(decoded[:4])
    store.insert_readings(batch.to_arrow(), dedup_token="crashed-batch")
    store.insert_sketches(sketch_table([_readings(f) for f in decoded[:2]]))
    ingestor = Ingestor(
        IngestSettings(batch_age_s=0.1, fetch_timeout_s=0.2, ack_wait_s=1.0), store, register, nc
    )
    await js.add_consumer(subjects.STREAM, config=ingestor.consumer_config())
    sub = await js.pull_subscribe_bind(durable="bocage-ingest", stream=subjects.STREAM)
    assert len(await sub.fetch(6, timeout=5)) == 6
    await sub.unsubscribe()
    async with running(ingestor):
        await eventually(lambda: drained(nc), what="redelivered frames handled")
    total = sum(len(exact(v)) for v in values.values())
    assert int(store.scalar("SELECT count() FROM readings")) == 6 * 4 * 150
    assert unique_count(store) == finite_readings(store) == total
    assert_within_one_percent(store, values, start)


def _readings(frame: bocage_native.Frame) -> FrameReadings:
    cols = frame.columns()
    return FrameReadings(
        territory=frame.territory,
        frame_id=frame.frame_id,
        sensors=[s.sensor for s in frame.series],
        metrics=[s.metric for s in frame.series],
        series_index=cols["series_index"],  # type: ignore[arg-type]
        timestamps=cols["timestamps"],  # type: ignore[arg-type]
        values=cols["values"],  # type: ignore[arg-type]
    )


def test_writing_sketches_twice_never_counts_twice(store: Store) -> None:
    data, _ = random_frames("gw0", 2, now_ms() - 3 * HOUR)
    one, two = (_readings(bocage_native.decode_frame(d)) for d in data)
    first = sketch_table([one])
    both = sketch_table([one, two])
    store.insert_sketches(first)
    store.insert_sketches(first)  # the same block again: dropped by block deduplication
    store.insert_sketches(both, dedup_token="t")  # frame one again, within another block
    store.insert_sketches(both, dedup_token="t")  # a retried insert: a no-op
    assert int(store.scalar("SELECT count() FROM sketches_1h")) == first.num_rows + both.num_rows
    merged = merged_sketch(
        store, TERRITORY, "gw0-s0", "power", start_ms=now_ms() - 4 * HOUR, end_ms=now_ms()
    )
    assert merged.count == 2 * 150
    assert merged.sketch.count == 300
    assert merged.sketches >= 2
    store.command(f"OPTIMIZE TABLE {store.table('sketches_1h')} FINAL")
    assert int(store.scalar("SELECT count() FROM sketches_1h")) == both.num_rows
