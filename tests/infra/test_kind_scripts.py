"""The control flow of infra/kind/e2e.sh and smoke.sh, run against recording stand-ins of
docker, kind, kubectl and helm (no cluster here: the real run is test_kind.py -m kind). What is
checked is the scripts' own logic: the order of the steps, the arguments, the clean-up on
failure, and how smoke.sh reads what the cluster answers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from infra_helpers import KIND_DIR

FAKE = r"""#!/usr/bin/env bash
# Stand-in of {name}: records its arguments, answers from the table of the test.
printf '%s\0' "{name} $*" >> "$FAKE_LOG"
key="{name} $*"
while IFS=$'\t' read -r pattern status output; do
    [ -n "$pattern" ] || continue
    # shellcheck disable=SC2053
    if [[ $key == $pattern ]]; then
        [ -n "$output" ] && printf '%b' "$output"
        exit "$status"
    fi
done < "$FAKE_TABLE"
exit 0
"""


def _tools(tmp_path: Path, table: list[tuple[str, int, str]]) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind", "kubectl", "helm"):
        tool = bin_dir / name
        tool.write_text(FAKE.replace("{name}", name))
        tool.chmod(0o755)
    (tmp_path / "table.tsv").write_text(
        "".join(f"{pattern}\t{status}\t{output}\n" for pattern, status, output in table))
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_LOG": str(tmp_path / "log"),
        "FAKE_TABLE": str(tmp_path / "table.tsv"),
        "HOME": str(tmp_path),
    }


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "log"
    return [c for c in log.read_text().split("\0") if c] if log.exists() else []


@pytest.fixture
def e2e_tree(tmp_path: Path) -> Path:
    """A copy of e2e.sh with a recording smoke.sh beside it."""
    kind_dir = tmp_path / "repo" / "infra" / "kind"
    kind_dir.mkdir(parents=True)
    shutil.copy(KIND_DIR / "e2e.sh", kind_dir / "e2e.sh")
    smoke = kind_dir / "smoke.sh"
    smoke.write_text(
        "#!/usr/bin/env bash\n"
        'printf "%s\\0" "smoke $NAMESPACE $RELEASE $IMAGE" >> "$FAKE_LOG"\n'
    )
    smoke.chmod(0o755)
    return kind_dir / "e2e.sh"


def _index(calls: list[str], prefix: str, start: int = 0) -> int:
    return next(i for i, c in enumerate(calls) if i >= start and c.startswith(prefix))


def test_e2e_runs_every_step_in_order_and_deletes_its_cluster(
    tmp_path: Path, e2e_tree: Path
) -> None:
    env = _tools(tmp_path, [
        ("kubectl * get secret *", 0, "cGFzcw=="),
        ("helm * history *", 0, '[{"revision":2,"status":"deployed"}]'),
    ])
    result = subprocess.run([str(e2e_tree)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    calls = _calls(tmp_path)
    steps = [
        "kind create cluster --name bocage-e2e --config infra/kind/kind-config.yaml",
        "docker build --file infra/docker/Dockerfile --target datacenter --tag bocage:e2e .",
        "kind load docker-image bocage:e2e --name bocage-e2e",
        "helm upgrade --install bocage charts/bocage",
        "helm test bocage",
        "smoke bocage-e2e-",
        "helm upgrade --install bocage charts/bocage",
        "helm test bocage",
        "kind delete cluster --name bocage-e2e",
    ]
    position = 0
    for step in steps:
        position = _index(calls, step, position) + 1
    install = next(c for c in calls if c.startswith("helm upgrade"))
    assert "--values charts/bocage/ci/kind-values.yaml" in install
    assert "--set image.repository=bocage --set image.tag=e2e" in install
    assert "--wait --wait-for-jobs" in install
    namespace = install.split("--namespace ")[1].split()[0]
    assert namespace.startswith("bocage-e2e-")  # a namespace per run
    assert f"smoke {namespace} bocage bocage:e2e" in calls


def test_e2e_cleans_up_and_fails_when_a_step_fails(tmp_path: Path, e2e_tree: Path) -> None:
    env = _tools(tmp_path, [("helm test *", 1, "test failed\\n")])
    result = subprocess.run([str(e2e_tree)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    calls = _calls(tmp_path)
    assert not any(c.startswith("smoke") for c in calls)  # stopped at the failed step
    assert any(c.startswith("kubectl --namespace bocage-e2e-") and " get all," in c
               for c in calls)  # diagnostics
    assert calls[-1] == "kind delete cluster --name bocage-e2e"
    assert "failed (1)" in result.stderr


def test_e2e_refuses_an_existing_cluster_unless_told(tmp_path: Path, e2e_tree: Path) -> None:
    env = _tools(tmp_path, [("kind get clusters", 0, "bocage-e2e\\n")])
    result = subprocess.run([str(e2e_tree)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "E2E_REUSE_CLUSTER=1" in result.stderr
    assert not any(c.startswith("kind delete") for c in _calls(tmp_path))  # not ours to delete


def test_e2e_detects_a_changed_password(tmp_path: Path, e2e_tree: Path) -> None:
    table = tmp_path / "secrets"
    # the first read answers one password, the second another
    env = _tools(tmp_path, [("helm * history *", 0, '[{"revision":2}]')])
    kubectl = Path(env["PATH"].split(":")[0]) / "kubectl"
    kubectl.write_text(
        '#!/usr/bin/env bash\nprintf "%s\\0" "kubectl $*" >> "$FAKE_LOG"\n'
        f'if [[ "$*" == *"get secret"* ]]; then echo x >> {table}; wc -l < {table}; fi\n')
    result = subprocess.run([str(e2e_tree)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "changed the generated ClickHouse password" in result.stderr


# ----------------------------------------------------------------------------- smoke.sh


def _smoke_table(count: str, sensors: str, quarantined: str, availability: list[float],
                 register: list[str]) -> list[tuple[str, int, str]]:
    api_sensors = json.dumps([{"id": i} for i in register]).replace("\\", "\\\\")
    api_values = json.dumps({"values": [
        {"territory": "29042", "date": "2026-01-01", "value": v} for v in availability]})
    return [
        ("kubectl * get service *component=api*", 0, "bocage-api\\n"),
        ("kubectl * get service *component=nats*", 0, "bocage-nats\\n"),
        ("kubectl * get statefulset *", 0, "bocage-clickhouse"),
        ("kubectl * get configmap *", 0, '[store]\\ndatabase = "bocage"\\n'),
        ("kubectl * get pod smoke-gateway *", 0, "Running"),
        ("kubectl * exec statefulset/* FROM bocage.quarantine *", 0, quarantined + "\\n"),
        ("kubectl * exec statefulset/* SELECT uniqExact* FROM bocage.readings *", 0,
         sensors + "\\n"),
        ("kubectl * exec statefulset/* SELECT count() FROM bocage.readings *", 0, count + "\\n"),
        ("kubectl * exec smoke-gateway *api/v1/sensors*", 0, api_sensors),
        ("kubectl * exec smoke-gateway *sensor_availability*", 0, api_values),
    ]


def _run_smoke(
    tmp_path: Path, table: list[tuple[str, int, str]]
) -> subprocess.CompletedProcess[str]:
    env = _tools(tmp_path, table)
    env |= {"NAMESPACE": "ns", "IMAGE": "bocage:e2e", "SMOKE_TIMEOUT": "5",
            "PATH": env["PATH"] + ":" + os.path.dirname(shutil.which("python3") or "/usr/bin")}
    return subprocess.run([str(KIND_DIR / "smoke.sh")], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_smoke_passes_when_the_data_comes_through(tmp_path: Path) -> None:
    result = _run_smoke(tmp_path, _smoke_table(
        "412", "2", "0", [0.0, 66.7], ["smoke-water-1", "smoke-lamp-1"]))
    assert result.returncode == 0, result.stderr
    assert "stored: 412 readings of 2 sensors; quarantined frames: 0" in result.stderr
    calls = _calls(tmp_path)
    configmap = next(c for c in calls if "create configmap smoke-gateway" in c)
    assert 'url = "nats://bocage-nats:4222"' in configmap
    assert 'territory = "29042"' in configmap
    assert any(c.startswith("kubectl --namespace ns apply -f -") for c in calls)
    assert any("delete pod smoke-gateway" in c for c in calls[-3:])  # cleaned up


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_smoke_table("0", "0", "0", [1.0], []), "no reading of gw-smoke stored"),
        (_smoke_table("5", "1", "0", [1.0], []), "expected readings of 2 sensors"),
        (_smoke_table("5", "2", "3", [1.0], []), "3 frame(s) of gw-smoke were quarantined"),
        (_smoke_table("5", "2", "0", [1.0], ["smoke-lamp-1"]), "register entries"),
    ],
    ids=["nothing-stored", "one-sensor", "quarantined", "register"],
)
def test_smoke_fails_when_data_is_missing(
    tmp_path: Path, table: list[tuple[str, int, str]], message: str
) -> None:
    result = _run_smoke(tmp_path, table)
    assert result.returncode != 0
    assert message in result.stderr
