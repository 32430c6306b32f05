"""Helpers of the deployment tests: locate the tools, render the chart, read the manifests.

Charts are rendered with the real ``helm template`` and the objects asserted on, in the manner of
apache/airflow's helm-tests (chart_utils/helm_template_generator.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "bocage"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
COMPOSE_FILE = ROOT / "docker-compose.yml"
KIND_DIR = ROOT / "infra" / "kind"

# Kubernetes version the chart is rendered for: fixed, so that a newer helm changes nothing.
KUBE_VERSION = "1.31.0"
NAMESPACE = "bocage-test"

# A manifest, as parsed from YAML.
Manifest = dict[str, Any]


def tools_dir() -> Path:
    """Where infra/kind/install-tools.sh puts the tools it builds."""
    base = os.environ.get("BOCAGE_TOOLS_DIR")
    if base:
        return Path(base) / "bin"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "bocage" / "tools" / "bin"


def find_tool(name: str) -> str | None:
    """The path of ``name`` on the PATH or in the tools cache, or None."""
    found = shutil.which(name)
    if found:
        return found
    cached = tools_dir() / name
    return str(cached) if cached.is_file() and os.access(cached, os.X_OK) else None


class HelmError(Exception):
    """``helm`` exited with an error; the message is its stderr."""


def helm(helm_bin: str, *args: str) -> str:
    """Run helm, return its stdout; raise :class:`HelmError` with stderr on failure."""
    result = subprocess.run(
        [helm_bin, *args], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        # `helm lint` reports on stdout and sums up on stderr
        raise HelmError(f"{result.stderr.strip()}\n{result.stdout.strip()}".strip())
    return result.stdout


def render(
    helm_bin: str,
    *,
    values: Iterable[Path] = (),
    set_values: Mapping[str, str] | None = None,
    set_strings: Mapping[str, str] | None = None,
    release: str = "rel",
    namespace: str = NAMESPACE,
    show_only: str | None = None,
) -> list[Manifest]:
    """``helm template`` the chart and return every object (hooks and test pods included)."""
    args = [
        "template", release, str(CHART),
        "--namespace", namespace,
        "--kube-version", KUBE_VERSION,
    ]
    for path in values:
        args += ["--values", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]  # numbers and booleans parsed, as on a command line
    for key, value in (set_strings or {}).items():
        args += ["--set-string", f"{key}={value}"]
    if show_only:
        args += ["--show-only", show_only]
    return [doc for doc in yaml.safe_load_all(helm(helm_bin, *args)) if doc]


def by_kind(objects: Iterable[Manifest], kind: str) -> dict[str, Manifest]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def one(objects: Iterable[Manifest], kind: str, component: str) -> Manifest:
    """The single object of ``kind`` whose app.kubernetes.io/component is ``component``."""
    found = [
        o for o in objects
        if o["kind"] == kind
        and o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} of component {component}, got {len(found)}"
    return found[0]


def containers(obj: Manifest) -> list[Manifest]:
    """Containers of a workload or a pod."""
    spec = obj["spec"]
    pod = spec if obj["kind"] == "Pod" else spec["template"]["spec"]
    return list(pod.get("containers", []))


def pod_spec(obj: Manifest) -> Manifest:
    """Pod spec of a workload (Deployment, StatefulSet, Job) or of a Pod."""
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def env_of(container: Manifest) -> dict[str, Manifest]:
    """A container's environment variables, by name."""
    return {e["name"]: e for e in container.get("env", [])}


def config_toml(objects: Iterable[Manifest], name: str) -> str:
    """The bocage.toml of the ConfigMap ``name``."""
    return str(by_kind(objects, "ConfigMap")[name]["data"]["bocage.toml"])


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))
