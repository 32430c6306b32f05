"""``GET /api/v1/sensors/{id}/quantiles``: merged native sketches, scoping, problems."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from litestar.testing import AsyncTestClient
from territory_sample import A, register

import bocage_native
from bocage.api import ApiSettings, create_app
from bocage.api.access import ApiKey, hash_key
from bocage.store import FrameReadings, Store, sketch_table

HOUR = 3_600_000
START = datetime(2025, 3, 10, 0, 0, tzinfo=UTC)
KEYS = (ApiKey(name="mairie A", sha256=hash_key("key-a"), territory=A),)


def frame(sensor: str, number: int, values: np.ndarray, start: datetime) -> FrameReadings:
    """Readings of one frame of ``sensor``, one a minute from ``start``."""
    t0 = int(start.timestamp() * 1000)
    return FrameReadings(
        territory=A,
        frame_id=f"{A}:gw-a:{number}",
        sensors=[sensor],
        metrics=["power"],
        series_index=np.zeros(len(values), np.uint32),
        timestamps=t0 + np.arange(len(values), dtype=np.int64) * 60_000,
        values=values,
    )


@pytest.fixture
def readings(store: Store) -> dict[str, np.ndarray]:
    """Six frames of 100 minutes for lc-a1 (public) and one for cnt-a (not public)."""
    rng = np.random.default_rng(5)
    parts = [rng.gamma(2.0, 300.0, 100) for _ in range(6)]
    frames = [
        frame("lc-a1", i + 1, v, START + timedelta(minutes=100 * i)) for i, v in enumerate(parts)
    ]
    counts = rng.integers(0, 40, 60).astype(np.float64)
    frames.append(frame("cnt-a", 99, counts, START))
    store.insert_sketches(sketch_table(frames))
    return {"lc-a1": np.concatenate(parts), "cnt-a": counts}


@pytest.fixture
async def scoped(store: Store) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(ApiSettings(keys=KEYS), store=store, register=register())
    async with AsyncTestClient(app=app) as c:
        yield c


def url(sensor: str) -> str:
    return f"/api/v1/sensors/{sensor}/quantiles"


PERIOD = {"metric": "power", "from": "2025-03-10", "to": "2025-03-11T00:00:00Z"}


async def test_quantiles_merge_frames_and_hours_within_one_percent(
    client: AsyncTestClient,
    readings: dict[str, np.ndarray],  # type: ignore[type-arg]
) -> None:
    r = await client.get(url("lc-a1"), params={**PERIOD, "q": "0,0.25,0.5,0.9,0.99,1"})
    assert r.status_code == 200, r.text
    body = r.json()
    v = readings["lc-a1"]
    assert body["sensor"] == "lc-a1"
    assert body["territory"] == A
    assert body["metric"] == "power"
    assert body["from"].startswith("2025-03-10T00:00:00")
    assert body["to"].startswith("2025-03-11")
    assert body["count"] == 600
    assert body["hours"] == 10
    assert body["min"] == v.min()
    assert body["max"] == v.max()
    assert body["mean"] == pytest.approx(v.mean())
    assert body["relative_accuracy"] == 0.01
    assert [item["q"] for item in body["quantiles"]] == [0, 0.25, 0.5, 0.9, 0.99, 1]
    for item in body["quantiles"]:
        truth = float(np.quantile(v, item["q"], method="lower"))
        assert abs(item["value"] - truth) <= 0.01 * abs(truth)
        assert item["lower"] <= truth <= item["upper"]
    # a sub-period: only the hours it covers (from rounded down, to rounded up to the hour)
    r = await client.get(
        url("lc-a1"),
        params={**PERIOD, "from": "2025-03-10T01:30:00+00:00", "to": "2025-03-10T02:10:00Z"},
    )
    body = r.json()
    assert body["from"].startswith("2025-03-10T01:00:00")
    assert body["hours"] == 2
    minutes = (np.arange(600) // 60).astype(int)  # hour of each reading since START
    assert body["count"] == int(np.isin(minutes, [1, 2]).sum())


async def test_no_data_is_an_empty_answer_not_an_error(
    client: AsyncTestClient,
    readings: dict[str, np.ndarray],  # type: ignore[type-arg]
) -> None:
    r = await client.get(url("lc-a1"), params={**PERIOD, "metric": "energy"})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 0
    assert body["min"] is None
    assert all(item["value"] is None for item in body["quantiles"])


async def test_a_private_sensor_needs_its_territory_key(
    scoped: AsyncTestClient,
    readings: dict[str, np.ndarray],  # type: ignore[type-arg]
) -> None:
    r = await scoped.get(url("cnt-a"), params=PERIOD)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await scoped.get(url("cnt-a"), params=PERIOD, headers={"X-API-Key": "key-a"})
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 60
    median = float(np.quantile(readings["cnt-a"], 0.5, method="lower"))
    assert abs(r.json()["quantiles"][0]["value"] - median) <= 0.01 * median


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"q": "0.5,1.5"}, "q"),
        ({"q": "median"}, "q"),
        ({"q": "nan"}, "q"),
        ({"q": ""}, "q"),
        ({"metric": ""}, "metric"),
        ({"from": "2025-13-01"}, "from"),
        ({"from": "2025-03-10T00:00:00"}, "from"),  # no time zone
        ({"from": "2025-03-12"}, "from"),  # after `to`
        ({"from": "2020-01-01"}, "to"),  # longer than 366 days
        ({"territory": "99999"}, None),  # unknown territory: 404
    ],
)
async def test_bad_input_is_a_problem_naming_the_parameter(
    client: AsyncTestClient,  # type: ignore[type-arg]
    params: dict[str, str],
    name: str | None,
) -> None:
    r = await client.get(url("lc-a1"), params={**PERIOD, **params})
    assert r.headers["content-type"].startswith("application/problem+json")
    if name is None:
        assert r.status_code == 404
        return
    assert r.status_code == 400, r.text
    assert r.json()["invalid_params"][0]["name"] == name
    assert f"`{name}`" in r.json()["detail"]


async def test_unknown_sensor_is_404(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    r = await client.get(url("nope"), params=PERIOD)
    assert r.status_code == 404
    assert "nope" in r.json()["detail"]


def test_sketches_stay_small() -> None:
    sketch = bocage_native.QuantileSketch(0.01)
    sketch.add(np.random.default_rng(0).lognormal(0, 4, 100_000))
    assert len(sketch.to_bytes()) <= 5 * 1024
