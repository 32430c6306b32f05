"""The example NATS configuration (infra/nats) isolates gateways: a real nats-server runs it."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from ingest_helpers import eventually, make_frame

from bocage.core import subjects
from bocage.core.natsserver import free_port, nats_server_binary
from bocage.core.streams import ensure_streams

CONFIG = Path(__file__).resolve().parents[2] / "infra" / "nats" / "nats-server.conf"


@pytest.fixture
def secured_nats(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    text = CONFIG.read_text()
    text = re.sub(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{port}", text)
    text = re.sub(r"(?m)^http: .*$", f"http: 127.0.0.1:{free_port()}", text)
    text = re.sub(r"store_dir: \S+", f"store_dir: {tmp_path / 'js'}", text)
    config = tmp_path / "nats.conf"
    config.write_text(text)
    log = (tmp_path / "nats.log").open("wb")
    process = subprocess.Popen([nats_server_binary(), "-c", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((tmp_path / "nats.log").read_text()) from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


async def test_gateways_publish_only_on_their_own_subjects(secured_nats: str) -> None:
    ingest = await nats.connect(secured_nats, user="ingest", password="change-me-ingest")
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    gateway = await nats.connect(
        secured_nats,
        user="35238-gw0",
        password="change-me-35238-gw0",
        inbox_prefix=b"_INBOX.35238.gw0",
        error_cb=on_error,
    )
    try:
        js_ingest = ingest.jetstream()
        await ensure_streams(js_ingest)
        js = gateway.jetstream()
        ack = await js.publish(
            subjects.subject("35238", "gw0", "frames"),
            make_frame("gw0", 1),
            headers={subjects.MSG_ID_HEADER: "35238:gw0:1"},
        )
        assert ack.stream == subjects.STREAM
        # another gateway's subject, in its own and in another territory: refused by the server
        for territory, gw in (("35238", "gw1"), ("35001", "gw0")):
            with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
                await js.publish(
                    subjects.subject(territory, gw, "frames"),
                    make_frame(gw, 1, territory=territory),
                    timeout=1,
                )
        # ...and it cannot read the stream of the others
        await gateway.subscribe("bocage.>")
        await gateway.flush()

        def violations() -> list[str]:
            return [str(e).lower() for e in errors if "permissions violation" in str(e).lower()]

        await eventually(
            lambda: (
                any("publish" in v and "bocage.35001.gw0.frames" in v for v in violations())
                and any("subscription" in v and "bocage.>" in v for v in violations())
            ),
            timeout=10,
            what=f"permission violations reported, got {errors}",
        )
        info = await js_ingest.stream_info(subjects.STREAM)
        assert info.state.messages == 1
    finally:
        await gateway.close()
        await ingest.close()
