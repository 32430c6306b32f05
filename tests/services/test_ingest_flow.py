"""Ingest in-process: real nats-server, real chDB, real frames from the native codec."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import msgspec
import numpy as np
from ingest_helpers import (
    OTHER_TERRITORY,
    TERRITORY,
    eventually,
    make_frame,
    now_ms,
    publish_frame,
    readings_batch,
)
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY

import bocage_native
from bocage.core import events, subjects
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.ingest import Ingestor, IngestSettings, quarantine
from bocage.store import Store

FAST = IngestSettings(
    batch_age_s=0.1, fetch_timeout_s=0.2, retry_initial_s=0.05, retry_max_s=0.5, ack_wait_s=5
)


@contextlib.asynccontextmanager
async def running(ingestor: Ingestor) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def rows(store: Store) -> int:
    return int(store.scalar("SELECT count() FROM readings"))


def distinct_rows(store: Store) -> int:
    return int(
        store.scalar(
            "SELECT count() FROM (SELECT DISTINCT frame_id, sensor, metric, ts FROM readings)"
        )
    )


async def drained(nc: NatsClient, durable: str = "bocage-ingest") -> bool:
    try:
        info = await nc.jetstream().consumer_info(subjects.STREAM, durable)
    except NotFoundError:  # ingest has not created it yet
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_frames_are_stored_with_their_rollups(store: Store, register: Register, nc) -> None:
    js = nc.jetstream()
    for seq in range(1, 6):
        await publish_frame(js, make_frame("gw0", seq))
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="consumer drained")
    assert rows(store) == distinct_rows(store) == 5 * 4 * 10
    assert store.scalar("SELECT sum(count) FROM readings_1h") == 200
    assert store.scalar("SELECT sum(readings) FROM frames") == 200
    s0 = store.query("SELECT DISTINCT gateway, quality FROM readings WHERE sensor = 'gw0-s0'")
    assert s0 == [("gw0", 0)]


async def test_poisoned_frames_are_quarantined_and_never_block(
    store: Store, register: Register, nc
) -> None:
    js = nc.jetstream()
    good = [make_frame(f"gw{g}", seq) for g in range(3) for seq in range(1, 4)]
    healthy = make_frame("gw1", 9)
    corrupt = bytearray(healthy)
    corrupt[len(corrupt) // 2] ^= 0xFF
    future = make_frame("gw0", 50, start_ms=4_070_908_800_000)  # 2099
    poisoned = {
        "decode": [healthy[: len(healthy) // 2], bytes(corrupt), b"not a frame"],
        "territory_mismatch": [make_frame("gw0", 60, territory=OTHER_TERRITORY)],
        "unknown_gateway": [make_frame("gw7", 1)],
        "unknown_sensor": [make_frame("gw0", 70, sensors=6)],
        "timestamp_future": [future],
        "timestamp_absurd": [make_frame("gw0", 80, start_ms=1_000)],
    }
    for i, data in enumerate(good):
        await publish_frame(js, data)
        for reason, bad in poisoned.items():
            if i < len(bad):
                # published on gw0's subject of the commune, whatever the frame says
                subject = subjects.subject(
                    TERRITORY, "gw0" if reason != "unknown_gateway" else "gw7", "frames"
                )
                await js.publish(
                    subject, bad[i], headers={subjects.MSG_ID_HEADER: f"bad-{reason}-{i}"}
                )
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="consumer drained")
    assert rows(store) == distinct_rows(store) == len(good) * 40
    by_reason = dict(store.query("SELECT reason, count() FROM quarantine GROUP BY reason"))
    assert by_reason == {reason: len(bad) for reason, bad in poisoned.items()}
    info = await js.stream_info(subjects.QUARANTINE_STREAM)
    assert info.state.messages == sum(len(b) for b in poisoned.values())
    entries = quarantine.list_entries(store, reason="timestamp_future")
    assert [e.frame_id for e in entries] == [f"{TERRITORY}:gw0:50"]
    assert "in the future" in entries[0].detail
    payload = store.scalar("SELECT payload FROM quarantine WHERE reason = 'timestamp_future'")
    assert payload.encode("latin-1") if isinstance(payload, str) else payload


async def test_same_frame_through_different_paths_is_stored_once(
    store: Store, register: Register, nc
) -> None:
    js = nc.jetstream()
    data = make_frame("gw0", 1)
    await publish_frame(js, data)  # the gateway
    await publish_frame(js, data)  # its retry: dropped by JetStream's duplicate window
    await publish_frame(js, data, msg_id="resent-by-an-operator")  # another path, same batch
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="first drain")
        # after it was stored: a late retry beyond the duplicate window (another message id)
        await publish_frame(js, data, msg_id="after-the-window")
        await eventually(lambda: drained(nc), what="second drain")
    assert rows(store) == 40
    assert store.scalar("SELECT sum(readings) FROM frames") == 40


async def test_crash_between_insert_and_ack_does_not_duplicate(
    store: Store, register: Register, nc
) -> None:
    """A previous ingest stored frames and died before acknowledging them."""
    js = nc.jetstream()
    frames = [make_frame("gw0", seq) for seq in range(1, 7)]
    for data in frames:
        await publish_frame(js, data)
    # What the crashed process wrote: the readings (and, same INSERT, the ledger) of frames 1-4
    batch = readings_batch(bocage_native.decode_frame(data) for data in frames[:4])
    store.insert_readings(batch.to_arrow(), dedup_token="crashed-batch")
    # ...and the worst case: it died after the readings part, before the parts the views
    # derive from it (here: the hourly rollup and the ledger of every frame)
    for table in ("frames", "readings_1h"):
        store.command(
            f"ALTER TABLE {store.table(table)} DELETE WHERE 1 SETTINGS mutations_sync = 1"
        )
    # the messages were delivered to it and never acknowledged: JetStream redelivers them
    durable = "bocage-ingest"
    ingestor = Ingestor(IngestSettings(**{**_fast(), "ack_wait_s": 1.0}), store, register, nc)
    await js.add_consumer(subjects.STREAM, config=ingestor.consumer_config())
    sub = await js.pull_subscribe_bind(durable=durable, stream=subjects.STREAM)
    delivered = await sub.fetch(6, timeout=5)
    assert len(delivered) == 6
    await sub.unsubscribe()
    async with running(ingestor):
        await eventually(lambda: drained(nc), what="redelivered frames handled")
    assert rows(store) == distinct_rows(store) == 6 * 40
    for table in ("readings_1m", "readings_1h", "readings_1d"):
        assert store.scalar(f"SELECT sum(count) FROM {table}") == 6 * 40, table
    assert store.scalar("SELECT sum(readings) FROM frames") == 6 * 40
    raw = store.query("SELECT sensor, max(value) FROM readings GROUP BY sensor ORDER BY sensor")
    rolled = store.query("SELECT sensor, max(max) FROM readings_1h GROUP BY sensor ORDER BY sensor")
    assert raw == rolled


def _fast() -> dict[str, object]:
    return msgspec.structs.asdict(FAST)


async def test_store_outage_is_retried_and_nothing_is_lost(
    store: Store, register: Register, nc
) -> None:
    js = nc.jetstream()
    ingestor = Ingestor(FAST, store, register, nc)
    async with running(ingestor):
        await publish_frame(js, make_frame("gw0", 1))
        await eventually(lambda: rows(store) == 40, what="first frame")
        # the readings table disappears: every insert fails until it is back
        store.command(f"DETACH TABLE {store.table('readings')}")
        errors_before = _errors()
        for seq in range(2, 12):
            await publish_frame(js, make_frame("gw1", seq))
        await eventually(lambda: _errors() >= errors_before + 3, what="retries")
        info = await js.consumer_info(subjects.STREAM, "bocage-ingest")
        assert info.num_ack_pending + info.num_pending == 10  # JetStream holds the backlog
        store.command(f"ATTACH TABLE {store.table('readings')}")
        await eventually(lambda: drained(nc), what="caught up")
    assert rows(store) == distinct_rows(store) == 11 * 40


def _errors() -> float:
    return float(REGISTRY.get_sample_value("bocage_ingest_errors_total", {"stage": "commit"}) or 0)


async def test_graceful_stop_then_restart_stores_everything_once(
    store: Store, register: Register, nc
) -> None:
    js = nc.jetstream()
    for seq in range(1, 201):
        await publish_frame(js, make_frame(f"gw{seq % 3}", seq, readings=50))
    settings = IngestSettings(**{**_fast(), "batch_frames": 16, "fetch_frames": 8})
    async with running(Ingestor(settings, store, register, nc)):
        await eventually(lambda: rows(store) > 0, what="some frames stored")

    # stopped mid-flow: whatever was fetched is stored and acknowledged, or released
    async def nothing_held() -> bool:
        return (await js.consumer_info(subjects.STREAM, "bocage-ingest")).num_ack_pending == 0

    await eventually(nothing_held, timeout=10, what="no message held after stop")
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="rest stored")
    assert rows(store) == distinct_rows(store) == 200 * 4 * 50


async def test_two_ingestors_share_the_durable_consumer(
    store: Store, register: Register, nc
) -> None:
    js = nc.jetstream()
    for seq in range(1, 301):
        await publish_frame(js, make_frame(f"gw{seq % 3}", seq))
    settings = IngestSettings(**{**_fast(), "batch_frames": 20, "fetch_frames": 10})
    first, second = Ingestor(settings, store, register, nc), Ingestor(settings, store, register, nc)
    async with running(first), running(second):
        await eventually(lambda: drained(nc), what="drained by two consumers")
    assert rows(store) == distinct_rows(store) == 300 * 40
    assert first.committed_batches + second.committed_batches >= 300 // 20


async def test_alarms_and_status_are_stored(store: Store, register: Register, nc) -> None:
    js = nc.jetstream()
    alarm = events.Alarm(
        territory=TERRITORY,
        gateway="gw0",
        sensor="gw0-s0",
        kind="tamper",
        time_ms=now_ms(),
        message="door open",
    )
    status = events.GatewayStatus(
        territory=TERRITORY, gateway="gw0", time_ms=now_ms(), frames_sent=3, battery_pct=80.0
    )
    await js.publish(subjects.subject(TERRITORY, "gw0", "alarms"), events.encode(alarm))
    await js.publish(subjects.subject(TERRITORY, "gw0", "status"), events.encode(status))
    await js.publish(subjects.subject(TERRITORY, "gw0", "status"), b"\x00garbage")
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="events handled")
    assert store.query("SELECT sensor, kind, message FROM alarms") == [
        ("gw0-s0", "tamper", "door open")
    ]
    assert store.query("SELECT frames_sent, battery_pct FROM gateway_status") == [(3, 80.0)]
    assert store.query("SELECT reason, kind FROM quarantine") == [("event", "status")]


async def test_replay_after_the_gateway_is_registered(store: Store, register: Register, nc) -> None:
    js = nc.jetstream()
    await publish_frame(js, make_frame("gw9", 1))
    ingestor = Ingestor(FAST, store, register, nc)
    async with running(ingestor):
        await eventually(
            lambda: store.scalar("SELECT count() FROM quarantine") == 1, what="quarantined"
        )
        new_gateway = Gateway(
            id="gw9",
            territory=TERRITORY,
            sensors=tuple(Sensor(id=f"gw9-s{s}", kind="lighting_cabinet") for s in range(4)),
        )
        commune = register.territories[0]
        ingestor.update_register(
            Register(
                territories=(
                    Territory(
                        code=commune.code,
                        name=commune.name,
                        gateways=(*commune.gateways, new_gateway),
                    ),
                    *register.territories[1:],
                )
            )
        )
        seqs = quarantine.select_sequences(store, reason="unknown_gateway")
        report = await quarantine.replay(js, seqs)
        assert report.replayed == seqs
        await quarantine.replay(js, seqs)  # twice: deduplicated
        await eventually(lambda: rows(store) == 40, what="replayed frame stored")
        await eventually(lambda: drained(nc), what="drained")
    assert rows(store) == 40
    values = np.array([r[0] for r in store.query("SELECT value FROM readings ORDER BY value")])
    assert values.min() >= 1_000_000


async def test_backlog_of_three_days_lands_in_place(store: Store, register: Register, nc) -> None:
    """A gateway drains three days (and an older month) of backlog after recent data."""
    js = nc.jetstream()
    day = 86_400_000
    now = now_ms()
    hours_6 = 360 * 60_000
    starts = [now - hours_6 - 60_000, now - 3 * day, now - 2 * day, now - 45 * day, now - day]
    for seq, start in enumerate(starts, 1):  # out of order on purpose
        await publish_frame(
            js, make_frame("gw2", seq, start_ms=start, readings=360, step_ms=60_000)
        )
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="backlog stored")
    # gw2-s0 declares a 30-day retention: its readings of 45 days ago are not kept
    assert rows(store) == distinct_rows(store) == 5 * 4 * 360 - 360
    assert store.scalar("SELECT sum(count) FROM readings_1d WHERE sensor = 'gw2-s0'") == 5 * 360
    months = {r[0] for r in store.query("SELECT DISTINCT toYYYYMM(ts) FROM readings")}
    parts = {
        int(p[0])
        for p in store.query(
            "SELECT DISTINCT partition FROM system.parts WHERE database = {d:String} "
            "AND table = 'readings' AND active",
            {"d": store.database},
        )
    }
    assert months == parts
    for table, bucket in (
        ("readings_1m", "toStartOfMinute"),
        ("readings_1h", "toStartOfHour"),
        ("readings_1d", "toStartOfDay"),
    ):
        raw = store.query(
            f"SELECT sensor, {bucket}(ts) AS b, count(), min(value), max(value), "
            "argMin(value, ts), argMax(value, ts) FROM readings WHERE sensor != 'gw2-s0' "
            "GROUP BY sensor, b ORDER BY sensor, b"
        )
        rolled = store.query(
            f"SELECT sensor, bucket, sum(count), min(min), max(max), argMinMerge(first), "
            f"argMaxMerge(last) FROM {table} WHERE sensor != 'gw2-s0' "
            "GROUP BY sensor, bucket ORDER BY sensor, bucket"
        )
        assert [(r[0], r[1].replace(tzinfo=None), *r[2:]) for r in raw] == [
            (g[0], g[1].replace(tzinfo=None), *g[2:]) for g in rolled
        ], table


async def test_a_reused_sequence_is_quarantined_not_dropped(
    store: Store, register: Register, nc
) -> None:
    """A gateway whose spool was wiped starts its sequence again: same frame ids, new data."""
    js = nc.jetstream()
    await publish_frame(js, make_frame("gw0", 1, readings=10))
    async with running(Ingestor(FAST, store, register, nc)):
        await eventually(lambda: drained(nc), what="first life stored")
        later = now_ms() - 30_000
        await publish_frame(js, make_frame("gw0", 1, readings=3, start_ms=later), msg_id="reset")
        await eventually(lambda: drained(nc), what="second life handled")
    assert rows(store) == 40
    assert store.query("SELECT reason, frame_id FROM quarantine") == [
        ("sequence_reused", f"{TERRITORY}:gw0:1")
    ]
