"""OGC SensorThings API 1.1, read part, at ``/sta/v1.1`` (open data: public sensors only).

The model is mapped from the register and the readings:

| SensorThings | Bocage |
|---|---|
| Thing | a public sensor in public space (cabinet, meter, station), with its register entry |
| Location | where that sensor is (GeoJSON point), when the register gives coordinates |
| Sensor | a sensor kind (the procedure: "Street-lighting cabinet"...) |
| ObservedProperty | a metric name (``energy``, ``pm10``...) |
| Datastream | one (sensor, metric) series, with its unit |
| Observation | one reading (``phenomenonTime`` = its time, ``result`` = its value) |

``@iot.id`` are numbers, stable while the register does not change: a hash of the entity's
natural key, with collisions resolved in key order. An Observation's id encodes its
Datastream and its time (``datastream_id × 2^43 + epoch ms``), so it can be resolved without a
lookup table. Query options: ``$top`` (default 100, at most 1000), ``$skip``, ``$count``,
``$select``, ``$orderby`` (``phenomenonTime``/``@iot.id``, ``asc``/``desc``) and ``$filter``
on Observations (``phenomenonTime``/``resultTime`` or ``result`` compared with ``eq ne gt ge
lt le``, joined by ``and``). ``$expand`` and other filters answer a 400 problem saying so.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Request, get
from litestar.datastructures import State
from litestar.params import FromPath

from bocage.api.access import PUBLIC, Scope, scope_of
from bocage.api.problems import bad_parameter, not_found
from bocage.api.routes import resources
from bocage.core.register import SENSOR_KINDS, Gateway, Register, Sensor, Territory

BASE: Final = "/sta/v1.1"
TS_BITS: Final = 43
"""Bits of an Observation id holding the epoch milliseconds (until the year 2248)."""
DATASTREAM_BITS: Final = 20
"""Bits of a Datastream id, so that an Observation id fits a signed 64-bit integer."""
DEFAULT_TOP: Final = 100
MAX_TOP: Final = 1000
OM_MEASUREMENT: Final = (
    "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
)
ENTITY_SETS: Final = (
    "Things", "Locations", "HistoricalLocations", "Datastreams", "Sensors",
    "ObservedProperties", "Observations", "FeaturesOfInterest",
)
_PATH = re.compile(r"^(?P<set>[A-Za-z]+)(?:\((?P<id>\d+)\))?(?:/(?P<nav>[A-Za-z]+))?$")
_UCUM = {"W": "W", "Wh": "W.h", "1": "1", "L/h": "L/h", "L": "L", "ug/m3": "ug/m3",
         "Cel": "Cel", "%": "%"}


def _hash(key: str, bits: int) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % ((1 << bits) - 1) + 1  # never 0


def stable_ids(keys: Iterable[str], bits: int) -> dict[str, int]:
    """Numeric ids for ``keys``: a hash, probing upwards in key order on a collision."""
    unique = sorted(set(keys))
    if len(unique) >= (1 << bits) - 1:
        raise ValueError(f"{len(unique)} keys do not fit {bits}-bit ids")
    out: dict[str, int] = {}
    taken: set[int] = set()
    for key in unique:
        n = _hash(key, bits)
        while n in taken:
            n = n % ((1 << bits) - 1) + 1
        taken.add(n)
        out[key] = n
    return out


@dataclass(frozen=True)
class _Stream:
    id: int
    thing: int
    sensor: int
    prop: int
    territory: str
    sensor_id: str
    metric: str
    unit: str
    title: str


@dataclass
class Model:
    """The SensorThings entities of a register (public sensors only), built once per app."""

    things: dict[int, tuple[Territory, Gateway, Sensor]] = field(default_factory=dict)
    sensors: dict[int, str] = field(default_factory=dict)
    """Sensor id → sensor kind name."""
    props: dict[int, str] = field(default_factory=dict)
    """ObservedProperty id → metric name."""
    streams: dict[int, _Stream] = field(default_factory=dict)
    by_key: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, register: Register, scope: Scope = PUBLIC) -> Model:
        """The entities of the sensors of ``register`` visible in ``scope``.

        Ids depend only on natural keys, so an entity has the same id in every scope (except
        after a hash collision with an entity another scope cannot see).
        """
        public = [(t, g, s) for t, g, s in register.sensors() if scope.sees(t.code, s.public)]
        thing_ids = stable_ids((f"{t.code}/{s.id}" for t, _, s in public), 31)
        kinds = sorted({s.kind for _, _, s in public if s.kind in SENSOR_KINDS})
        sensor_ids = stable_ids(kinds, 31)
        metrics = sorted({m.name for k in kinds for m in SENSOR_KINDS[k].metrics})
        prop_ids = stable_ids(metrics, 31)
        keys = [
            (t.code, s.id, m.name) for t, _, s in public if s.kind in SENSOR_KINDS
            for m in SENSOR_KINDS[s.kind].metrics
        ]
        stream_ids = stable_ids(("/".join(k) for k in keys), DATASTREAM_BITS)
        model = cls(sensors={v: k for k, v in sensor_ids.items()},
                    props={v: k for k, v in prop_ids.items()})
        for t, g, s in public:
            model.things[thing_ids[f"{t.code}/{s.id}"]] = (t, g, s)
        for t, _, s in public:
            if s.kind not in SENSOR_KINDS:
                continue
            for m in SENSOR_KINDS[s.kind].metrics:
                sid = stream_ids[f"{t.code}/{s.id}/{m.name}"]
                model.streams[sid] = _Stream(
                    id=sid, thing=thing_ids[f"{t.code}/{s.id}"], sensor=sensor_ids[s.kind],
                    prop=prop_ids[m.name], territory=t.code, sensor_id=s.id, metric=m.name,
                    unit=m.unit, title=f"{m.name} of {s.name or s.id}",
                )
                model.by_key[(t.code, s.id, m.name)] = sid
        return model

    def thing_of(self, territory: str, sensor: str) -> int | None:
        """The Thing id of a sensor."""
        return next(
            (i for i, (t, _, s) in self.things.items() if t.code == territory and s.id == sensor),
            None,
        )


# -- query options -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Parsed ``$`` query options."""

    top: int
    skip: int
    count: bool
    select: tuple[str, ...] | None
    descending: bool
    order: str
    """``id`` or ``time``."""
    filters: tuple[tuple[str, str, Any], ...]
    raw: Mapping[str, str]


_OPS = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_CLAUSE = re.compile(
    r"^\s*(?P<field>phenomenonTime|resultTime|result)\s+(?P<op>eq|ne|gt|ge|lt|le)\s+"
    r"(?P<value>\S+)\s*$"
)


def _int_option(raw: Mapping[str, str], name: str, default: int, upper: int | None) -> int:
    text = raw.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise bad_parameter(name, f"expected a non-negative integer, got {text!r}")
    value = int(text)
    if upper is not None and value > upper:
        raise bad_parameter(name, f"at most {upper}")
    return value


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_parameter("$filter", f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise bad_parameter("$filter", f"{text!r} needs a time zone (e.g. Z)")
    return moment


def parse_options(raw: Mapping[str, str], *, observations: bool) -> Options:
    """Validate the query options; anything unsupported is a 400 problem naming it."""
    for name in raw:
        if name.startswith("$") and name not in (
            "$top", "$skip", "$count", "$select", "$orderby", "$filter", "$resultFormat"
        ):
            raise bad_parameter(name, "this query option is not supported by this server")
    count_text = raw.get("$count", "false")
    if count_text not in ("true", "false"):
        raise bad_parameter("$count", "expected true or false")
    select = None
    if "$select" in raw:
        select = tuple(p.strip() for p in raw["$select"].split(",") if p.strip())
    order, descending = "id", False
    if "$orderby" in raw:
        parts = raw["$orderby"].split()
        allowed = {"id", "@iot.id"} | ({"phenomenonTime", "resultTime"} if observations else set())
        if not parts or parts[0] not in allowed or len(parts) > 2 or (
            len(parts) == 2 and parts[1] not in ("asc", "desc")
        ):
            raise bad_parameter(
                "$orderby", f"supported: {', '.join(sorted(allowed))}, optionally asc or desc"
            )
        order = "time" if parts[0] in ("phenomenonTime", "resultTime") else "id"
        descending = len(parts) == 2 and parts[1] == "desc"
    filters: list[tuple[str, str, Any]] = []
    if "$filter" in raw:
        if not observations:
            raise bad_parameter("$filter", "supported on Observations only")
        for clause in re.split(r"\s+and\s+", raw["$filter"].strip()):
            match = _CLAUSE.match(clause)
            if match is None:
                raise bad_parameter(
                    "$filter",
                    f"cannot read {clause!r}: supported are phenomenonTime, resultTime or result"
                    " compared (eq ne gt ge lt le) with a time or a number, joined by `and`",
                )
            fld, op, value = match["field"], _OPS[match["op"]], match["value"]
            if fld == "result":
                try:
                    filters.append(("value", op, float(value)))
                except ValueError:
                    raise bad_parameter("$filter", f"{value!r} is not a number") from None
            else:
                filters.append(("ts", op, _parse_time(value)))
    return Options(
        top=_int_option(raw, "$top", DEFAULT_TOP, MAX_TOP),
        skip=_int_option(raw, "$skip", 0, None),
        count=count_text == "true",
        select=select,
        descending=descending,
        order=order,
        filters=tuple(filters),
        raw=raw,
    )


# -- entities ------------------------------------------------------------------------------------


class _View:
    """Renders entities with absolute links under the public URL."""

    def __init__(self, base_url: str, model: Model) -> None:
        self.base = base_url.rstrip("/") + BASE
        self.model = model

    def _links(self, name: str, ident: int, navs: Iterable[str]) -> dict[str, Any]:
        self_link = f"{self.base}/{name}({ident})"
        out: dict[str, Any] = {"@iot.id": ident, "@iot.selfLink": self_link}
        for nav in navs:
            out[f"{nav}@iot.navigationLink"] = f"{self_link}/{nav}"
        return out

    def thing(self, ident: int) -> dict[str, Any]:
        t, g, s = self.model.things[ident]
        kind = SENSOR_KINDS.get(s.kind)
        return {
            **self._links("Things", ident, ("Locations", "Datastreams", "HistoricalLocations")),
            "name": s.name or s.id,
            "description": kind.title if kind else s.kind,
            "properties": {
                "sensor": s.id, "territory": t.code, "territoryName": t.name, "gateway": g.id,
                "kind": s.kind, "purpose": kind.purpose if kind else "",
                "personalData": s.personal_data, "legalBasis": s.legal_basis,
                "controller": s.controller or t.name,
                "retentionDays": s.retention_days if s.retention_days is not None
                else (kind.retention_days if kind else None),
            },
        }

    def location(self, ident: int) -> dict[str, Any]:
        _, _, s = self.model.things[ident]
        return {
            **self._links("Locations", ident, ("Things", "HistoricalLocations")),
            "name": f"Location of {s.name or s.id}",
            "description": "Position declared in the sensor register",
            "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [s.longitude, s.latitude]},
        }

    def sensor(self, ident: int) -> dict[str, Any]:
        kind = SENSOR_KINDS[self.model.sensors[ident]]
        return {
            **self._links("Sensors", ident, ("Datastreams",)),
            "name": kind.title,
            "description": kind.purpose,
            "encodingType": "text/plain",
            "metadata": f"Bocage sensor kind `{kind.name}`",
        }

    def prop(self, ident: int) -> dict[str, Any]:
        metric = self.model.props[ident]
        return {
            **self._links("ObservedProperties", ident, ("Datastreams",)),
            "name": metric,
            "definition": f"https://bocage.invalid/def/metric/{metric}",
            "description": f"Bocage metric `{metric}`",
        }

    def stream(self, ident: int) -> dict[str, Any]:
        st = self.model.streams[ident]
        return {
            **self._links(
                "Datastreams", ident, ("Thing", "Sensor", "ObservedProperty", "Observations")
            ),
            "name": st.title,
            "description": f"{st.metric} ({st.unit}) of sensor {st.sensor_id} in {st.territory}",
            "observationType": OM_MEASUREMENT,
            "unitOfMeasurement": {
                "name": st.unit, "symbol": st.unit,
                "definition": f"http://unitsofmeasure.org/ucum.html#{_UCUM.get(st.unit, st.unit)}",
            },
        }

    def observation(self, stream: int, ts: datetime, value: float, quality: int) -> dict[str, Any]:
        # the store returns naive datetimes that are UTC (the column's time zone)
        ms = round((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp() * 1000)
        ident = (stream << TS_BITS) + ms
        when = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        return {
            **self._links("Observations", ident, ("Datastream", "FeatureOfInterest")),
            "phenomenonTime": when.replace("+00:00", "Z"),
            "resultTime": when.replace("+00:00", "Z"),
            "result": value,
            "resultQuality": quality,
        }


def _page(
    request_path: str,
    base: str,
    items: list[dict[str, Any]],
    *,
    total: int | None,
    more: bool,
    opts: Options,
) -> dict[str, Any]:
    if opts.select is not None:
        keep = set(opts.select) | {"@iot.id"}
        items = [{k: v for k, v in item.items() if k in keep} for item in items]
    out: dict[str, Any] = {}
    if total is not None:
        out["@iot.count"] = total
    if more:
        params = dict(opts.raw)
        params["$top"] = str(opts.top)
        params["$skip"] = str(opts.skip + opts.top)
        out["@iot.nextLink"] = f"{base}{request_path}?{urlencode(params)}"
    out["value"] = items
    return out


def _slice(ids: list[int], opts: Options) -> tuple[list[int], int, bool]:
    ordered = sorted(ids, reverse=opts.descending)
    window = ordered[opts.skip : opts.skip + opts.top]
    return window, len(ordered), opts.skip + opts.top < len(ordered)


# -- observations --------------------------------------------------------------------------------


def _observations_sql(table: str, opts: Options, *, with_count: bool) -> tuple[str, str]:
    where = ["(territory, sensor, metric) IN {series:Array(Tuple(String, String, String))}"]
    for i, (col, op, _) in enumerate(opts.filters):
        typ = "Float64" if col == "value" else "Int64"
        rhs = (
            f"{{f{i}:{typ}}}"
            if col == "value"
            else f"fromUnixTimestamp64Milli({{f{i}:Int64}}, 'UTC')"
        )
        where.append(f"{col} {op} {rhs}")
    cond = " AND ".join(where)
    direction = "DESC" if opts.descending else "ASC"
    key = "transform(concat(territory, '/', sensor, '/', metric), {keys:Array(String)}, " \
          "{ids:Array(UInt64)}, toUInt64(0))"
    order = f"ts {direction}, stream {direction}" if opts.order == "time" else \
        f"stream {direction}, ts {direction}"
    rows = (
        f"SELECT {key} AS stream, ts, max(value), max(quality) FROM {table} WHERE {cond} "
        f"GROUP BY stream, ts ORDER BY {order} LIMIT {{limit:UInt32}} OFFSET {{offset:UInt64}}"
    )
    count = f"SELECT count() FROM (SELECT DISTINCT territory, sensor, metric, ts FROM {table} " \
            f"WHERE {cond})" if with_count else ""
    return rows, count


async def _observations(
    request: Request[Any, Any, Any], state: State, streams: list[int], opts: Options, path: str
) -> dict[str, Any]:
    res = resources(state)
    model = _model(request, state)
    view = _View(res.settings.public_url, model)
    series = [
        (model.streams[s].territory, model.streams[s].sensor_id, model.streams[s].metric)
        for s in streams
    ]
    if not series:
        return _page(path, view.base, [], total=0 if opts.count else None, more=False, opts=opts)
    params: dict[str, Any] = {
        "series": series,
        "keys": ["/".join(k) for k in series],
        "ids": streams,
        "limit": opts.top + 1,
        "offset": opts.skip,
    }
    for i, (col, _, value) in enumerate(opts.filters):
        params[f"f{i}"] = value if col == "value" else int(value.timestamp() * 1000)
    rows_sql, count_sql = _observations_sql(
        res.store.table("readings"), opts, with_count=opts.count
    )

    def run() -> tuple[list[Any], int | None]:
        rows = list(res.store.query(rows_sql, params))
        total = int(res.store.query(count_sql, params)[0][0]) if count_sql else None
        return rows, total

    rows, total = await asyncio.to_thread(run)
    more = len(rows) > opts.top
    items = [view.observation(int(s), ts, float(v), int(q)) for s, ts, v, q in rows[: opts.top]]
    return _page(path, view.base, items, total=total, more=more, opts=opts)


def _model(request: Request[Any, Any, Any], state: State) -> Model:
    """The entities visible to this request (built once per scope, then reused)."""
    res = resources(state)
    scope = scope_of(request, res.settings.keys, res.register)
    models: dict[Scope, Model] = state["sta"]
    model = models.get(scope)
    if model is None:
        model = models[scope] = Model.of(res.register, scope)
    return model


# -- the handler ---------------------------------------------------------------------------------


@get(f"{BASE}", summary="SensorThings API 1.1 service root")
async def service_root(state: State) -> dict[str, Any]:
    """The entity sets and the conformance classes served."""
    base = resources(state).settings.public_url.rstrip("/") + BASE
    return {
        "value": [{"name": n, "url": f"{base}/{n}"} for n in ENTITY_SETS],
        "serverSettings": {"conformance": [
            "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
            "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
            "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
        ]},
    }


@get(f"{BASE}/{{path:path}}", summary="SensorThings API 1.1 entities (read)")
async def entities(request: Request[Any, Any, Any], state: State, path: FromPath[str]) -> Any:
    """``/Things``, ``/Things(1)``, ``/Things(1)/Datastreams``... (see the module docstring)."""
    res = resources(state)
    model = _model(request, state)
    view = _View(res.settings.public_url, model)
    rel = path.lstrip("/")
    match = _PATH.match(rel)
    if match is None or match["set"] not in ENTITY_SETS:
        raise not_found(f"no SensorThings resource {rel!r}")
    entity_set, raw_id, nav = match["set"], match["id"], match["nav"]
    ident = int(raw_id) if raw_id is not None else None
    raw = dict(request.query_params.items())
    target = nav or entity_set
    opts = parse_options(raw, observations=target == "Observations")
    link_path = f"/{rel}"

    # which entity sets hold what: one (render, ids) pair per set
    table: dict[str, tuple[Callable[[int], dict[str, Any]], list[int]]] = {
        "Things": (view.thing, list(model.things)),
        "Locations": (view.location, [i for i, (_, _, s) in model.things.items()
                                      if s.latitude is not None and s.longitude is not None]),
        "Sensors": (view.sensor, list(model.sensors)),
        "ObservedProperties": (view.prop, list(model.props)),
        "Datastreams": (view.stream, list(model.streams)),
        "HistoricalLocations": (view.thing, []),
        "FeaturesOfInterest": (view.thing, []),
    }

    if entity_set == "Observations":
        if ident is None and nav is None:
            return await _observations(request, state, list(model.streams), opts, link_path)
        assert ident is not None
        stream, ms = ident >> TS_BITS, ident & ((1 << TS_BITS) - 1)
        if stream not in model.streams:
            raise not_found(f"no Observation {ident}")
        moment = datetime.fromtimestamp(ms / 1000, UTC)
        single = Options(top=1, skip=0, count=False, select=None, descending=False, order="id",
                         filters=(("ts", "=", moment),), raw={})
        page = await _observations(request, state, [stream], single, link_path)
        if not page["value"]:
            raise not_found(f"no Observation {ident}")
        if nav == "Datastream":
            return view.stream(stream)
        if nav is not None:
            raise not_found(f"Observations have no {nav!r} here")
        return page["value"][0]

    render, ids = table[entity_set]
    if ident is not None and ident not in ids:
        raise not_found(f"no {entity_set[:-1]} {ident}")
    if ident is None:
        if nav is not None:
            raise not_found(f"{entity_set} needs an id before /{nav}")
        window, total, more = _slice(ids, opts)
        return _page(link_path, view.base, [render(i) for i in window],
                     total=total if opts.count else None, more=more, opts=opts)
    if nav is None:
        item = render(ident)
        if opts.select is not None:
            keep = set(opts.select) | {"@iot.id"}
            item = {k: v for k, v in item.items() if k in keep}
        return item
    return await _navigate(
        request, state, view=view, model=model, entity_set=entity_set, ident=ident, nav=nav,
        opts=opts, link_path=link_path,
    )


async def _navigate(
    request: Request[Any, Any, Any],
    state: State,
    *,
    view: _View,
    model: Model,
    entity_set: str,
    ident: int,
    nav: str,
    opts: Options,
    link_path: str,
) -> Any:
    related: list[int] | None = None
    render: Callable[[int], dict[str, Any]] | None = None
    single: Callable[[], dict[str, Any]] | None = None
    if entity_set == "Things":
        if nav == "Datastreams":
            related = [s.id for s in model.streams.values() if s.thing == ident]
            render = view.stream
        elif nav == "Locations":
            _, _, s = model.things[ident]
            related = [ident] if s.latitude is not None and s.longitude is not None else []
            render = view.location
        elif nav == "HistoricalLocations":
            related, render = [], view.thing
    elif entity_set == "Locations" and nav == "Things":
        related, render = [ident], view.thing
    elif entity_set in ("Sensors", "ObservedProperties") and nav == "Datastreams":
        attr = "sensor" if entity_set == "Sensors" else "prop"
        related = [s.id for s in model.streams.values() if getattr(s, attr) == ident]
        render = view.stream
    elif entity_set == "Datastreams":
        st = model.streams[ident]
        if nav == "Observations":
            return await _observations(request, state, [ident], opts, link_path)
        if nav == "Thing":
            single = lambda: view.thing(st.thing)  # noqa: E731
        elif nav == "Sensor":
            single = lambda: view.sensor(st.sensor)  # noqa: E731
        elif nav == "ObservedProperty":
            single = lambda: view.prop(st.prop)  # noqa: E731
    if single is not None:
        return single()
    if related is None or render is None:
        raise not_found(f"{entity_set} have no navigation property {nav!r}")
    window, total, more = _slice(related, opts)
    return _page(link_path, view.base, [render(i) for i in window],
                 total=total if opts.count else None, more=more, opts=opts)


ROUTES = [service_root, entities]
