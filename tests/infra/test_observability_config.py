"""Prometheus and OpenTelemetry collector configurations of docker-compose.yml."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from infra_helpers import COMPOSE_FILE, ROOT, find_tool, load_yaml

PROMETHEUS = ROOT / "infra" / "prometheus" / "prometheus.yml"
COLLECTOR = ROOT / "infra" / "otel" / "collector.yaml"


def _targets(job: dict[str, Any]) -> list[tuple[str, int]]:
    found = []
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, _, port = target.rpartition(":")
            found.append((host, int(port)))
    for dns in job.get("dns_sd_configs", []):
        found += [(name, int(dns["port"])) for name in dns["names"]]
    return found


def test_prometheus_scrapes_the_compose_services() -> None:
    config = load_yaml(PROMETHEUS)
    compose = load_yaml(COMPOSE_FILE)["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"bocage-api", "bocage-ingest"} <= set(jobs)
    for job in jobs.values():
        for host, port in _targets(job):
            assert host == "localhost" or host in compose, f"{job['job_name']}: unknown {host}"
            assert 0 < port < 65536
    assert _targets(jobs["bocage-api"]) == [("api", 8080)]
    ingest_port = int(compose["ingest"]["environment"]["BOCAGE_INGEST__METRICS_PORT"])
    assert _targets(jobs["bocage-ingest"]) == [("ingest", ingest_port)]
    # every replica, not one behind the service name
    assert jobs["bocage-ingest"]["dns_sd_configs"][0]["type"] == "A"


def test_promtool_check_config() -> None:
    promtool = find_tool("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    result = subprocess.run([promtool, "check", "config", "--syntax-only", str(PROMETHEUS)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_collector_pipelines_use_defined_components() -> None:
    config = load_yaml(COLLECTOR)
    pipelines = config["service"]["pipelines"]
    assert "traces" in pipelines
    for name, pipeline in pipelines.items():
        assert pipeline["receivers"], name
        assert pipeline["exporters"], name
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{name}: {component} is not in {kind}"
    assert pipelines["traces"]["processors"][0] == "memory_limiter"  # first, by the docs
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["http"]["endpoint"].endswith(":4318")
    # the compose services export to the collector's OTLP/HTTP port
    compose = load_yaml(COMPOSE_FILE)["services"]
    assert compose["api"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "http://otel-collector:4318")
    assert "./infra/otel/collector.yaml:/etc/otelcol/collector.yaml:ro" in (
        compose["otel-collector"]["volumes"])
