"""docker-compose.yml: the Compose Specification schema, the wiring between services, the files
it mounts, and `docker compose config` when a Compose CLI is installed.

No Docker engine is needed: the schema is the one check-jsonschema ships (vendor.compose-spec),
interpolation follows the Compose rules for the forms this file uses.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from infra_helpers import COMPOSE_FILE, ROOT

from bocage.core.settings import load

BOCAGE_SERVICES = ("migrate", "ingest", "indicators", "api")
SECTIONS = {"nats", "store", "ingest", "indicators", "api", "register"}
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|(?P<invalid>))"
)


def interpolate(value: Any, environ: dict[str, str]) -> Any:
    """Compose interpolation of every string: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None and match["plain"] is None and match["braced"] is None:
            raise ValueError(f"invalid interpolation in {value!r}")
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"] or ""
        present = name in environ
        empty = not environ.get(name)
        if op in (":-", "-"):
            use_default = empty if op == ":-" else not present
            return arg if use_default else environ[name]
        if op in (":?", "?"):
            if (empty if op == ":?" else not present):
                raise ValueError(f"required variable {name}: {arg}")
            return environ[name]
        if op in (":+", "+"):
            return arg if not (empty if op == ":+" else not present) else ""
        return environ.get(name, "")

    return _VARIABLE.sub(substitute, value)


def _resolve(doc: dict[str, Any]) -> dict[str, Any]:
    """Merge keys (<<) are resolved by the YAML loader; drop the x- extension fields."""
    return {k: v for k, v in doc.items() if not k.startswith("x-")}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """The file as Compose sees it with an empty environment (every default applies)."""
    return _resolve(interpolate(raw, {}))


def compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text("utf-8"))
    return schema


def test_interpolation_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("a$$b", env) == "a$b"
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $SET", env) == "v d  d v"
    with pytest.raises(ValueError, match="required"):
        interpolate("${UNSET:?needed}", env)
    with pytest.raises(ValueError, match="invalid"):
        interpolate("cost: 5$", env)


def test_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_can_fail(compose: dict[str, Any]) -> None:
    """The schema is strict enough to catch a misspelt key or a wrong type."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["healthcheck"]["retry"] = 3
    broken["services"]["ingest"]["deploy"]["replicas"] = "two"
    assert len(list(validator.iter_errors(broken))) >= 2


def test_services_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "nats", "clickhouse", *BOCAGE_SERVICES, "prometheus", "otel-collector"}
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert dependency != name
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
    assert services["migrate"]["restart"] == "no"
    assert set(services["migrate"]["depends_on"]) == {"clickhouse"}
    for name in ("ingest", "indicators", "api"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["nats"]["condition"] == "service_healthy"
        assert depends["clickhouse"]["condition"] == "service_healthy"


def test_bocage_services_share_one_image_and_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in BOCAGE_SERVICES:
        service = services[name]
        assert service["image"] == "bocage:dev"
        assert service["build"] == {
            "context": ".", "dockerfile": "infra/docker/Dockerfile", "target": "datacenter"}
        assert "./infra/docker/bocage.toml:/etc/bocage/bocage.toml:ro" in service["volumes"]
        assert service["read_only"] is True
        env = service["environment"]
        for key in env:
            if key.startswith("BOCAGE_"):
                section, _, field = key.removeprefix("BOCAGE_").partition("__")
                assert section.lower() in SECTIONS, key
                assert field, key
        assert env["BOCAGE_STORE__DSN"] == "http://default:@clickhouse:8123"
        assert env["BOCAGE_NATS__URL"] == "nats://nats:4222"
    assert services["api"]["command"] == ["serve", "api", "--config", "/etc/bocage/bocage.toml"]
    assert services["migrate"]["command"] == ["migrate", "--config", "/etc/bocage/bocage.toml"]


def test_prometheus_scrapes_every_metrics_endpoint(compose: dict[str, Any]) -> None:
    """Each process of its own serves its registry on the port its settings give, its
    healthcheck probes that port, and Prometheus scrapes it there."""
    services = compose["services"]
    prometheus = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for name in ("ingest", "indicators"):
        port = int(services[name]["environment"][f"BOCAGE_{name.upper()}__METRICS_PORT"])
        assert f"http://127.0.0.1:{port}/metrics" in " ".join(services[name]["healthcheck"]["test"])
        job = jobs[f"bocage-{name}"]
        targets = [
            f"{sd['names'][0]}:{sd['port']}" for sd in job.get("dns_sd_configs", [])
        ] + [t for sc in job.get("static_configs", []) for t in sc["targets"]]
        assert targets == [f"{name}:{port}"], name


def test_credentials_follow_the_environment(raw: dict[str, Any]) -> None:
    doc = _resolve(interpolate(raw, {"CLICKHOUSE_USER": "bocage", "CLICKHOUSE_PASSWORD": "pw"}))
    assert doc["services"]["api"]["environment"]["BOCAGE_STORE__DSN"] == (
        "http://bocage:pw@clickhouse:8123")
    assert doc["services"]["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"] == "pw"
    # the healthcheck's $$ reaches the container's shell as $
    test = doc["services"]["clickhouse"]["healthcheck"]["test"]
    assert '"$CLICKHOUSE_PASSWORD"' in test[1]


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_nats_reads_the_server_configuration_of_the_repository(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    assert "./infra/nats:/etc/nats:ro" in nats["volumes"]
    config = nats["command"][nats["command"].index("--config") + 1]
    assert config == "/etc/nats/nats-server.conf"
    assert (ROOT / "infra/nats/nats-server.conf").is_file(), "the NATS configuration is missing"
    # the flags the healthcheck and the volume rely on
    assert {"--jetstream", "--store_dir", "--http_port"} <= set(nats["command"])


def test_dockerfile_has_the_build_target(compose: dict[str, Any]) -> None:
    build = compose["services"]["api"]["build"]
    dockerfile = (ROOT / build["dockerfile"]).read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, flags=re.MULTILINE | re.IGNORECASE)
    assert build["target"] in stages


def test_compose_settings_file_loads(compose: dict[str, Any]) -> None:
    """infra/docker/bocage.toml plus the compose environment is a valid datacenter config."""
    settings_module = pytest.importorskip("bocage.datacenter.settings")
    env = {k: str(v) for k, v in compose["services"]["api"]["environment"].items()}
    settings = load(settings_module.DatacenterSettings, ROOT / "infra/docker/bocage.toml",
                    environ=env)
    assert settings.api.host == "0.0.0.0"
    assert settings.store.dsn == "http://default:@clickhouse:8123"
    tomllib.loads((ROOT / "infra/docker/bocage.toml").read_text(encoding="utf-8"))


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        probe = subprocess.run([standalone, "version"], capture_output=True, text=True,
                               check=False)
        if probe.returncode == 0 and "v2." in probe.stdout:
            return [standalone]
    return None


def test_docker_compose_config(tmp_path: Path) -> None:
    """The reference implementation, when installed: `docker compose config` needs no engine."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no Compose v2 CLI (docker compose plugin or docker-compose v2) installed")
    result = subprocess.run(
        [*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
