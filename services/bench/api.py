"""API latency under an open-loop load: p50/p95/p99 at a fixed request rate.

    uv run python services/bench/api.py [--rate 500] [--seconds 20] [--communes 20]

A server process stores a week of simulated readings (the edge simulator) for ``--communes``
communes in a fresh chDB store, then serves the API twice with uvicorn: once as deployed
(indicator results cached ``cache_seconds`` = 10 s) and once with the cache disabled (every
indicator request computed in ClickHouse). This process sends requests at a constant rate
(open loop: the latency of a request counts from the moment it was due, so queueing in the
client or server is included, not hidden) over keep-alive HTTP/1.1 connections, with a mix
a dashboard and re-users produce. Everything is on loopback, bounded in time.

Baseline: the peer figure QuantumLeap (FIWARE) publishes, p95 514 ms at ~100 req/s; it cannot
run here (no network), so it is quoted, not measured. The uncached run is the in-run baseline
of our own design choice (compute on query + short cache).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import uvicorn

from bocage.api import ApiSettings, create_app
from bocage.core.register import Gateway, Register, Sensor, Territory
from bocage.edge.simulator import simulate
from bocage.indicators import CATALOG, IndicatorsSettings
from bocage.store import ReadingsBatch, Store, StoreSettings

DAYS = 7
STEP_MS = 600_000  # one sample every 10 min
KINDS = (("lighting_cabinet", 3), ("building_meter", 1), ("water_meter", 1), ("air_quality", 1))


def _register(communes: int) -> Register:
    epci = Territory(code="200000001", name="CC bench", kind="epci")
    territories = [epci]
    for c in range(communes):
        code = f"35{c:03d}"
        sensors = tuple(
            Sensor(id=f"{kind[:2]}-{code}-{i}", kind=kind, name=f"{kind} {i}")
            for kind, n in KINDS
            for i in range(n)
        )
        territories.append(
            Territory(
                code=code,
                name=f"Commune {c}",
                parent=epci.code,
                gateways=(Gateway(id=f"gw-{code}", territory=code, sensors=sensors),),
            )
        )
    return Register(territories=tuple(territories))


def _load(store: Store, register: Register) -> int:
    end = int(datetime.now(UTC).timestamp() * 1000) // STEP_MS * STEP_MS
    start = end - DAYS * 86_400_000
    count = (end - start) // STEP_MS
    total = 0
    for territory in register.territories:
        for gateway in territory.gateways:
            batch = ReadingsBatch()
            for sensor in gateway.sensors:
                readings = simulate(sensor.id, sensor.kind, start, STEP_MS, count, seed=1)
                metrics = sorted({r.metric for r in readings})
                index = {m: i for i, m in enumerate(metrics)}
                batch.add_frame(
                    territory=territory.code,
                    gateway=gateway.id,
                    frame_id=f"{territory.code}:{gateway.id}:{sensor.id}",
                    sensors=[sensor.id] * len(metrics),
                    metrics=metrics,
                    retention_days=[730] * len(metrics),
                    series_index=np.array([index[r.metric] for r in readings], np.int32),
                    timestamps=np.array([r.time_ms for r in readings], np.int64),
                    values=np.array([float(r.value) for r in readings], np.float64),
                )
            total += store.insert_readings(batch.to_arrow())
    return total


def serve(data: Path, port: int, communes: int) -> None:
    """Server process: load the readings, serve cached on ``port``, uncached on ``port + 1``."""
    register = _register(communes)
    store = Store.connect(StoreSettings(dsn=f"chdb://{data}", database="bench"))
    store.sync_register(register)
    started = time.perf_counter()
    rows = _load(store, register)
    print(f"LOADED {rows} {time.perf_counter() - started:.1f}", flush=True)

    async def main() -> None:
        servers = [
            uvicorn.Server(
                uvicorn.Config(
                    create_app(
                        ApiSettings(),
                        store=store,
                        register=register,
                        indicators=IndicatorsSettings(cache_seconds=cache),
                    ),
                    host="127.0.0.1",
                    port=p,
                    log_level="warning",
                    access_log=False,
                )
            )
            for p, cache in ((port, 10.0), (port + 1, 0.0))
        ]
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        while not all(s.started for s in servers):  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        await asyncio.gather(*tasks)

    asyncio.run(main())


# -- client -----------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; a deliberately tiny client so the load generator
    costs little CPU next to the server on a 2-core machine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        await self.reader.readexactly(length)
        return status


def _paths(
    communes: int, indicators: list[str], today: str, week_ago: str, rng: random.Random
) -> list[str]:
    """A request mix: 70 % indicator values, the rest catalog, register and health."""
    out = []
    for _ in range(4000):
        x = rng.random()
        if x < 0.7:
            territory = rng.choice([f"35{rng.randrange(communes):03d}", "200000001"])
            out.append(
                f"/api/v1/indicators/{rng.choice(indicators)}?territory={territory}"
                f"&from={week_ago}&to={today}"
            )
        elif x < 0.8:
            out.append("/api/v1/indicators")
        elif x < 0.9:
            out.append(f"/api/v1/sensors?territory=35{rng.randrange(communes):03d}")
        elif x < 0.95:
            out.append("/api/v1/territories")
        else:
            out.append("/health")
    return out


async def run_load(
    port: int, paths: list[str], rate: float, seconds: float, connections: int = 64
) -> dict[str, float]:
    """Open-loop load at ``rate`` req/s for ``seconds``; latencies count from the due time."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pool.put_nowait(Connection(reader, writer))
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.1

    async def one(i: int) -> None:
        nonlocal errors
        due = t0 + i / rate
        conn = await pool.get()
        try:
            status = await conn.get(paths[i % len(paths)])
            if status != 200:
                errors += 1
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - due)

    tasks = []
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        pool.get_nowait().writer.close()
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": total,
        "achieved": total / elapsed,
        "errors": errors,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
        "max": max(latencies) * 1000,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    # the next port (uncached app) must be free too
    with socket.socket() as s2:
        try:
            s2.bind(("127.0.0.1", port + 1))
        except OSError:
            return _free_port()
    return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each run")
    parser.add_argument(
        "--uncached-rate",
        type=float,
        default=25.0,
        help="rate of the run with the indicator cache disabled",
    )
    parser.add_argument("--communes", type=int, default=20)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.communes)
        return 0

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bocage-bench-") as tmp:
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(Path(tmp) / "chdb"),
                "--port",
                str(port),
                "--communes",
                str(args.communes),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert server.stdout is not None
            loaded = ""
            deadline = time.monotonic() + 600
            for line in server.stdout:
                if line.startswith("LOADED"):
                    loaded = line.split()[1]
                    print(
                        f"stored {loaded} readings ({args.communes} communes, {DAYS} days)",
                        flush=True,
                    )
                if line.startswith("READY") or time.monotonic() > deadline:
                    break
            if server.poll() is not None:
                print("the server process failed", file=sys.stderr)
                return 1
            today = datetime.now(UTC).date()
            rng = random.Random(7)
            paths = _paths(
                args.communes,
                [i.id for i in CATALOG],
                today.isoformat(),
                (today - timedelta(days=6)).isoformat(),
                rng,
            )
            asyncio.run(run_load(port, paths, 100, 3))  # warm-up: connections, first queries
            runs = [
                (f"mixed, as deployed (cache 10 s), {args.rate:.0f} req/s", port, args.rate),
                (
                    f"mixed, indicator cache off, {args.uncached_rate:.0f} req/s",
                    port + 1,
                    args.uncached_rate,
                ),
            ]
            print(
                "\n| run | requests | achieved req/s | errors | p50 ms | p95 ms | p99 ms "
                "| max ms |\n|---|---|---|---|---|---|---|---|"
            )
            for name, p, rate in runs:
                r = asyncio.run(run_load(p, paths, rate, args.seconds))
                print(
                    f"| {name} | {r['requests']:.0f} | {r['achieved']:.0f} | {r['errors']:.0f}"
                    f" | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['max']:.1f} |",
                    flush=True,
                )
            print("| QuantumLeap (FIWARE), published, ~100 req/s | | | | | 514 | | |")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
