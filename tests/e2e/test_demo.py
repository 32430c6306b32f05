"""`bocage demo` as a user runs it: within a minute the API shows indicators for three communes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bocage.core.natsserver import free_port

pytestmark = pytest.mark.slow

COMMUNES = {"36001", "36005", "36228"}


def communes_with_values(base: str, indicator: str) -> set[str]:
    try:
        response = httpx.get(f"{base}/api/v1/indicators/{indicator}", timeout=5)
    except httpx.HTTPError:
        return set()
    if response.status_code != 200:
        return set()
    return {v["territory"] for v in response.json()["values"] if v["value"] is not None}


def test_demo_shows_indicators_for_three_communes_then_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bocage.cli",
                "demo",
                "--data-dir",
                str(tmp_path / "demo"),
                "--port",
                str(port),
                "--backfill-hours",
                "30",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60  # the README promises indicators within a minute
        seen: set[str] = set()
        while time.monotonic() < deadline and demo.poll() is None:
            seen = communes_with_values(base, "lighting_energy_kwh")
            if seen == COMMUNES:
                break
            time.sleep(0.5)
        assert seen == COMMUNES, log.read_text()[-3000:]
        assert communes_with_values(base, "sensor_availability") == COMMUNES
        dashboard = httpx.get(f"{base}/", timeout=5)
        assert dashboard.status_code == 200
        assert all(name in dashboard.text for name in ("Aigurande", "Ardentes", "Valençay"))
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        code = demo.wait(60)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output
    assert "data kept in" in output
