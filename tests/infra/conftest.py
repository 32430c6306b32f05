"""Fixtures of the deployment tests: the helm binary and the rendered chart."""

from __future__ import annotations

import os

import pytest
from infra_helpers import Manifest, find_tool, render


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The helm binary. Absent: skipped, unless BOCAGE_REQUIRE_HELM=1 (CI), where it fails."""
    found = find_tool("helm")
    if found is None:
        reason = "helm is not installed: infra/kind/install-tools.sh helm builds it"
        if os.environ.get("BOCAGE_REQUIRE_HELM") == "1":
            pytest.fail(reason + " (BOCAGE_REQUIRE_HELM=1)")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="session")
def default_objects(helm_bin: str) -> list[Manifest]:
    """The chart rendered with its default values."""
    return render(helm_bin)
