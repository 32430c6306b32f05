"""The `bocage` command as a user meets it: bad input gives one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bocage.core.natsserver import free_port

ROOT = Path(__file__).resolve().parents[2]


def bocage(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bocage.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_example_datacenter_config_is_valid(tmp_path: Path) -> None:
    from bocage.core.settings import load
    from bocage.datacenter.settings import DatacenterSettings

    settings = load(DatacenterSettings, ROOT / "infra/config/bocage.toml", environ={})
    assert settings.register.gateway("36228", "gw-36228-1") is not None


def test_wrong_field_in_datacenter_config_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bocage.toml"
    config.write_text('[api]\nport = "http"\n')
    result = bocage("serve", "all", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "api.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_sensor_kind_in_edge_config_is_named(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        '[gateway]\nid = "gw"\nterritory = "36228"\n[[sensors]]\nid = "x"\nkind = "toaster"\n'
    )
    result = bocage("edge", "run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "sensors.0.kind" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_nats_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "bocage.toml"
    config.write_text(
        f'[nats]\nurl = "nats://127.0.0.1:{free_port()}"\n'
        f'[store]\ndsn = "chdb://{tmp_path / "store"}"\n'
    )
    result = bocage("serve", "ingest", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "cannot reach NATS" in result.stderr
    assert "Traceback" not in result.stderr
