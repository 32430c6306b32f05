"""``bocage quarantine list|replay`` through the real ``bocage`` command parser."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from ingest_helpers import eventually, make_frame, publish_frame, write_settings

from bocage.cli import main
from bocage.core.register import Register
from bocage.ingest import Ingestor, IngestSettings
from bocage.store import Store, StoreSettings

FAST = IngestSettings(batch_age_s=0.1, fetch_timeout_s=0.2, ack_wait_s=5)


@pytest.fixture
def config(tmp_path: Path, store: Store, store_settings: StoreSettings, nats_server) -> Path:
    return write_settings(
        tmp_path / "dc.toml",
        {
            "nats": {"url": nats_server.url},
            "store": store_settings,
        },
    )


async def test_list_and_replay(config: Path, store: Store, register: Register, nc, capsys) -> None:
    js = nc.jetstream()
    await publish_frame(js, make_frame("gw5", 1))  # not registered
    stop = asyncio.Event()
    task = asyncio.create_task(Ingestor(FAST, store, register, nc).run(stop))
    try:
        await eventually(
            lambda: store.scalar("SELECT count() FROM quarantine") == 1, what="quarantined"
        )
    finally:
        stop.set()
        await task

    assert await asyncio.to_thread(main, ["quarantine", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "unknown_gateway" in out
    assert "35238:gw5:1" in out

    argv = ["quarantine", "list", "--config", str(config), "--json", "--reason", "decode"]
    assert await asyncio.to_thread(main, argv) == 0
    assert capsys.readouterr().out.strip() == ""

    argv = ["quarantine", "list", "--config", str(config), "--json"]
    assert await asyncio.to_thread(main, argv) == 0
    entry = json.loads(capsys.readouterr().out.splitlines()[0])
    assert entry["reason"] == "unknown_gateway"

    argv = ["quarantine", "replay", "--config", str(config), "--all", "--dry-run"]
    assert await asyncio.to_thread(main, argv) == 0
    assert "would replay 1 message(s)" in capsys.readouterr().out
    before = (await js.stream_info("BOCAGE")).state.messages
    argv = ["quarantine", "replay", "--config", str(config), str(entry["quarantine_seq"])]
    assert await asyncio.to_thread(main, argv) == 0
    assert "replayed 1 message(s)" in capsys.readouterr().out
    assert (await js.stream_info("BOCAGE")).state.messages == before + 1


def test_replay_needs_something(config: Path, capsys) -> None:
    assert main(["quarantine", "replay", "--config", str(config)]) == 2
    assert "nothing to replay" in capsys.readouterr().err
