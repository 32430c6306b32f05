"""The HTTP API over a real store: values computed by hand, problems for bad input."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

from litestar.testing import AsyncTestClient
from territory_sample import EPCI, A, B, StatusWriter, Writer, at, base_day, register

from bocage.api import ApiSettings, create_app
from bocage.store import Store

PROBLEM = "application/problem+json"


def lighting(w: Writer) -> None:
    d = base_day()
    w.add(A, "lc-a1", "energy", [(at(d, "01:00"), 1000), (at(d, "20:00"), 3500),
                                 (at(d, "06:00", 1), 4000)])
    w.add(B, "lc-b1", "energy", [(at(d, "00:00"), 0), (at(d, "12:00"), 1200)])


async def test_catalog_lists_every_indicator_with_its_definition(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/indicators")
    assert r.status_code == 200
    body = r.json()
    assert body["timezone"] == "Europe/Paris"
    by_id = {i["id"]: i for i in body["indicators"]}
    assert {"lighting_energy_kwh", "sensor_availability", "atmo_index"} <= set(by_id)
    energy = by_id["lighting_energy_kwh"]
    assert energy["unit"] == "kWh"
    assert "reset" in energy["definition"]
    assert energy["href"] == "/api/v1/indicators/lighting_energy_kwh"


async def test_indicator_values_per_commune_and_epci(
    client: AsyncTestClient, writer: Writer
) -> None:
    lighting(writer)
    d = base_day()
    d1 = d + timedelta(days=1)
    r = await client.get(
        "/api/v1/indicators/lighting_energy_kwh",
        params={"territory": EPCI, "from": d.isoformat(), "to": d1.isoformat()},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == d.isoformat()
    assert body["to"] == d1.isoformat()
    assert body["territory"] == EPCI
    assert body["indicator"]["id"] == "lighting_energy_kwh"
    got = {
        (v["territory"], v["date"]): (round(v["value"], 6), v["sensors"]) for v in body["values"]
    }
    # A: 2500 Wh on d, 500 Wh on d+1; B: 1200 Wh on d
    assert got == {
        (A, d.isoformat()): (2.5, 1),
        (A, d1.isoformat()): (0.5, 1),
        (B, d.isoformat()): (1.2, 1),
        (EPCI, d.isoformat()): (3.7, 2),
        (EPCI, d1.isoformat()): (0.5, 1),
    }


async def test_catalog_lists_the_waste_and_sobriety_indicators(client: AsyncTestClient) -> None:
    body = (await client.get("/api/v1/indicators")).json()
    by_id = {i["id"]: i for i in body["indicators"]}
    assert by_id["waste_bin_overflow"]["sensor_kind"] == "waste_bin"
    assert by_id["waste_bin_overflow"]["aggregation"] == "sum"
    assert by_id["transmission_bytes_per_reading"]["unit"] == "By"
    assert by_id["gateway_energy_per_reading"]["unit"] == "mJ"
    for iid in ("transmission_bytes_per_reading", "gateway_energy_per_reading"):
        assert by_id[iid]["aggregation"] == "ratio"
        assert "gateway_status" in by_id[iid]["definition"]


async def test_ratio_values_are_served_like_the_others(
    client: AsyncTestClient, writer: Writer, store: Store
) -> None:
    lighting(writer)
    d = base_day()
    statuses = StatusWriter(store)
    statuses.add(A, "gw-a", [(at(d, "01:00"), 0, 0, 0.0), (at(d, "13:00"), 1000, 10, 0.25)])
    statuses.add(B, "gw-b", [(at(d, "01:00"), 0, 0, 0.0), (at(d, "13:00"), 3000, 20, 0.5)])
    params = {"territory": EPCI, "from": d.isoformat(), "to": d.isoformat()}
    r = await client.get("/api/v1/indicators/transmission_bytes_per_reading", params=params)
    assert r.status_code == 200, r.text
    values = r.json()["values"]
    got = {v["territory"]: (round(v["value"], 6), v["sensors"]) for v in values}
    # A 1000 / 10, B 3000 / 20, the EPCI (1000 + 3000) / (10 + 20): not (100 + 150) / 2
    assert got == {A: (100.0, 1), B: (150.0, 1), EPCI: (round(4000 / 30, 6), 2)}
    # the numerator and denominator stay internal: the same fields as every indicator
    energy = (await client.get("/api/v1/indicators/lighting_energy_kwh", params=params)).json()
    keys = {"territory", "date", "value", "sensors", "label"}
    assert all(set(v) == keys for v in values)
    assert energy["values"]
    assert all(set(v) == keys for v in energy["values"])


async def test_default_period_is_the_last_days_to_today(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/indicators/sensor_availability", params={"territory": B})
    assert r.status_code == 200
    body = r.json()
    assert body["to"] > body["from"]
    assert all(v["territory"] == B and v["value"] == 0.0 for v in body["values"])


async def test_unknown_indicator_is_a_404_problem(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/indicators/no_such_thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert "no_such_thing" in body["detail"]
    assert body["instance"] == "/api/v1/indicators/no_such_thing"


async def test_bad_dates_are_400_problems_naming_the_parameter(client: AsyncTestClient) -> None:
    url = "/api/v1/indicators/lighting_energy_kwh"
    r = await client.get(url, params={"from": "2025-13-01"})
    assert r.status_code == 400
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert "`from`" in body["detail"]
    assert body["invalid_params"] == [
        {"name": "from", "reason": "expected a date as YYYY-MM-DD, got '2025-13-01'"}
    ]
    r = await client.get(url, params={"to": "yesterday"})
    assert r.status_code == 400
    assert r.json()["invalid_params"][0]["name"] == "to"
    r = await client.get(url, params={"from": "2025-02-01", "to": "2025-01-01"})
    assert r.status_code == 400
    assert "after `to`" in r.json()["detail"]
    r = await client.get(url, params={"from": "2020-01-01", "to": "2025-01-01"})
    assert r.status_code == 400
    assert r.json()["invalid_params"][0]["name"] == "to"


async def test_unknown_territory_is_a_404_problem(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/indicators/lighting_energy_kwh", params={"territory": "99999"})
    assert r.status_code == 404
    assert "99999" in r.json()["detail"]
    r = await client.get("/api/v1/sensors", params={"territory": "99999"})
    assert r.status_code == 404


async def test_unknown_route_and_method_are_problems(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    r = await client.post("/api/v1/indicators")
    assert r.status_code == 405
    assert r.headers["content-type"].startswith(PROBLEM)


async def test_territories(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/territories")
    assert r.status_code == 200
    by_code = {t["code"]: t for t in r.json()}
    assert by_code[EPCI] == {"code": EPCI, "name": "CC du Bocage", "kind": "epci",
                             "parent": None, "gateways": 0, "sensors": 0}
    assert by_code[A]["parent"] == EPCI
    assert by_code[A]["sensors"] == 6


async def test_sensor_register_lists_only_public_sensors(client: AsyncTestClient) -> None:
    r = await client.get("/api/v1/sensors")
    assert r.status_code == 200
    ids = {s["id"] for s in r.json()}
    assert ids == {"lc-a1", "lc-a2", "bm-a", "wm-a", "aq-a", "lc-b1", "wm-b"}  # not cnt-a
    r = await client.get("/api/v1/sensors", params={"territory": A})
    aq = next(s for s in r.json() if s["id"] == "aq-a")
    assert aq["purpose"] == "Measure outdoor air quality (ATMO index inputs)"
    assert aq["personal_data"] is False
    assert aq["retention_days"] == 730
    assert aq["controller"] == "Saint-A"
    assert aq["legal_basis"].startswith("public task")
    assert {"name": "pm10", "unit": "ug/m3"} in aq["metrics"]
    assert (aq["latitude"], aq["longitude"]) == (48.1, -1.6)


async def test_health_is_ready_with_a_reachable_store(client: AsyncTestClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "store": "reachable"}


async def test_health_is_503_when_the_store_is_gone(store: Store) -> None:
    class Unreachable:
        """A store whose server is down: every query fails as the real client would."""

        def table(self, name: str) -> str:
            return store.table(name)

        def query(self, sql: str, parameters: object = None) -> list[tuple[object, ...]]:
            raise ConnectionRefusedError("connection refused")

    app = create_app(ApiSettings(), store=Unreachable(), register=register())
    async with AsyncTestClient(app=app) as c:
        r = await c.get("/health")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "not reachable" in r.json()["detail"]


async def test_store_failure_is_a_500_problem_without_traceback(
    client: AsyncTestClient, store: Store
) -> None:
    store.command(f"DROP TABLE {store.table('readings')}")
    r = await client.get("/api/v1/indicators/lighting_energy_kwh")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert set(body) == {"status", "title", "detail", "type", "instance"}
    assert "Traceback" not in r.text
    assert "readings" not in r.text  # no internal detail leaks


async def test_metrics_count_requests_per_route(client: AsyncTestClient) -> None:
    await client.get("/api/v1/territories")
    await client.get("/api/v1/indicators/nope")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'bocage_api_requests_total{method="GET",route="/api/v1/territories",status="200"} 1.0'
    ) in text
    assert (
        'bocage_api_requests_total{method="GET",route="/api/v1/indicators/{indicator_id}",'
        'status="404"} 1.0'
    ) in text
    assert "bocage_api_request_duration_seconds_bucket" in text


async def test_openapi_schema_documents_the_routes(client: AsyncTestClient) -> None:
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert {"/api/v1/indicators", "/api/v1/indicators/{indicator_id}", "/api/v1/territories",
            "/api/v1/sensors", "/health"} <= set(paths)


async def test_dashboard_shows_latest_values_per_commune(
    client: AsyncTestClient, writer: Writer
) -> None:
    lighting(writer)
    r = await client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "Saint-A" in page
    assert "Saint-B" in page
    assert "CC du Bocage" in page
    assert "Public-lighting energy" in page
    # A's latest lighting value is on d+1: 0.5 kWh (dated, as it is not yesterday's), with a
    # two-point sparkline (d: 2.5 kWh)
    row_a = next(row for row in page.split("<tr") if "Saint-A" in row)
    energy_cell = row_a.split("<td")[2]
    assert "0.5" in energy_cell
    assert (base_day() + timedelta(days=1)).isoformat() in energy_cell
    assert "<polyline" in energy_cell
    assert "<script" not in page


async def test_dashboard_shows_the_sobriety_indicators(
    client: AsyncTestClient, store: Store
) -> None:
    yesterday = base_day() + timedelta(days=9)
    # an ethernet-like gateway: 2500 B and 0.31 mJ for 100 readings
    StatusWriter(store).add(B, "gw-b", [(at(yesterday, "01:00"), 0, 0, 0.0),
                                        (at(yesterday, "13:00"), 2500, 100, 0.31)])
    page = (await client.get("/")).text
    assert "Overflowing waste bins" in page
    assert "Bytes sent per reading (digital sobriety)" in page
    assert "Gateway energy per reading (digital sobriety)" in page
    row_b = next(row for row in page.split("<tr") if "Saint-B" in row)
    cells = row_b.split("<td")
    titles = re.findall(r"<th><a href=\"/api/v1/indicators/(\w+)\"", page)
    by_id = dict(zip(titles, cells[2:], strict=True))
    assert "25.0" in by_id["transmission_bytes_per_reading"]
    assert "0.0031" in by_id["gateway_energy_per_reading"]  # not rounded away to 0.0
    assert "–" in by_id["waste_bin_overflow"]


async def test_csv_export_matches_the_json_values_and_its_table_schema(
    client: AsyncTestClient, writer: Writer
) -> None:
    lighting(writer)
    d = base_day()
    params = {"territory": EPCI, "from": d.isoformat(), "to": (d + timedelta(days=1)).isoformat()}
    r = await client.get("/api/v1/indicators/lighting_energy_kwh.csv", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(row["territory_code"], row["date"], row["value"], row["sensors"]) for row in rows] == [
        (EPCI, d.isoformat(), "3.7", "2"),
        (EPCI, (d + timedelta(days=1)).isoformat(), "0.5", "1"),
        (A, d.isoformat(), "2.5", "1"),
        (A, (d + timedelta(days=1)).isoformat(), "0.5", "1"),
        (B, d.isoformat(), "1.2", "1"),
    ]
    assert rows[0]["territory_name"] == "CC du Bocage"
    assert rows[0]["unit"] == "kWh"

    schema = (await client.get("/api/v1/indicators/lighting_energy_kwh/schema.json")).json()
    fields = schema["fields"]
    assert [f["name"] for f in fields] == list(rows[0])  # same columns, same order
    assert schema["primaryKey"] == ["territory_code", "date"]
    pattern = re.compile(next(f for f in fields if f["name"] == "territory_code")
                         ["constraints"]["pattern"])
    for row in rows:  # every row conforms to the declared types and constraints
        assert pattern.match(row["territory_code"])
        date.fromisoformat(row["date"])
        float(row["value"])
        assert int(row["sensors"]) >= 0
    r = await client.get("/api/v1/indicators/nope.csv")
    assert r.status_code == 404
    r = await client.get("/api/v1/indicators/nope/schema.json")
    assert r.status_code == 404


async def test_dcat_catalogue_lists_each_indicator_with_its_csv_and_schema(
    client: AsyncTestClient,
) -> None:
    r = await client.get("/catalog.jsonld")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/ld+json")
    body = r.json()
    assert body["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
    datasets = body["dcat:dataset"]
    ids = [d["dct:identifier"] for d in datasets]
    assert len(ids) == len(set(ids))
    catalog = (await client.get("/api/v1/indicators")).json()["indicators"]
    assert {f"bocage:{i['id']}" for i in catalog} | {"bocage:sensor-register"} == set(ids)
    energy = next(d for d in datasets if d["dct:identifier"] == "bocage:lighting_energy_kwh")
    csv_dist = next(x for x in energy["dcat:distribution"] if x["dct:format"] == "CSV")
    assert csv_dist["dcat:downloadURL"].endswith("/api/v1/indicators/lighting_energy_kwh.csv")
    assert csv_dist["dct:conformsTo"]["@id"].endswith("/lighting_energy_kwh/schema.json")
    assert body["hydra:totalItems"] == len(datasets)
    assert body["dcat:service"][0]["dcat:endpointURL"].endswith("/sta/v1.1")
