"""infra/docker/Dockerfile, checked without a Docker engine: its stages, what it copies, and the
locked requirement lists it installs (`uv export`, run here for real)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from infra_helpers import ROOT

DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
TEXT = DOCKERFILE.read_text(encoding="utf-8")
# One logical instruction per item: continuation lines joined.
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", TEXT).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def stages() -> list[tuple[str, str]]:
    """(base, name) of every FROM ... AS name, in order."""
    return [
        (m[1], m[2])
        for m in (re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", i, re.IGNORECASE) for i in INSTRUCTIONS)
        if m
    ]


def stage_body(name: str) -> list[str]:
    body: list[str] = []
    inside = False
    for instruction in INSTRUCTIONS:
        if instruction.upper().startswith("FROM "):
            inside = instruction.split()[-1] == name
            continue
        if inside:
            body.append(instruction)
    return body


def test_stages_and_default_target() -> None:
    names = [name for _, name in stages()]
    assert names == ["rust", "build", "datacenter-venv", "gateway-venv", "runtime", "gateway",
                     "datacenter"]
    assert names[-1] == "datacenter"  # `docker build` without --target gives the datacenter


@pytest.mark.parametrize("stage", ["gateway", "datacenter"])
def test_final_images_run_as_the_unprivileged_user(stage: str) -> None:
    body = stage_body(stage)
    assert "USER 10001:10001" in body
    assert any(i.startswith("CMD ") for i in body)
    assert 'ENTRYPOINT ["bocage"]' in stage_body("runtime")


def test_copied_sources_exist() -> None:
    for instruction in INSTRUCTIONS:
        if not instruction.startswith("COPY ") or "--from=" in instruction:
            continue
        *sources, _ = instruction.split()[1:]
        for source in sources:
            assert (ROOT / source).exists(), f"{instruction}: {source} is not in the repository"


def test_uv_is_the_version_of_the_quickstart() -> None:
    (pinned,) = re.findall(r"^ARG UV_VERSION=(\S+)$", TEXT, re.MULTILINE)
    quickstart = (ROOT / "infra" / "quickstart.sh").read_text(encoding="utf-8")
    assert f"UV_VERSION={pinned}" in quickstart


def test_migrations_ship_in_the_datacenter_image() -> None:
    body = stage_body("datacenter")
    assert "COPY infra/clickhouse/migrations /usr/share/bocage/clickhouse/migrations" in body
    assert "ENV BOCAGE_STORE__MIGRATIONS_DIR=/usr/share/bocage/clickhouse/migrations" in body
    assert any((ROOT / "infra/clickhouse/migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))


def _export(package: str) -> set[str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    result = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes",
         "--no-header", "--no-annotate", "--package", package],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    names = set()
    for raw in result.stdout.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            assert not line.startswith(("-e", ".", "/")), f"a workspace path leaked: {line}"
            names.add(re.split(r"[=<>; \[]", line, maxsplit=1)[0].lower())
    return names


def test_locked_requirements_of_the_datacenter_image() -> None:
    names = _export("bocage-services")
    assert {"litestar", "clickhouse-connect", "nats-py", "msgspec", "numpy"} <= names
    assert not {n for n in names if n.startswith("bocage")}  # installed from the built wheels


def test_gateway_image_has_no_datacenter_dependency() -> None:
    names = _export("bocage-edge")
    assert {"nats-py", "msgspec", "numpy"} <= names
    assert not names & {"litestar", "clickhouse-connect", "chdb", "uvicorn", "pyarrow"}


def test_build_context_lets_in_what_is_copied() -> None:
    """The context is `*` minus exceptions (Dockerfile.dockerignore): every COPY source is one."""
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    rules = [r.strip() for r in ignore.splitlines() if r.strip() and not r.startswith("#")]
    assert rules[0] == "*"
    included = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for instruction in INSTRUCTIONS:
        if instruction.startswith("COPY ") and "--from=" not in instruction:
            *sources, _ = instruction.split()[1:]
            for source in sources:
                assert source in included, f"{source} is copied but left out of the context"
