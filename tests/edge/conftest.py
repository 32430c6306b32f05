"""Fixtures of the edge tests: a real mosquitto broker on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bocage.core.natsserver import free_port


def mosquitto_binary() -> str | None:
    """Debian's mosquitto (``apt-get install mosquitto``) lives in /usr/sbin."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@dataclass
class Broker:
    """A running mosquitto."""

    host: str
    port: int


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real MQTT broker (Debian's mosquitto) on loopback, stopped after the test."""
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto not installed: apt-get install -y mosquitto")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        f"log_dest file {tmp_path / 'mosquitto.log'}\n"
    )
    proc = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield Broker("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
