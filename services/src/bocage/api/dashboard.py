"""The dashboard at ``/``: one server-rendered HTML page, no JavaScript, no build step.

A table with one row per territory (groupings first, their communes beneath) and one column per
indicator: the value of the last complete local day (yesterday: today's would be partial and
look like a drop), and an inline SVG sparkline of the days before. It is
meant to be opened by a municipal secretary on any browser, and to weigh a few kilobytes.
"""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

from litestar import Response, get
from litestar.datastructures import State

from bocage.api.routes import resources
from bocage.core.register import Territory
from bocage.indicators import IndicatorValue, Period

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2a1d;background:#fbfcf8}
h1{font-size:1.4rem;margin:0 0 .2rem}p{margin:.2rem 0 1rem;color:#556}
table{border-collapse:collapse;font-size:.9rem}
th,td{padding:.35rem .6rem;border-bottom:1px solid #dde}
th{text-align:left;vertical-align:bottom;font-weight:600}td.v{text-align:right;white-space:nowrap}
tr.group td{font-weight:600;background:#eef3e8}small{color:#667}svg{vertical-align:middle}
a{color:#2d5d2d}
"""


def _sparkline(points: list[tuple[int, float]], days: int) -> str:
    """An inline SVG polyline of (day index, value); empty when fewer than two points."""
    if len(points) < 2:
        return ""
    width, height = 84, 18
    lo = min(v for _, v in points)
    hi = max(v for _, v in points)
    span = (hi - lo) or 1.0
    step = width / max(days - 1, 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 1 - (v - lo) / span * (height - 2):.1f}" for i, v in points
    )
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img"'
        f' aria-label="trend"><polyline fill="none" stroke="#3a7d44" stroke-width="1.5"'
        f' points="{coords}"/></svg>'
    )


def _format(value: float, label: str | None) -> str:
    if label is not None:  # an index: its class number and name
        return f"{value:.0f} <small>{escape(label)}</small>"
    if abs(value) >= 1e6 or 0 < abs(value) < 0.1:  # e.g. millijoules per reading: 0.0031
        text = f"{value:.2g}" if abs(value) < 0.1 else f"{value:.3g}"
    else:
        text = f"{value:,.1f}".replace(",", "\u202f")
    return f"{text} <small>{escape(label)}</small>" if label else text


def _ordered(territories: tuple[Territory, ...]) -> list[tuple[Territory, int]]:
    """Territories as a tree: each grouping followed by what it contains (with depth)."""
    codes = {t.code for t in territories}
    children: dict[str | None, list[Territory]] = {}
    for t in territories:
        parent = t.parent if t.parent in codes else None
        children.setdefault(parent, []).append(t)
    out: list[tuple[Territory, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for t in children.get(parent, []):
            if any(seen.code == t.code for seen, _ in out):
                continue
            out.append((t, depth))
            walk(t.code, depth + 1)

    walk(None, 0)
    return out


@get("/", include_in_schema=False)
async def index(state: State) -> Response[str]:
    """The dashboard page."""
    res = resources(state)
    days = max(res.settings.dashboard_days, 1)
    yesterday = res.indicators.today() - timedelta(days=1)
    period = Period(yesterday - timedelta(days=days - 1), yesterday)
    catalog = list(res.indicators.catalog)
    by_indicator: dict[str, dict[str, list[IndicatorValue]]] = {}
    for indicator in catalog:
        series: dict[str, list[IndicatorValue]] = {}
        for v in await res.indicators.values(indicator, None, period):
            series.setdefault(v.territory, []).append(v)
        by_indicator[indicator.id] = series

    head = "".join(
        f'<th><a href="/api/v1/indicators/{escape(i.id)}" title="{escape(i.definition)}">'
        f"{escape(i.title)}</a><br><small>{escape(i.unit)}</small></th>"
        for i in catalog
    )
    rows = []
    for territory, depth in _ordered(res.register.territories):
        cells = []
        for indicator in catalog:
            values = by_indicator[indicator.id].get(territory.code, [])
            if not values:
                cells.append('<td class="v"><small>–</small></td>')
                continue
            latest = values[-1]
            points = [((v.date - period.first).days, v.value) for v in values]
            when = "" if latest.date == yesterday else f"<br><small>{_day(latest.date)}</small>"
            cells.append(
                f'<td class="v">{_sparkline(points, days)} '
                f"{_format(latest.value, latest.label)}{when}</td>"
            )
        css = ' class="group"' if territory.kind != "commune" else ""
        indent = "&nbsp;" * 4 * depth
        rows.append(
            f"<tr{css}><td>{indent}{escape(territory.name)} <small>{escape(territory.code)}"
            f"</small></td>{''.join(cells)}</tr>"
        )
    tz = escape(res.indicators.settings.timezone)
    body = (
        f'<!doctype html><html lang="fr"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(res.settings.title)} — indicateurs</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(res.settings.title)} — territorial indicators</h1>"
        f"<p>Yesterday's value of each indicator per territory (local days, {tz}) and its trend"
        f" over the last {days} complete days. Definitions:"
        f' <a href="/api/v1/indicators">catalog</a> ·'
        f' <a href="/api/v1/sensors">sensor register</a> · <a href="/schema">API</a></p>'
        f"<table><thead><tr><th>Territory</th>{head}</tr></thead><tbody>{''.join(rows)}"
        f"</tbody></table></body></html>"
    )
    return Response(body, media_type="text/html; charset=utf-8")


def _day(day: date) -> str:
    return day.isoformat()
