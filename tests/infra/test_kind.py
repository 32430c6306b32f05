"""The kind end-to-end harness: static checks always, the run itself on request (-m kind)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from infra_helpers import CHART, KIND_DIR, ROOT, find_tool, load_yaml

from bocage.core.settings import load

SCRIPTS = sorted(KIND_DIR.glob("*.sh"))
KIND_VALUES = CHART / "ci" / "kind-values.yaml"


def test_cluster_has_a_control_plane_and_a_worker() -> None:
    config = load_yaml(KIND_DIR / "kind-config.yaml")
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [node["role"] for node in config["nodes"]] == ["control-plane", "worker"]


def test_port_mappings_match_the_node_ports_of_the_kind_values() -> None:
    config = load_yaml(KIND_DIR / "kind-config.yaml")
    mapped = {
        m["containerPort"]: m
        for node in config["nodes"]
        for m in node.get("extraPortMappings", [])
    }
    values = load_yaml(KIND_VALUES)
    for service in (values["api"]["service"], values["nats"]["service"]):
        assert service["type"] == "NodePort"
        assert service["nodePort"] in mapped
    for mapping in mapped.values():
        assert mapping["listenAddress"] == "127.0.0.1"  # the host's loopback only


def test_smoke_gateway_is_in_the_register_of_the_kind_values() -> None:
    smoke = (KIND_DIR / "smoke.sh").read_text(encoding="utf-8")
    territory = re.search(r"^TERRITORY=(\S+)$", smoke, re.MULTILINE)
    gateway = re.search(r"^GATEWAY=(\S+)$", smoke, re.MULTILINE)
    assert territory
    assert gateway
    sensors = set(re.findall(r'^id = "(smoke-[a-z0-9-]+)"$', smoke, re.MULTILINE))
    register = load_yaml(KIND_VALUES)["config"]["register"]
    (entry,) = [t for t in register["territories"] if t["code"] == territory[1]]
    (declared,) = [g for g in entry["gateways"] if g["id"] == gateway[1]]
    assert declared["territory"] == territory[1]
    assert {s["id"] for s in declared["sensors"]} == sensors == {"smoke-lamp-1", "smoke-water-1"}


def test_smoke_gateway_configuration_is_valid(tmp_path: Path) -> None:
    """The edge.toml smoke.sh gives its simulated gateway loads into the real EdgeSettings."""
    edge_settings = pytest.importorskip("bocage.edge.settings")
    smoke = (KIND_DIR / "smoke.sh").read_text(encoding="utf-8")
    template = re.search(r"<<TOML\n(.*?)\nTOML\n", smoke, re.DOTALL)
    assert template, "no edge.toml heredoc in smoke.sh"
    values = {"GATEWAY": "gw-smoke", "TERRITORY": "29042", "nats": "rel-bocage-nats",
              "start_ms": "1700000000000", "SAMPLES": "120"}
    text = re.sub(r"\$(\w+)", lambda m: values[m[1]], template[1])
    path = tmp_path / "edge.toml"
    path.write_text(text, encoding="utf-8")
    settings = load(edge_settings.EdgeSettings, path, environ={})
    assert settings.gateway.id == "gw-smoke"
    assert settings.nats.url == "nats://rel-bocage-nats:4222"
    assert {s.id for s in settings.sensors} == {"smoke-lamp-1", "smoke-water-1"}
    assert all(not s.realtime and s.limit == 120 for s in settings.sensors)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_strict_bash(script: Path) -> None:
    path = script
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(path, os.X_OK), f"{path.name} is not executable"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (Debian package shellcheck)")
    result = subprocess.run([shellcheck, *map(str, SCRIPTS)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout


def test_install_tools_is_idempotent_when_installed() -> None:
    """A second run finds the stamped versions and builds nothing."""
    helm = find_tool("helm")
    if helm is None or not (find_tool("kind") and find_tool("kubeconform")):
        pytest.skip("the tools are not installed: infra/kind/install-tools.sh")
    bin_dir = os.path.dirname(helm)
    result = subprocess.run(
        [str(KIND_DIR / "install-tools.sh")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "BOCAGE_TOOLS_DIR": os.path.dirname(bin_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == bin_dir
    assert "building" not in result.stderr
    assert result.stderr.count("already in") == 3


@pytest.mark.kind
def test_kind_end_to_end(request: pytest.FixtureRequest) -> None:
    """infra/kind/e2e.sh: cluster, image, helm install, helm test, smoke, upgrade, teardown."""
    if "kind" not in (request.config.option.markexpr or ""):
        pytest.skip("opt-in: run with -m kind (needs a Docker engine; takes ~10 minutes)")
    missing = [t for t in ("docker", "kubectl") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no Docker engine answers (docker info)")
    result = subprocess.run([str(KIND_DIR / "e2e.sh")], cwd=ROOT, timeout=40 * 60, check=False)
    assert result.returncode == 0, "infra/kind/e2e.sh failed: see its output above"
