"""OGC SensorThings API 1.1 read endpoints over the register and real readings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar.testing import AsyncTestClient
from territory_sample import A, B, Writer, at, base_day, register

from bocage.api.sta import DATASTREAM_BITS, TS_BITS, Model, stable_ids

STA = "/sta/v1.1"


def local(url: str) -> str:
    """The path and query of an absolute link (links use the configured public URL)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def get_json(client: AsyncTestClient, url: str, **params: Any) -> Any:
    r = await client.get(url, params=params or None)
    assert r.status_code == 200, r.text
    return r.json()


def test_ids_are_stable_numbers_and_distinct() -> None:
    keys = [f"k{i}" for i in range(3000)]
    ids = stable_ids(keys, 12)  # 3000 keys in 4095 slots: many collisions, all resolved
    assert len(set(ids.values())) == 3000
    assert all(0 < i < 2**12 for i in ids.values())
    assert stable_ids(["a", "b"], 31) == stable_ids(["b", "a"], 31)
    model = Model.of(register())
    assert all(0 < i < 2**DATASTREAM_BITS for i in model.streams)
    # private sensors are not published
    assert all(s.id != "cnt-a" for _, _, s in model.things.values())


async def test_service_root_lists_entity_sets(client: AsyncTestClient) -> None:
    body = await get_json(client, STA)
    names = {e["name"] for e in body["value"]}
    assert {"Things", "Datastreams", "Observations", "Locations", "Sensors",
            "ObservedProperties"} <= names


async def test_things_and_their_datastreams(client: AsyncTestClient) -> None:
    things = await get_json(client, f"{STA}/Things", **{"$count": "true"})
    assert things["@iot.count"] == 7  # public sensors: cnt-a is not public
    by_sensor = {t["properties"]["sensor"]: t for t in things["value"]}
    aq = by_sensor["aq-a"]
    assert isinstance(aq["@iot.id"], int)
    assert aq["properties"]["territory"] == A
    assert aq["properties"]["purpose"] == "Measure outdoor air quality (ATMO index inputs)"
    streams = await get_json(client, local(aq["Datastreams@iot.navigationLink"]))
    names = sorted(s["unitOfMeasurement"]["name"] for s in streams["value"])
    assert len(streams["value"]) == 5  # pm10, pm25, no2, o3, temperature
    assert names == ["Cel", "ug/m3", "ug/m3", "ug/m3", "ug/m3"]
    one = await get_json(client, local(aq["@iot.selfLink"]))
    assert one["@iot.id"] == aq["@iot.id"]
    locations = await get_json(client, local(aq["Locations@iot.navigationLink"]))
    assert locations["value"][0]["location"] == {"type": "Point", "coordinates": [-1.6, 48.1]}


async def test_paging_with_next_link(client: AsyncTestClient) -> None:
    page = await get_json(client, f"{STA}/Things", **{"$top": "3"})
    seen = [t["@iot.id"] for t in page["value"]]
    while "@iot.nextLink" in page:
        page = await get_json(client, local(page["@iot.nextLink"]))
        seen += [t["@iot.id"] for t in page["value"]]
    assert len(seen) == 7
    assert seen == sorted(seen)


async def test_observations_of_a_datastream_with_filter_order_and_paging(
    client: AsyncTestClient, writer: Writer
) -> None:
    d = base_day()
    times = [at(d, f"{h:02d}:00") for h in range(6)]
    writer.add(B, "wm-b", "flow", [(t, float(i)) for i, t in enumerate(times)])
    writer.add(B, "wm-b", "flow", [(at(d, "06:00"), 9.0)], quality=2)
    model = Model.of(register())
    stream = model.by_key[(B, "wm-b", "flow")]
    url = f"{STA}/Datastreams({stream})/Observations"

    everything = await get_json(client, url, **{"$count": "true"})
    assert everything["@iot.count"] == 7
    assert [o["result"] for o in everything["value"]] == [0, 1, 2, 3, 4, 5, 9]
    assert everything["value"][-1]["resultQuality"] == 2
    first = everything["value"][0]
    assert first["phenomenonTime"] == times[0].isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
    assert first["@iot.id"] == (stream << TS_BITS) + int(times[0].timestamp() * 1000)

    since = times[2].isoformat().replace("+00:00", "Z")
    filtered = await get_json(client, url, **{
        "$filter": f"phenomenonTime ge {since} and result lt 5",
        "$orderby": "phenomenonTime desc", "$top": "2",
    })
    assert [o["result"] for o in filtered["value"]] == [4, 3]
    nxt = await get_json(client, local(filtered["@iot.nextLink"]))
    assert [o["result"] for o in nxt["value"]] == [2]
    assert "@iot.nextLink" not in nxt

    one = await get_json(client, local(first["@iot.selfLink"]))
    assert one["result"] == 0
    ds = await get_json(client, local(first["Datastream@iot.navigationLink"]))
    assert ds["@iot.id"] == stream


async def test_observation_collection_and_unknown_ids(
    client: AsyncTestClient, writer: Writer
) -> None:
    d = base_day()
    writer.add(A, "lc-a1", "power", [(at(d, "20:00"), 1500.0)])
    writer.add(A, "cnt-a", "count", [(at(d, "20:00"), 42.0)])  # private: never served
    body = await get_json(client, f"{STA}/Observations")
    assert [o["result"] for o in body["value"]] == [1500.0]
    model = Model.of(register())
    missing = (model.by_key[(A, "lc-a1", "power")] << TS_BITS) + 1
    r = await client.get(f"{STA}/Observations({missing})")
    assert r.status_code == 404
    r = await client.get(f"{STA}/Things(1)")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_unsupported_options_are_400_problems(client: AsyncTestClient) -> None:
    r = await client.get(f"{STA}/Things", params={"$expand": "Datastreams"})
    assert r.status_code == 400
    assert r.json()["invalid_params"][0]["name"] == "$expand"
    r = await client.get(f"{STA}/Observations", params={"$filter": "foo eq 1"})
    assert r.status_code == 400
    assert "$filter" in r.json()["detail"]
    r = await client.get(f"{STA}/Observations",
                         params={"$filter": "phenomenonTime ge 2025-01-01T00:00:00"})
    assert r.status_code == 400  # no time zone
    r = await client.get(f"{STA}/Things", params={"$top": "-1"})
    assert r.status_code == 400
    r = await client.get(f"{STA}/Nothing")
    assert r.status_code == 404
