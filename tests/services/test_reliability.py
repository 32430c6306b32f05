"""Reliability of ingest with real processes: kill -9, store outage, restart.

Real nats-server (EmbeddedNats), real ClickHouse engine (chDB; the ingest subprocess gets a
data path of its own since chDB allows one per process), real ``python -m bocage.ingest``
processes killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from ingest_helpers import ChdbHttp, eventually, make_frame, metric, publish_frame, write_settings
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY

from bocage.core import subjects
from bocage.core.natsserver import EmbeddedNats, free_port
from bocage.core.register import Register
from bocage.core.streams import ensure_streams
from bocage.ingest import Ingestor, IngestSettings
from bocage.store import Store, StoreSettings

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


CLI = (sys.executable, "-m", "bocage.cli")


class IngestProcess:
    """``bocage serve ingest --config SETTINGS`` as a child process."""

    def __init__(self, settings: Path, log: Path, metrics_port: int) -> None:
        self.settings, self.log, self.metrics_port = settings, log, metrics_port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*CLI, "serve", "ingest", "--config", str(self.settings)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def readings(self) -> float:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"ingest exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
            )
        try:
            return metric(self.metrics_port, "bocage_ingest_readings_total")
        except OSError:  # not listening yet
            return 0.0

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(60)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def probe(path: Path, database: str) -> dict[str, int]:
    """Counts in a chDB path, read by a process of its own."""
    out = subprocess.run(
        [sys.executable, str(HERE / "chdb_probe.py"), str(path), database],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return json.loads(out.stdout)


async def drained(js, durable: str = "bocage-ingest") -> bool:
    try:
        info = await js.consumer_info(subjects.STREAM, durable)
    except NotFoundError:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


@pytest.fixture
def ingest_process(
    tmp_path: Path, nats_server: EmbeddedNats, register: Register
) -> Iterator[IngestProcess]:
    port = free_port()
    settings = write_settings(
        tmp_path / "ingest.toml",
        {
            "nats": {"url": nats_server.url},
            "store": StoreSettings(dsn=f"chdb://{tmp_path / 'store'}", database="bocage"),
            # small batches so that a kill is likely to fall in the middle of one
            "ingest": IngestSettings(
                batch_frames=24,
                fetch_frames=8,
                batch_age_s=0.2,
                ack_wait_s=3,
                fetch_timeout_s=0.2,
                retry_initial_s=0.05,
                retry_max_s=0.5,
                metrics_port=port,
            ),
            "register": register,
        },
    )
    process = IngestProcess(settings, tmp_path / "ingest.log", port)
    try:
        yield process
    finally:
        process.ensure_stopped()


async def test_kill_9_mid_batch_then_restart_stores_every_reading_once(
    tmp_path: Path, nats_server: EmbeddedNats, ingest_process: IngestProcess
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        frames = 240
        for seq in range(1, frames + 1):
            await publish_frame(js, make_frame(f"gw{seq % 3}", seq, readings=250))
        total = frames * 4 * 250
        # two crashes at different points of the flow, then a clean run to the end
        for fraction in (0.2, 0.55):
            ingest_process.start()
            await eventually(
                lambda f=fraction: ingest_process.readings() >= f * total,
                timeout=120,
                what=f"{fraction:.0%} stored",
            )
            ingest_process.kill()
            assert not await drained(js), "the kill should come before the end"
        ingest_process.start()
        await eventually(lambda: drained(js), timeout=120, what="backlog drained after restart")
        assert ingest_process.terminate() == 0
    finally:
        await nc.close()
    counts = probe(tmp_path / "store", "bocage")
    assert counts == {
        "rows": total,
        "distinct": total,
        "rollup_1m": total,
        "rollup_1h": total,
        "ledger": total,
        "frames": frames,
        "sketched": total,
        "sketch_frames": frames,
    }


@pytest.fixture
def http_store_server(tmp_path: Path) -> Iterator[ChdbHttp]:
    """A server of our own: this test kills it."""
    server = ChdbHttp(tmp_path / "server-data", free_port(), tmp_path / "chdb-http.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_store_down_for_a_while_nothing_lost(
    nats_server: EmbeddedNats, http_store_server: ChdbHttp, register: Register
) -> None:
    """ClickHouse (over HTTP) goes away: JetStream keeps the backlog, ingest retries, catches up."""
    store = Store.connect(
        StoreSettings(
            dsn=http_store_server.url, database="bocage", connect_timeout_s=1, query_timeout_s=10
        )
    )
    nc = await nats.connect(nats_server.url)
    stop = asyncio.Event()
    settings = IngestSettings(
        batch_frames=16,
        fetch_frames=8,
        batch_age_s=0.1,
        fetch_timeout_s=0.2,
        retry_initial_s=0.05,
        retry_max_s=0.5,
        ack_wait_s=5,
    )
    task = asyncio.create_task(Ingestor(settings, store, register, nc).run(stop))
    try:
        js = nc.jetstream()
        await eventually(lambda: drained(js), what="consumer ready")
        for seq in range(1, 21):
            await publish_frame(js, make_frame("gw0", seq))
        await eventually(lambda: drained(js), what="first frames stored")
        http_store_server.stop()  # the store is gone (killed)
        for seq in range(21, 121):
            await publish_frame(js, make_frame(f"gw{seq % 3}", seq))
        await asyncio.sleep(0)
        info = await js.stream_info(subjects.STREAM)
        assert info.state.messages == 120
        await eventually(lambda: _commit_errors() >= 3, what="ingest retrying")
        assert not await drained(js)
        http_store_server.start()  # back on the same port and data
        await eventually(lambda: drained(js), timeout=60, what="caught up")
        assert store.query(
            "SELECT count(), uniqExact(frame_id, sensor, metric, ts), "
            "(SELECT sum(count) FROM readings_1h) FROM readings"
        ) == [(120 * 40, 120 * 40, 120 * 40)]
        assert store.scalar(
            "SELECT sum(c) FROM (SELECT any(count) AS c FROM sketches_1h "
            "GROUP BY territory, sensor, metric, bucket, frame_id)"
        ) == 120 * 40
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await nc.close()
        store.close()


def _commit_errors() -> float:
    return float(REGISTRY.get_sample_value("bocage_ingest_errors_total", {"stage": "commit"}) or 0)


@pytest.mark.skipif(not os.environ.get("CLICKHOUSE_URL"), reason="needs CLICKHOUSE_URL")
def test_real_server_is_reachable() -> None:
    store = Store.connect(StoreSettings(dsn=os.environ["CLICKHOUSE_URL"], database="bocage_ci"))
    try:
        assert store.ping()
    finally:
        store.close()
