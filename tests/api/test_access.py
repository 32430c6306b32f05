"""Territory scoping: open data for everyone, a territory's non-public data for its key only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient
from territory_sample import EPCI, A, Writer, at, base_day, register

from bocage.api import ApiSettings, create_app
from bocage.api.access import ApiKey, Scope, hash_key
from bocage.api.sta import TS_BITS, Model
from bocage.store import Store

KEYS = (
    ApiKey(name="mairie A", sha256=hash_key("key-a"), territory=A),
    ApiKey(name="mairie B", sha256=hash_key("key-b"), territory="35002"),
    ApiKey(name="CC", sha256=hash_key("key-epci"), territory=EPCI),
    ApiKey(name="syndicat", sha256=hash_key("key-union")),
)


@pytest.fixture
async def scoped(store: Store) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(ApiSettings(keys=KEYS), store=store, register=register())
    async with AsyncTestClient(app=app) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def sensor_ids(client: AsyncTestClient, headers: dict[str, str]) -> set[str]:
    r = await client.get("/api/v1/sensors", headers=headers)
    assert r.status_code == 200, r.text
    return {s["id"] for s in r.json()}


async def test_private_sensor_is_seen_by_its_territory_only(scoped: AsyncTestClient) -> None:
    public = await sensor_ids(scoped, {})
    assert "cnt-a" not in public
    assert await sensor_ids(scoped, bearer("key-a")) == public | {"cnt-a"}
    assert await sensor_ids(scoped, {"X-API-Key": "key-a"}) == public | {"cnt-a"}
    assert await sensor_ids(scoped, bearer("key-b")) == public  # another commune: no
    assert await sensor_ids(scoped, bearer("key-epci")) == public | {"cnt-a"}  # its commune
    assert await sensor_ids(scoped, bearer("key-union")) == public | {"cnt-a"}
    r = await scoped.get("/api/v1/sensors", headers=bearer("key-a"), params={"territory": A})
    private = next(s for s in r.json() if s["id"] == "cnt-a")
    assert private["public"] is False


async def test_unknown_key_is_401_not_public_data(scoped: AsyncTestClient) -> None:
    r = await scoped.get("/api/v1/sensors", headers=bearer("key-typo"))
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await scoped.get("/sta/v1.1/Things", headers=bearer("key-typo"))
    assert r.status_code == 401


async def test_sensorthings_observations_of_a_private_sensor_are_isolated(
    scoped: AsyncTestClient, writer: Writer
) -> None:
    d = base_day()
    writer.add(A, "cnt-a", "count", [(at(d, "12:00"), 42.0)])
    stream = Model.of(register(), scope=Scope(None)).by_key[(A, "cnt-a", "count")]
    url = f"/sta/v1.1/Datastreams({stream})/Observations"
    r = await scoped.get(url, headers=bearer("key-a"))
    assert r.status_code == 200
    assert [o["result"] for o in r.json()["value"]] == [42.0]
    obs_id = r.json()["value"][0]["@iot.id"]
    assert obs_id >> TS_BITS == stream
    for headers in ({}, bearer("key-b")):
        r = await scoped.get(url, headers=headers)
        assert r.status_code == 404
        r = await scoped.get(f"/sta/v1.1/Observations({obs_id})", headers=headers)
        assert r.status_code == 404
        r = await scoped.get("/sta/v1.1/Observations", headers=headers)
        assert r.json()["value"] == []
        things = (await scoped.get("/sta/v1.1/Things", headers=headers)).json()["value"]
        assert "cnt-a" not in {t["properties"]["sensor"] for t in things}

