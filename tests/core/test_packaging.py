"""A gateway installs the edge agent without any datacenter dependency."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, requires

DATACENTER_ONLY = {
    "litestar", "chdb", "clickhouse-connect", "pyarrow", "uvicorn", "bocage-services"
}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def closure(distribution: str) -> set[str]:
    """Every distribution ``distribution`` pulls in (installed metadata, extras left out)."""
    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        todo.extend(_name(r) for r in reqs if "extra ==" not in r)
    return seen


def test_edge_agent_pulls_in_no_datacenter_dependency() -> None:
    deps = closure("bocage-edge")
    assert "bocage-native" in deps
    assert "nats-py" in deps
    assert not deps & DATACENTER_ONLY, deps & DATACENTER_ONLY


def test_services_bring_the_datacenter_stack() -> None:
    assert {"litestar", "chdb", "clickhouse-connect"} <= closure("bocage-services")
