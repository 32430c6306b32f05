"""The Helm chart, rendered with `helm template` and asserted on object by object."""

from __future__ import annotations

import base64
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from infra_helpers import (
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    NAMESPACE,
    HelmError,
    Manifest,
    by_kind,
    config_toml,
    containers,
    env_of,
    find_tool,
    helm,
    one,
    pod_spec,
    render,
)

from bocage.core.settings import load

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass"}
COMPONENTS = ("ingest", "indicators", "api")
EXTERNAL = CHART / "ci" / "external-values.yaml"
KIND = CHART / "ci" / "kind-values.yaml"


def _chart_version() -> tuple[str, str]:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return chart["version"], chart["appVersion"]


# ----------------------------------------------------------------------------- lint, ci values


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_lint_strict(helm_bin: str, values: Path | None) -> None:
    args = ["lint", str(CHART), "--strict"] + (["--values", str(values)] if values else [])
    out = helm(helm_bin, *args)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_ci_values_render_valid_objects(helm_bin: str, values: Path) -> None:
    objects = render(helm_bin, values=[values])
    assert objects
    version, _ = _chart_version()
    for obj in objects:
        meta = obj["metadata"]
        labels = meta["labels"]
        assert labels["helm.sh/chart"] == f"bocage-{version}", meta["name"]
        assert labels["app.kubernetes.io/name"] == "bocage"
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "bocage"
        assert len(meta["name"]) <= 63, meta["name"]
        if obj["kind"] not in CLUSTER_SCOPED:
            assert meta["namespace"] == NAMESPACE, meta["name"]


# ----------------------------------------------------------------------------- default objects


def test_default_objects(default_objects: list[Manifest]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in default_objects)
    assert kinds == sorted([
        ("ConfigMap", "rel-bocage"),
        ("ConfigMap", "rel-bocage-migrate"),
        ("ConfigMap", "rel-bocage-nats"),
        ("Deployment", "rel-bocage-api"),
        ("Deployment", "rel-bocage-indicators"),
        ("Deployment", "rel-bocage-ingest"),
        ("Job", "rel-bocage-migrate"),
        ("Pod", "rel-bocage-test-api"),
        ("Pod", "rel-bocage-test-nats"),
        ("PodDisruptionBudget", "rel-bocage-api"),
        ("PodDisruptionBudget", "rel-bocage-ingest"),
        ("Secret", "rel-bocage-clickhouse-auth"),
        ("Service", "rel-bocage-api"),
        ("Service", "rel-bocage-clickhouse"),
        ("Service", "rel-bocage-clickhouse-headless"),
        ("Service", "rel-bocage-indicators-metrics"),
        ("Service", "rel-bocage-ingest-metrics"),
        ("Service", "rel-bocage-nats"),
        ("Service", "rel-bocage-nats-headless"),
        ("ServiceAccount", "rel-bocage"),
        ("StatefulSet", "rel-bocage-clickhouse"),
        ("StatefulSet", "rel-bocage-nats"),
    ])


@pytest.mark.parametrize("component", COMPONENTS)
def test_deployment_runs_its_service(default_objects: list[Manifest], component: str) -> None:
    deployment = one(default_objects, "Deployment", component)
    _, app_version = _chart_version()
    selector = deployment["spec"]["selector"]["matchLabels"]
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector == {
        "app.kubernetes.io/name": "bocage",
        "app.kubernetes.io/instance": "rel",
        "app.kubernetes.io/component": component,
    }
    assert selector.items() <= template_labels.items()
    (container,) = containers(deployment)
    assert container["image"] == f"bocage:{app_version}"
    assert container["args"] == ["serve", component, "--config", "/etc/bocage/bocage.toml"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/bocage"]["readOnly"] is True
    assert "/tmp" in mounts  # the root filesystem is read-only
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "rel-bocage"
    # config changes roll the pods
    assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_deployment_resources_and_security(default_objects: list[Manifest], component: str) -> None:
    deployment = one(default_objects, "Deployment", component)
    pod = pod_spec(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "rel-bocage"
    for container in containers(deployment):
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys()
        assert "memory" in resources["limits"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_store_dsn_comes_from_the_secret(default_objects: list[Manifest], component: str) -> None:
    (container,) = containers(one(default_objects, "Deployment", component))
    env = env_of(container)
    for name, key in (("CLICKHOUSE_USER", "username"), ("CLICKHOUSE_PASSWORD", "password")):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "rel-bocage-clickhouse-auth", "key": key}
    names = [e["name"] for e in container["env"]]
    # Kubernetes expands $(VAR) only from variables defined before
    assert names.index("BOCAGE_STORE__DSN") > names.index("CLICKHOUSE_PASSWORD")
    assert env["BOCAGE_STORE__DSN"]["value"] == (
        f"http://$(CLICKHOUSE_USER):$(CLICKHOUSE_PASSWORD)@rel-bocage-clickhouse.{NAMESPACE}.svc:8123"
    )


def test_api_probes_and_service(default_objects: list[Manifest]) -> None:
    api = one(default_objects, "Deployment", "api")
    (container,) = containers(api)
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert api["spec"]["replicas"] == 2
    service = by_kind(default_objects, "Service")["rel-bocage-api"]
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_ingest_scales_on_a_shared_consumer(default_objects: list[Manifest]) -> None:
    ingest = one(default_objects, "Deployment", "ingest")
    assert ingest["spec"]["replicas"] == 2
    (container,) = containers(ingest)
    assert container["ports"][0] == {"name": "metrics", "containerPort": 9102, "protocol": "TCP"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics", probe
    metrics = by_kind(default_objects, "Service")["rel-bocage-ingest-metrics"]
    assert metrics["spec"]["clusterIP"] == "None"  # every replica scraped
    pdb = by_kind(default_objects, "PodDisruptionBudget")["rel-bocage-ingest"]
    assert pdb["spec"]["selector"]["matchLabels"] == ingest["spec"]["selector"]["matchLabels"]


def test_indicators_serves_its_metrics(default_objects: list[Manifest]) -> None:
    indicators = one(default_objects, "Deployment", "indicators")
    (container,) = containers(indicators)
    assert container["ports"] == [{"name": "metrics", "containerPort": 9103, "protocol": "TCP"}]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    service = by_kind(default_objects, "Service")["rel-bocage-indicators-metrics"]
    assert service["spec"]["selector"] == indicators["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9103, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_tracing_endpoint_reaches_every_service(
    helm_bin: str, default_objects: list[Manifest]
) -> None:
    def otel(objects: list[Manifest], component: str) -> str | None:
        (container,) = containers(one(objects, "Deployment", component))
        env = {e["name"]: e.get("value") for e in container["env"]}
        return env.get("OTEL_EXPORTER_OTLP_ENDPOINT")

    assert all(otel(default_objects, c) is None for c in COMPONENTS)  # off by default
    endpoint = "http://otel-collector.monitoring:4318"
    objects = render(helm_bin, set_values={"tracing.otlpEndpoint": endpoint})
    assert all(otel(objects, c) == endpoint for c in COMPONENTS)


def test_single_replicas_have_no_disruption_budget(helm_bin: str) -> None:
    objects = render(helm_bin, set_values={"ingest.replicaCount": "1", "api.replicaCount": "1"})
    assert by_kind(objects, "PodDisruptionBudget") == {}


# ----------------------------------------------------------------------------- configuration


def test_config_toml_defaults(default_objects: list[Manifest]) -> None:
    settings = tomllib.loads(config_toml(default_objects, "rel-bocage"))
    assert settings["nats"]["url"] == f"nats://rel-bocage-nats.{NAMESPACE}.svc:4222"
    assert settings["store"] == {"database": "bocage"}  # never the DSN: credentials
    assert settings["api"] == {"host": "0.0.0.0", "port": 8080}
    assert settings["ingest"] == {"metrics_port": 9102}
    assert settings["indicators"] == {"metrics_port": 9103}
    # the migrations Job's own copy is the same document
    assert config_toml(default_objects, "rel-bocage-migrate") == config_toml(
        default_objects, "rel-bocage"
    )


def test_config_toml_types_and_register(helm_bin: str, tmp_path: Path) -> None:
    # A values file: YAML numbers reach the templates as floats, integral or not.
    extra = tmp_path / "values.yaml"
    extra.write_text(yaml.safe_dump({"config": {
        "indicators": {"refresh_seconds": 300, "cache_seconds": 2.5, "max_days": 10**12},
        "api": {"title": 'Bocage "Finistère" \\ <pilote>'},
        "nats": {"credentials": None},
        "ingest": {"sample": [1, 2.5, "x", True]},
    }}, allow_unicode=True))
    objects = render(
        helm_bin, values=[KIND, extra], set_values={"config.ingest.fetch_frames": "64"}
    )
    settings = tomllib.loads(config_toml(objects, "rel-bocage"))
    assert settings["indicators"]["refresh_seconds"] == 300
    assert isinstance(settings["indicators"]["refresh_seconds"], int)
    assert settings["indicators"]["cache_seconds"] == 2.5
    assert settings["indicators"]["max_days"] == 10**12  # not 1e+12
    assert settings["api"]["title"] == 'Bocage "Finistère" \\ <pilote>'
    assert settings["ingest"]["sample"] == [1, 2.5, "x", True]
    assert settings["ingest"]["fetch_frames"] == 64  # --set gives an int64, not a float
    assert "credentials" not in settings["nats"]  # TOML has no null: left out
    (territory,) = settings["register"]["territories"]
    assert territory["code"] == "29042"
    (gateway,) = territory["gateways"]
    assert gateway["id"] == "gw-smoke"
    assert [s["id"] for s in gateway["sensors"]] == ["smoke-lamp-1", "smoke-water-1"]


def test_public_url_follows_the_ingress(helm_bin: str) -> None:
    objects = render(helm_bin, set_values={"api.ingress.enabled": "true"})
    settings = tomllib.loads(config_toml(objects, "rel-bocage"))
    assert settings["api"]["public_url"] == "http://bocage.example.org"
    objects = render(helm_bin, set_values={
        "api.ingress.enabled": "true", "api.ingress.tls[0].secretName": "tls",
        "api.ingress.hosts[0].host": "data.territoire.fr",
        "api.ingress.hosts[0].paths[0].path": "/",
        "api.ingress.hosts[0].paths[0].pathType": "Prefix",
    })
    settings = tomllib.loads(config_toml(objects, "rel-bocage"))
    assert settings["api"]["public_url"] == "https://data.territoire.fr"


def test_config_overrides_the_computed_settings(helm_bin: str) -> None:
    objects = render(helm_bin, set_strings={"config.nats.url": "nats://nats.messaging:4222"},
                     set_values={"api.port": "9000"})
    settings = tomllib.loads(config_toml(objects, "rel-bocage"))
    assert settings["nats"]["url"] == "nats://nats.messaging:4222"
    assert settings["api"]["port"] == 9000
    (container,) = containers(one(objects, "Deployment", "api"))
    assert container["ports"][0]["containerPort"] == 9000


@pytest.mark.parametrize("values", [None, KIND, EXTERNAL], ids=["defaults", "kind", "external"])
def test_config_loads_into_the_datacenter_settings(
    helm_bin: str, tmp_path: Path, values: Path | None
) -> None:
    """The rendered bocage.toml is accepted by the real settings (unknown fields are refused)."""
    settings_module = pytest.importorskip("bocage.datacenter.settings")
    objects = render(helm_bin, values=[values] if values else [])
    path = tmp_path / "bocage.toml"
    path.write_text(config_toml(objects, "rel-bocage"))
    (container,) = containers(one(objects, "Deployment", "ingest"))
    dsn = env_of(container)["BOCAGE_STORE__DSN"]["value"]
    environ = {"BOCAGE_STORE__DSN": dsn.replace("$(CLICKHOUSE_USER)", "u").replace(
        "$(CLICKHOUSE_PASSWORD)", "p")}
    settings = load(settings_module.DatacenterSettings, path, environ=environ)
    assert settings.api.host == "0.0.0.0"
    assert settings.store.dsn.startswith(("http://u:p@", "https://u:p@"))


# ----------------------------------------------------------------------------- migrations Job


def _hook(obj: Manifest) -> str | None:
    return obj["metadata"].get("annotations", {}).get("helm.sh/hook")


def _weight(obj: Manifest) -> int:
    return int(obj["metadata"]["annotations"]["helm.sh/hook-weight"])


def test_migrate_hook_with_the_bundled_clickhouse(default_objects: list[Manifest]) -> None:
    job = by_kind(default_objects, "Job")["rel-bocage-migrate"]
    # the bundled ClickHouse is created by the install: the Job can only run after it
    assert _hook(job) == "post-install,pre-upgrade"
    assert "hook-succeeded" in job["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    (container,) = containers(job)
    assert container["args"] == ["migrate", "--config", "/etc/bocage/bocage.toml"]
    assert "BOCAGE_STORE__DSN" in env_of(container)
    spec = pod_spec(job)
    volumes = {v["name"]: v for v in spec["volumes"]}
    config = by_kind(default_objects, "ConfigMap")[volumes["config"]["configMap"]["name"]]
    secret = by_kind(default_objects, "Secret")["rel-bocage-clickhouse-auth"]
    # what the Job reads exists before it: hooks of lower weight in the same phases
    for dependency in (config, secret):
        assert set(_hook(job).split(",")) <= {*_hook(dependency).split(","), "post-install"}
        assert _weight(dependency) < _weight(job)
    assert "serviceAccountName" not in spec  # the chart's ServiceAccount may not exist yet


def test_migrate_hook_with_an_external_clickhouse(helm_bin: str) -> None:
    objects = render(helm_bin, values=[EXTERNAL])
    job = by_kind(objects, "Job")["rel-bocage-migrate"]
    assert _hook(job) == "pre-install,pre-upgrade"  # the schema before the new pods
    (container,) = containers(job)
    env = env_of(container)
    assert env["BOCAGE_STORE__DSN"]["value"] == (
        "https://$(CLICKHOUSE_USER):$(CLICKHOUSE_PASSWORD)@clickhouse.storage.svc:8443"
    )
    assert env["CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "bocage-clickhouse", "key": "pass"}


def test_migrate_without_hooks_is_a_job_per_revision(helm_bin: str) -> None:
    objects = render(helm_bin, set_values={"migrate.useHelmHooks": "false"})
    (job,) = by_kind(objects, "Job").values()
    assert job["metadata"]["name"] == "rel-bocage-migrate-1"
    assert _hook(job) is None
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    spec = pod_spec(job)
    assert spec["serviceAccountName"] == "rel-bocage"
    assert {v["name"]: v for v in spec["volumes"]}["config"]["configMap"]["name"] == "rel-bocage"
    assert "rel-bocage-migrate" not in by_kind(objects, "ConfigMap")


# ----------------------------------------------------------------------------- Secret


def test_generated_password_is_url_safe_and_kept_as_a_hook(default_objects: list[Manifest]) -> None:
    secret = by_kind(default_objects, "Secret")["rel-bocage-clickhouse-auth"]
    annotations = secret["metadata"]["annotations"]
    # a hook: created first, replaced on upgrade (lookup keeps the password), left on uninstall
    assert _hook(secret) == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["username"] == "bocage"
    assert len(data["password"]) == 32
    assert data["password"].isalnum()


def test_given_password_and_existing_secret(helm_bin: str) -> None:
    objects = render(helm_bin, set_strings={"clickhouse.auth.password": "s3cret-pass_1"})
    secret = by_kind(objects, "Secret")["rel-bocage-clickhouse-auth"]
    assert base64.b64decode(secret["data"]["password"]).decode() == "s3cret-pass_1"

    objects = render(helm_bin, set_strings={"clickhouse.auth.existingSecret": "mine"})
    assert by_kind(objects, "Secret") == {}
    clickhouse = one(objects, "StatefulSet", "clickhouse")
    (container,) = containers(clickhouse)
    assert env_of(container)["CLICKHOUSE_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mine"


# ----------------------------------------------------------------------------- bundled servers


def test_bundled_nats_and_clickhouse(default_objects: list[Manifest]) -> None:
    nats = one(default_objects, "StatefulSet", "nats")
    (container,) = containers(nats)
    assert container["image"].startswith("nats:2.")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz?js-enabled-only=true"
    assert nats["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    conf = by_kind(default_objects, "ConfigMap")["rel-bocage-nats"]["data"]["nats.conf"]
    assert "jetstream {" in conf
    assert "store_dir: /data" in conf
    assert "pid_file: /var/run/nats/nats.pid" in conf  # read by the lame-duck preStop hook

    clickhouse = one(default_objects, "StatefulSet", "clickhouse")
    (container,) = containers(clickhouse)
    assert container["image"].startswith("clickhouse/clickhouse-server:")
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    env = env_of(container)
    assert env["CLICKHOUSE_DB"]["value"] == "bocage"
    user = env["CLICKHOUSE_USER"]["valueFrom"]["secretKeyRef"]
    assert user["name"] == "rel-bocage-clickhouse-auth"


def test_persistence_off_uses_emptydir(helm_bin: str) -> None:
    objects = render(helm_bin, set_values={
        "nats.persistence.enabled": "false", "clickhouse.persistence.enabled": "false"})
    for component in ("nats", "clickhouse"):
        sts = one(objects, "StatefulSet", component)
        assert "volumeClaimTemplates" not in sts["spec"]
        volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
        assert volumes["data"] == {"name": "data", "emptyDir": {}}


# ----------------------------------------------------------------------------- production shape


def test_external_values(helm_bin: str) -> None:
    objects = render(helm_bin, values=[EXTERNAL])
    assert "StatefulSet" not in {o["kind"] for o in objects}
    assert by_kind(objects, "Secret") == {}  # existingSecret
    digest = "sha256:" + "0123456789abcdef" * 4
    for component in COMPONENTS:
        deployment = one(objects, "Deployment", component)
        (container,) = containers(deployment)
        assert container["image"] == f"registry.example.org/bocage/bocage@{digest}"
        assert pod_spec(deployment)["imagePullSecrets"] == [{"name": "regcred"}]
        assert deployment["metadata"]["labels"]["team"] == "data-platform"
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["nats-creds"]["mountPath"] == "/etc/bocage/nats"
    settings = tomllib.loads(config_toml(objects, "rel-bocage"))
    assert settings["nats"] == {
        "url": "nats://nats.messaging.svc:4222", "replicas": 3,
        "credentials": "/etc/bocage/nats/bocage.creds"}

    api = one(objects, "Deployment", "api")
    assert "replicas" not in api["spec"]  # the autoscaler owns it
    hpa = one(objects, "HorizontalPodAutoscaler", "api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)

    ingress = one(objects, "Ingress", "api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "bocage-tls", "hosts": ["data.example.org"]}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "rel-bocage-api", "port": {"number": 8080}}

    monitors = by_kind(objects, "ServiceMonitor")
    assert set(monitors) == {"rel-bocage-api", "rel-bocage-ingest", "rel-bocage-indicators"}
    for monitor in monitors.values():
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitors["rel-bocage-ingest"]["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitors["rel-bocage-indicators"]["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitors["rel-bocage-api"]["spec"]["endpoints"][0]["port"] == "http"

    spread = pod_spec(one(objects, "Deployment", "ingest"))["topologySpreadConstraints"]
    assert spread[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ingest"


def test_network_policies(helm_bin: str) -> None:
    objects = render(helm_bin, values=[KIND])
    policies = by_kind(objects, "NetworkPolicy")
    assert set(policies) == {f"rel-bocage-{c}" for c in (*COMPONENTS, "nats", "clickhouse")}
    release = {"app.kubernetes.io/name": "bocage", "app.kubernetes.io/instance": "rel"}
    clickhouse = policies["rel-bocage-clickhouse"]["spec"]
    assert clickhouse["ingress"] == [{
        "from": [{"podSelector": {"matchLabels": release}}],
        "ports": [{"port": "http", "protocol": "TCP"}, {"port": "native", "protocol": "TCP"}],
    }]
    # indicators serves its metrics only
    indicators = policies["rel-bocage-indicators"]["spec"]["ingress"]
    assert indicators == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    api = policies["rel-bocage-api"]["spec"]["ingress"]
    assert api == [{"ports": [{"port": "http", "protocol": "TCP"}]}]  # open: users and Ingress


# ----------------------------------------------------------------------------- helm test pods


@pytest.fixture
def fake_api() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    """A loopback HTTP server answering from a path -> (status, body) table."""
    routes: dict[str, tuple[int, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = routes.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()


def test_helm_test_pods(default_objects: list[Manifest]) -> None:
    pods = by_kind(default_objects, "Pod")
    api = pods["rel-bocage-test-api"]
    assert _hook(api) == "test"
    assert api["spec"]["restartPolicy"] == "Never"
    (container,) = containers(api)
    assert container["command"] == ["python", "-c"]
    assert container["args"][1] == "http://rel-bocage-api:8080"
    nats = pods["rel-bocage-test-nats"]
    assert _hook(nats) == "test"
    assert containers(nats)[0]["args"][1] == "http://rel-bocage-nats:8222/healthz?js-enabled-only=true"


def test_helm_test_script_checks_health_and_metrics(
    default_objects: list[Manifest], fake_api: tuple[str, dict[str, tuple[int, bytes]]]
) -> None:
    """Run the test pod's script against a loopback server: it passes, then fails on bad metrics."""
    base, routes = fake_api
    (container,) = containers(by_kind(default_objects, "Pod")["rel-bocage-test-api"])
    script = container["args"][0]
    routes["/health"] = (200, b'{"status":"ready"}')
    routes["/metrics"] = (200, b"# HELP x y\n# TYPE x counter\nx 1\n")
    run = subprocess.run([sys.executable, "-c", script, base], capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.returncode == 0, run.stderr
    assert "GET /health -> 200" in run.stdout

    routes["/metrics"] = (200, b"<html>not metrics</html>")
    run = subprocess.run([sys.executable, "-c", script, base], capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.returncode != 0
    assert "not Prometheus text" in run.stderr


def test_tests_can_be_turned_off(helm_bin: str) -> None:
    objects = render(helm_bin, set_values={"tests.enabled": "false"})
    assert by_kind(objects, "Pod") == {}


# ----------------------------------------------------------------------------- names


def test_names_fit_kubernetes_limits(helm_bin: str) -> None:
    release = "syndicat-departemental-energies-numerique-territoires"  # 53: helm's maximum
    assert len(release) == 53
    objects = render(helm_bin, release=release)
    for obj in objects:
        name = obj["metadata"]["name"]
        assert len(name) <= 63, name
        assert not name.endswith("-"), name
        if obj["kind"] == "StatefulSet":
            # controller-revision-hash = name + "-" + 10 characters must fit a label value
            assert len(name) <= 52, name


def test_release_named_like_the_chart_is_not_repeated(helm_bin: str) -> None:
    objects = render(helm_bin, release="bocage")
    assert "bocage-api" in by_kind(objects, "Deployment")
    objects = render(helm_bin, set_strings={"fullnameOverride": "territoire"})
    assert "territoire-api" in by_kind(objects, "Deployment")


# ----------------------------------------------------------------------------- refused values


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "api.replicaCount=two"], "/api/replicaCount': got string, want integer"),
        (["--set", "ingest.replicas=3"], "additional properties 'replicas' not allowed"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "tracing.otlpEndpoint=otel:4318"], "/tracing/otlpEndpoint"),
        (["--set-string", "clickhouse.auth.password=p@ss:word"], "/clickhouse/auth/password"),
        (["--set-string", "config.store.dsn=http://u:p@h:8123"], "/config/store/dsn"),
        (["--set", "nats.enabled=false"], "/config/nats': missing property 'url'"),
        (["--set", "clickhouse.enabled=false", "--set-string", "clickhouse.auth.password=x"],
         "/clickhouse/external/url"),
        (["--set", "clickhouse.enabled=false",
          "--set-string", "clickhouse.external.url=http://ch:8123"],
         "/clickhouse/auth/password"),
    ],
    ids=["type", "unknown-key", "enum", "otlp-endpoint-not-a-url", "password-not-url-safe",
         "dsn-in-config", "nats-without-url", "clickhouse-without-url",
         "external-without-credentials"],
)
def test_bad_values_are_refused_by_the_schema(helm_bin: str, args: list[str], message: str) -> None:
    with pytest.raises(HelmError, match=re.escape(message)):
        helm(helm_bin, "template", "rel", str(CHART), *args)
    with pytest.raises(HelmError, match=re.escape(message)):
        helm(helm_bin, "lint", str(CHART), "--strict", *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "nats.enabled=false"], "set config.nats.url"),
        (["--set", "clickhouse.enabled=false", "--set-string", "clickhouse.auth.password=x"],
         "set clickhouse.external.url"),
        (["--set", "clickhouse.enabled=false",
          "--set-string", "clickhouse.external.url=http://ch:8123"],
         "set clickhouse.auth.password or clickhouse.auth.existingSecret"),
        (["--set-string", "clickhouse.auth.password=a/b"], "must be URL-safe"),
        (["--set-string", "config.store.dsn=x"], "config.store.dsn must not be set"),
    ],
    ids=["nats-without-url", "clickhouse-without-url", "external-without-credentials",
         "password-not-url-safe", "dsn-in-config"],
)
def test_templates_refuse_bad_values_without_the_schema(
    helm_bin: str, args: list[str], message: str
) -> None:
    """The templates check what the schema checks: `--skip-schema-validation` is no way around."""
    with pytest.raises(HelmError, match=re.escape(message)):
        helm(helm_bin, "template", "rel", str(CHART), "--skip-schema-validation", *args)


# ----------------------------------------------------------------------------- kubeconform


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_kubeconform(helm_bin: str, values: Path | None, tmp_path: Path) -> None:
    """Every object against the Kubernetes OpenAPI schemas of KUBE_VERSION.

    kubeconform reads its schemas from a location (by default, a GitHub repository): set
    KUBECONFORM_SCHEMA_LOCATION to a local copy, or to `default` where the network allows.
    """
    kubeconform = find_tool("kubeconform")
    location = os.environ.get("KUBECONFORM_SCHEMA_LOCATION")
    if kubeconform is None or not location:
        pytest.skip("kubeconform needs Kubernetes JSON schemas: none reachable offline "
                    "(set KUBECONFORM_SCHEMA_LOCATION to a local copy or to `default`)")
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(yaml.safe_dump_all(render(helm_bin, values=[values] if values else [])))
    result = subprocess.run(
        [kubeconform, "-strict", "-summary", "-kubernetes-version", KUBE_VERSION,
         "-schema-location", location, "-skip", "ServiceMonitor", str(manifests)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ----------------------------------------------------------------------------- NOTES.txt


def render_notes(helm_bin: str, tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it (only install renders it: this wraps it in an object
    of a copy of the chart, so that `helm template` renders it with the same values)."""
    chart = tmp_path / "bocage"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    (chart / "templates" / "zz-notes.yaml").write_text(
        '{{- define "bocage.test.notes" -}}\n' + notes + "{{- end -}}\n"
        "kind: Notes\nnotes: {{ include \"bocage.test.notes\" . | toJson }}\n",
        encoding="utf-8",
    )
    out = helm(helm_bin, "template", "rel", str(chart), "--namespace", NAMESPACE,
               "--show-only", "templates/zz-notes.yaml", *args)
    return str(yaml.safe_load(out)["notes"])


def test_notes(helm_bin: str, tmp_path: Path) -> None:
    notes = render_notes(helm_bin, tmp_path)
    assert f"nats://rel-bocage-nats.{NAMESPACE}.svc:4222 (bundled single server)" in notes
    assert f"kubectl --namespace {NAMESPACE} port-forward svc/rel-bocage-api 8080:8080" in notes
    assert f"helm test rel --namespace {NAMESPACE}" in notes
    assert "get secret rel-bocage-clickhouse-auth" in notes  # the generated password
    assert "set nats.service.type=LoadBalancer" in notes

    notes = render_notes(helm_bin, tmp_path / "external", "--values", str(EXTERNAL))
    assert "https://data.example.org/health" in notes
    assert "3-10 (autoscaled)" in notes
    assert "https://clickhouse.storage.svc:8443, database" in notes
    assert "get secret" not in notes
    assert "port-forward" not in notes
