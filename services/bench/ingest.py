"""Ingest benchmark: frames already in JetStream -> rows queryable in ClickHouse (chDB).

    uv run python services/bench/ingest.py [--readings 10000000] [--gateways 100] [--json]

A burst of ``--readings`` readings from ``--gateways`` gateways is published into a real
JetStream (embedded nats-server) *before* ingest starts, as after a storm when every gateway
drains its backlog at once. Then ``bocage serve ingest`` runs as its own process on an
embedded chDB store, and the clock runs until the durable consumer is drained (ingest
acknowledges a frame only after its rows are inserted, so drained = every row queryable).
Reported: end-to-end readings/s, the lag (time to absorb the burst), insert batch size,
peak RSS of the ingest process. Baseline measured in the same run: the same readings inserted
row by row (clickhouse-connect ``insert`` of Python tuples, the way a naive consumer does it)
on a sample, and the peers' published figures (FROST ~2,000 obs/s, ThingsBoard SQL 5-10k/s).
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import nats
import numpy as np
import psutil

import bocage_native
from bocage.core import subjects
from bocage.core.natsserver import EmbeddedNats
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.core.settings import dumps
from bocage.core.streams import ensure_streams
from bocage.ingest import IngestSettings
from bocage.store import ReadingsBatch, Store, StoreSettings

TARGET = 500_000
FROST = 2_000


def build_register(gateways: int, sensors: int) -> Register:
    territories = []
    for t in range(max(1, gateways // 10)):  # ten gateways per commune
        code = f"35{t:03d}"
        gws = tuple(
            Gateway(
                id=f"gw{g}",
                territory=code,
                sensors=tuple(
                    Sensor(id=f"gw{g}-s{s}", kind="building_meter") for s in range(sensors)
                ),
            )
            for g in range(t * 10, min(gateways, (t + 1) * 10))
        )
        territories.append(Territory(code=code, name=f"Commune {t}", gateways=gws))
    return Register(territories=tuple(territories))


def build_frames(
    register: Register, readings: int, per_frame: int, sensors: int
) -> list[tuple[str, bytes]]:
    """Frames of ``per_frame`` readings (2 metrics x ``sensors`` sensors), 10 s apart."""
    rng = np.random.default_rng(1)
    gateways = [(t.code, g.id) for t in register.territories for g in t.gateways]
    per_series = max(1, per_frame // (2 * sensors))
    frames_needed = readings // (per_series * 2 * sensors)
    now = int(time.time() * 1000)
    start = now - (frames_needed // len(gateways) + 1) * per_series * 10_000 - 60_000
    out = []
    for i in range(frames_needed):
        code, gw = gateways[i % len(gateways)]
        seq = i // len(gateways) + 1
        t0 = start + (seq - 1) * per_series * 10_000
        ts = t0 + np.arange(per_series, dtype=np.int64) * 10_000
        series = []
        for s in range(sensors):
            power = np.round(rng.normal(2_000, 300, per_series), 1)
            energy = np.cumsum(np.round(power / 360, 2)) + 1_000_000.0
            series.append((f"{gw}-s{s}", "power", ts, power, None))
            series.append((f"{gw}-s{s}", "energy", ts, energy, None))
        data = bocage_native.encode_frame(code, gw, seq, now, series)
        out.append((subjects.subject(code, gw, "frames"), data))
    return out


async def publish(url: str, frames: list[tuple[str, bytes]]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    window = 256  # publish acks in flight
    pending: list[asyncio.Future[object]] = []
    for subject, data in frames:
        header = bocage_native.peek_header(data)
        pending.append(
            asyncio.ensure_future(
                js.publish(subject, data, headers={subjects.MSG_ID_HEADER: header.frame_id})
            )
        )
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await nc.close()


async def consumer_state(url: str, durable: str) -> tuple[int, int]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(subjects.STREAM, durable)
        return info.num_pending, info.num_ack_pending
    except Exception:
        return -1, -1
    finally:
        await nc.close()


def row_by_row_baseline(path: Path, sample: int) -> float:
    """Readings/s of a naive consumer: one Python tuple per reading, row-oriented insert."""
    store = Store.connect(StoreSettings(dsn=f"chdb://{path}", database="baseline"))
    try:
        now = int(time.time() * 1000)
        rows = [
            (
                "35000",
                "gw0",
                "gw0-s0",
                "power",
                dt.datetime.fromtimestamp((now - i * 1000) / 1000, dt.UTC),
                float(i),
                0,
                "35000:gw0:1",
            )
            for i in range(sample)
        ]
        started = time.perf_counter()
        for i in range(0, sample, 1_000):  # a consumer inserting each message's readings
            store.insert_rows(
                "readings",
                rows[i : i + 1_000],
                ("territory", "gateway", "sensor", "metric", "ts", "value", "quality", "frame_id"),
            )
        return sample / (time.perf_counter() - started)
    finally:
        store.close()


def columnar_in_process(path: Path, frames: list[tuple[str, bytes]]) -> float:
    """Readings/s of decode + Arrow build + insert alone (no NATS), the ceiling of the pipeline."""
    store = Store.connect(StoreSettings(dsn=f"chdb://{path}", database="columnar"))
    try:
        total = 0
        started = time.perf_counter()
        batch = ReadingsBatch()
        for _, data in frames:
            frame = bocage_native.decode_frame(data)
            cols = frame.columns()
            series = frame.series
            batch.add_frame(
                territory=frame.territory,
                gateway=frame.gateway,
                frame_id=frame.frame_id,
                sensors=[s.sensor for s in series],
                metrics=[s.metric for s in series],
                retention_days=[730] * len(series),
                series_index=cols["series_index"],
                timestamps=cols["timestamps"],
                values=cols["values"],
                quality=cols["quality"],
            )
            if batch.rows >= 500_000:
                total += store.insert_readings(batch.to_arrow(), dedup_token=str(total))
                batch = ReadingsBatch()
        total += store.insert_readings(batch.to_arrow(), dedup_token=str(total))
        return total / (time.perf_counter() - started)
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--gateways", type=int, default=100)
    parser.add_argument(
        "--sensors", type=int, default=10, help="sensors per gateway (2 metrics each)"
    )
    parser.add_argument("--frame-readings", type=int, default=2_000)
    parser.add_argument("--batch-readings", type=int, default=IngestSettings().batch_readings)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bocage-bench-"))
    register = build_register(args.gateways, args.sensors)
    t = time.perf_counter()
    frames = build_frames(register, args.readings, args.frame_readings, args.sensors)
    readings = sum(bocage_native.peek_header(d).reading_count for _, d in frames)
    result_encode_s = round(time.perf_counter() - t, 2)
    frame_bytes = sum(len(d) for _, d in frames)

    result: dict[str, object] = {
        "readings": readings,
        "frames": len(frames),
        "gateways": args.gateways,
        "readings_per_frame": readings // len(frames),
        "frame_bytes_total": frame_bytes,
        "bits_per_reading_on_wire": round(8 * frame_bytes / readings, 2),
        "batch_readings": args.batch_readings,
        "cpus": os.cpu_count(),
        "encode_s": result_encode_s,
    }
    with EmbeddedNats(work / "nats") as server:
        t = time.perf_counter()
        asyncio.run(publish(server.url, frames))
        result["publish_s"] = round(time.perf_counter() - t, 2)
        sample = frames[: max(1, len(frames) // 10)]  # for the in-process ceiling
        total_frames = len(frames)
        del frames

        settings = work / "ingest.toml"
        config = {
            "nats": {"url": server.url},
            "store": {"dsn": f"chdb://{work / 'store'}", "database": "bocage"},
            "ingest": msgspec.structs.asdict(IngestSettings(batch_readings=args.batch_readings)),
            "register": msgspec.to_builtins(register),
        }
        settings.write_text(dumps(config))
        env = dict(os.environ)
        started = time.perf_counter()
        process = subprocess.Popen(
            [
                sys.executable, "-m", "bocage.cli", "--log-level", "warning",
                "serve", "ingest", "--config", str(settings),
            ],
            env=env,
            stderr=(work / "ingest.log").open("wb"),
        )
        ps = psutil.Process(process.pid)
        peak_rss = 0
        first_ack = None
        while True:
            if process.poll() is not None:
                print((work / "ingest.log").read_text()[-3000:], file=sys.stderr)
                return 1
            peak_rss = max(peak_rss, ps.memory_info().rss)
            pending, ack_pending = asyncio.run(consumer_state(server.url, "bocage-ingest"))
            if pending >= 0 and first_ack is None and pending + ack_pending < total_frames:
                first_ack = time.perf_counter()
            if pending == 0 and ack_pending == 0:
                break
            time.sleep(0.25)
        done = time.perf_counter()
        process.terminate()
        process.wait(60)
    startup = (first_ack or started) - started
    lag = done - started
    result.update(
        {
            "lag_s": round(lag, 2),
            "startup_s": round(startup, 2),
            "readings_per_s": round(readings / lag),
            "readings_per_s_after_startup": round(
                readings / max(1e-9, done - (first_ack or started))
            ),
            "peak_rss_mb": round(peak_rss / 2**20, 1),
        }
    )
    # baselines, measured after ingest stopped (no CPU contention), in this process's own chDB
    result["columnar_insert_only_readings_per_s"] = round(
        columnar_in_process(work / "side", sample)
    )
    result["row_by_row_baseline_readings_per_s"] = round(
        row_by_row_baseline(work / "side", 100_000)
    )
    result["target_readings_per_s"] = TARGET
    result["target_met"] = result["readings_per_s"] >= TARGET  # type: ignore[operator]
    result["x_frost"] = round(result["readings_per_s"] / FROST)  # type: ignore[operator]
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>40}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
