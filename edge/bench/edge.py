"""Edge agent benchmarks (not timed tests): ``uv run python edge/bench/edge.py [--json]``.

Measures, with a real nats-server (JetStream, file store) on loopback:

1. throughput: readings/s through simulator → filters → batcher → native encode → spool →
   JetStream publish with acks, and readings per CPU-second of the agent's process (per core);
2. memory: peak RSS of an agent process holding 1,000,000 readings in its spool (NATS down),
   sampled as the backlog grows (target ≤ 64 MB and flat; Telegraf ~2.3 GB at 1M metrics);
3. drain: readings/s delivered from a 1,000,000-reading backlog once NATS is back, unbounded
   and with the rate limit configured (target ≥ 20,000 readings/s; ThingsBoard Edge ~50 msg/s);
4. wire: bytes per reading for a typical site (24 sensors, 1-minute samples, 15-minute
   batches) vs the same readings as one JSON message each, and as zstd'd JSON batches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import nats
import psutil
import zstandard

from bocage.core.natsserver import EmbeddedNats, free_port
from bocage.edge.agent import Agent
from bocage.edge.settings import EdgeSettings

KINDS = ("lighting_cabinet", "building_meter", "water_meter", "air_quality", "waste_bin", "counter")
METRICS = {"lighting_cabinet": 3, "building_meter": 2, "water_meter": 2, "air_quality": 5,
           "waste_bin": 2, "counter": 1}
START_MS = 1_718_928_000_000
DRAIN_FRAME = 250
NATS_OVERHEAD = 90  # protocol bytes per published message (HPUB line, Nats-Msg-Id, ack)


def settings(
    spool: Path, url: str, readings: int, *, per_kind: int = 1, step_ms: int = 10_000,
    **sections: Any,
) -> EdgeSettings:
    """A simulated gateway producing about ``readings`` readings as fast as possible."""
    per_sample = sum(METRICS.values()) * per_kind
    limit = max(1, readings // per_sample)
    data: dict[str, Any] = {
        "gateway": {"id": "bench", "territory": "29042"},
        "nats": {"url": url, "backoff_initial_s": 0.05, "backoff_max_s": 0.2},
        "spool": {"dir": str(spool), "fsync": "interval", "budget_bytes": 1 << 30},
        "batch": {"max_readings": 2000, "max_age_s": 1.0},
        "forward": {"drain_rate": 0, "max_inflight": 32, "reconnect_jitter_s": 0},
        "sensors": [
            {"id": f"{kind}-{i}", "kind": kind, "start_ms": START_MS, "step_ms": step_ms,
             "limit": limit, "realtime": False, "seed": i}
            for kind in KINDS for i in range(per_kind)
        ],
    }
    for name, value in sections.items():
        data[name] = {**data.get(name, {}), **value}
    return msgspec.convert(data, EdgeSettings)


async def _run_until(agent: Agent, condition: Any, limit_s: float = 600) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        async with asyncio.timeout(limit_s):
            while not condition():  # noqa: ASYNC110 - the benchmark samples progress
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task


async def bench_throughput(work: Path, readings: int) -> dict[str, Any]:
    """End-to-end rate with NATS up: produced, filtered, encoded, spooled, acknowledged."""
    with EmbeddedNats(work / "nats-t") as server:
        agent = Agent(settings(work / "spool-t", server.url, readings))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await _run_until(agent, lambda: agent.idle)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    n = agent.counters.delivered
    return {
        "readings": n,
        "seconds": round(wall, 2),
        "readings_per_s": round(n / wall),
        "readings_per_cpu_s": round(n / cpu),
        "frames": agent.counters.frames_delivered,
    }


def _rss_child(spool: str, readings: int) -> None:
    """Child process: spool ``readings`` with NATS down, print RSS as the backlog grows."""
    proc = psutil.Process()
    agent = Agent(settings(Path(spool), f"nats://127.0.0.1:{free_port()}", readings))
    marks = [readings * k // 10 for k in range(1, 11)]
    samples: list[dict[str, int]] = []

    def check() -> bool:
        while marks and agent.counters.accepted >= marks[0]:
            samples.append({"spooled": agent.counters.accepted,
                            "rss_bytes": proc.memory_info().rss})
            marks.pop(0)
        return agent.sources_done.is_set()

    baseline = proc.memory_info().rss
    asyncio.run(_run_until(agent, check))
    check()
    print(json.dumps({
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "samples": samples,
        "spooled": agent.counters.accepted,
        "spool_bytes": agent.counters.spool_bytes,
    }))


def bench_memory(work: Path, readings: int) -> dict[str, Any]:
    """Peak RSS of a separate agent process while 1M readings pile up in its spool."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(work / "spool-m"), str(readings)],
        capture_output=True, text=True, check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    rss = [s["rss_bytes"] for s in result["samples"]]
    result["growth_first_to_last_bytes"] = rss[-1] - rss[0] if rss else 0
    return result


async def _stream_messages(url: str) -> int:
    """Messages JetStream holds (checks that a drain really stored what it claims)."""
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info("BOCAGE")).state.messages)
    finally:
        await nc.close()


async def bench_drain(
    work: Path, readings: int, rate: float, per_frame: int = DRAIN_FRAME
) -> dict[str, Any]:
    """Fill a backlog with NATS down, then measure the drain once it is up.

    Frames hold ``per_frame`` readings (a live site's batch, not a replay's 2000), so the
    rate counts JetStream round trips, not just bytes. With a limit the rate is measured
    after the first quarter, past the token bucket's initial burst.
    """
    server = EmbeddedNats(work / f"nats-d{int(rate)}", port=free_port())
    s = settings(work / f"spool-d{int(rate)}", server.url, readings,
                 forward={"drain_rate": rate}, batch={"max_readings": per_frame})
    agent = Agent(s)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        while not (agent.sources_done.is_set() and agent.counters.buffered == 0):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        assert agent.spool is not None
        agent.spool.sync()
        backlog = agent.counters.accepted
        server.start()
        t0 = time.perf_counter()
        quarter: tuple[float, int] | None = None
        while not agent.idle:
            await asyncio.sleep(0.01)
            if quarter is None and agent.counters.delivered >= backlog // 4:
                quarter = (time.perf_counter(), agent.counters.delivered)
        end = time.perf_counter()
        seconds = end - t0
        stored = await _stream_messages(server.url)
    finally:
        stop.set()
        await task
        server.stop()
    steady = (backlog - quarter[1]) / (end - quarter[0]) if quarter and end > quarter[0] else 0
    return {
        "backlog_readings": backlog,
        "readings_per_frame": per_frame,
        "rate_limit": rate or "none",
        "seconds": round(seconds, 2),
        "readings_per_s": round(backlog / seconds),
        "steady_readings_per_s": round(steady),
        "frames_per_s": round(agent.counters.frames_delivered / seconds),
        "frames_in_stream": stored,
        "frames_delivered": agent.counters.frames_delivered,
    }


async def bench_wire(work: Path) -> dict[str, Any]:
    """Bytes per reading, typical site: 24 sensors, 1-minute samples, 15-minute batches."""
    per_kind = 4
    per_batch = sum(METRICS.values()) * per_kind * 15
    with EmbeddedNats(work / "nats-w") as server:
        s = settings(work / "spool-w", server.url, sum(METRICS.values()) * per_kind * 1440,
                     per_kind=per_kind, step_ms=60_000, batch={"max_readings": per_batch})
        agent = Agent(s)
        await _run_until(agent, lambda: agent.idle)
    from bocage.edge.adapters.simulated import expected_readings

    readings = expected_readings(s)
    n = len(readings)
    wire = agent.counters.bytes_sent / agent.counters.delivered
    docs = [
        msgspec.json.encode({"territory": "29042", "gateway": "bench", "sensor": r.sensor,
                             "metric": r.metric, "time_ms": r.time_ms, "value": r.value,
                             "quality": r.quality})
        for r in readings
    ]
    json_one = (sum(map(len, docs)) + NATS_OVERHEAD * n) / n
    zstd = zstandard.ZstdCompressor(level=3)
    batches = [b"\n".join(docs[i : i + per_batch]) for i in range(0, n, per_batch)]
    json_zstd = (sum(len(zstd.compress(b)) for b in batches) + NATS_OVERHEAD * len(batches)) / n
    return {
        "readings": n,
        "readings_per_frame": per_batch,
        "bocage_bytes_per_reading": round(wire, 2),
        "json_one_message_per_reading": round(json_one, 1),
        "json_batch_zstd3": round(json_zstd, 2),
        "ratio_vs_json": round(json_one / wire, 1),
        "energy_uj_per_reading_ethernet": round(agent.counters.energy_mj * 1000 / n, 3),
    }


async def main(as_json: bool, readings: int) -> None:
    results: dict[str, Any] = {"cpu": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="bocage-bench-") as tmp:
        work = Path(tmp)
        results["throughput"] = await bench_throughput(work, min(readings, 500_000))
        results["memory"] = bench_memory(work, readings)
        results["drain"] = await bench_drain(work, readings, 0)
        results["drain_limited"] = await bench_drain(work, min(readings, 200_000), 20_000)
        results["wire"] = await bench_wire(work)
    if as_json:
        print(json.dumps(results, indent=2))
        return
    names = ("throughput", "memory", "drain", "drain_limited", "wire")
    t, m, d, dl, w = (results[k] for k in names)
    mb = 1024 * 1024
    print("| measure | Bocage | target / peer |")
    print("|---|---|---|")
    print(f"| pipeline throughput (NATS acks) | {t['readings_per_s']:,} readings/s wall, "
          f"{t['readings_per_cpu_s']:,} per CPU-second | — |")
    print(f"| peak RSS, {m['spooled']:,} readings spooled | {m['peak_rss_bytes'] / mb:.1f} MB "
          f"(baseline {m['baseline_rss_bytes'] / mb:.1f} MB, growth over the run "
          f"{m['growth_first_to_last_bytes'] / mb:+.1f} MB; spool {m['spool_bytes'] / mb:.1f} MB "
          "on disk) | ≤ 64 MB flat; Telegraf ~2.3 GB |")
    print(f"| drain after outage, unbounded, {d['readings_per_frame']} readings a frame | "
          f"{d['readings_per_s']:,} readings/s ({d['frames_per_s']:,} frames/s) "
          "| ≥ 20,000; ThingsBoard Edge ~50 msg/s |")
    print(f"| drain, limit 20,000/s | {dl['steady_readings_per_s']:,} readings/s steady "
          f"({dl['readings_per_s']:,} overall, with the 0.5 s burst) | ≤ 20,000 |")
    print(f"| bytes on the wire per reading | {w['bocage_bytes_per_reading']} | JSON one message "
          f"per reading {w['json_one_message_per_reading']}; JSON batch + zstd-3 "
          f"{w['json_batch_zstd3']} |")


if __name__ == "__main__":
    logging.getLogger("bocage").setLevel(logging.ERROR)  # "NATS unreachable" is the point here
    if len(sys.argv) == 4 and sys.argv[1] == "--rss-child":
        _rss_child(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--readings", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(main(args.json, args.readings))
