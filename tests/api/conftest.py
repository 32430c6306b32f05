"""The API against a real chDB store (one database per test) holding real readings."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

# The sample territory, its reading writer and the store fixtures are shared with the
# indicator tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "indicators"))

from territory_sample import register, store, writer

from bocage.api import ApiSettings, create_app
from bocage.indicators import IndicatorsSettings
from bocage.store import Store

__all__ = ["client", "store", "writer"]


@pytest.fixture
async def client(store: Store) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """A test client of an app over ``store`` and the sample register (no result cache)."""
    app = create_app(
        ApiSettings(), store=store, register=register(),
        indicators=IndicatorsSettings(cache_seconds=0),
    )
    async with AsyncTestClient(app=app) as c:
        yield c
