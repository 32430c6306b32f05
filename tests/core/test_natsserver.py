from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bocage.core.connection import connect_nats
from bocage.core.errors import UnreachableError
from bocage.core.natsserver import EmbeddedNats, free_port
from bocage.core.streams import ensure_streams


async def test_streams_are_created_once_and_deduplicate(nats_server: EmbeddedNats) -> None:
    nc = await connect_nats(nats_server.url, name="test")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        await ensure_streams(js)  # idempotent
        first = await js.publish(
            "bocage.36228.gw.frames", b"x", headers={"Nats-Msg-Id": "36228:gw:1"}
        )
        again = await js.publish(
            "bocage.36228.gw.frames", b"x", headers={"Nats-Msg-Id": "36228:gw:1"}
        )
        assert not first.duplicate
        assert again.duplicate
        info = await js.stream_info("BOCAGE")
        assert info.state.messages == 1
    finally:
        await nc.close()


async def test_unreachable_nats_is_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(UnreachableError, match="cannot reach NATS"):
        await connect_nats(url, name="test", connect_timeout=0.5, first_connect_deadline=2)


def test_embedded_server_restarts_on_same_port_after_kill(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    port = server.port
    server.stop(kill=True)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    server.start()
    try:
        assert server.port == port
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            assert sock.recv(4) == b"INFO"
    finally:
        server.stop()
