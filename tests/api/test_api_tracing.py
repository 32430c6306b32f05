"""API requests produce server spans when tracing is on (Litestar's OpenTelemetry plugin)."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from territory_sample import register

from bocage.api import ApiSettings, create_app
from bocage.core.tracecontext import format_traceparent
from bocage.indicators import IndicatorsSettings
from bocage.store import Store


async def test_a_request_produces_a_server_span(store: Store) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(
        ApiSettings(), store=store, register=register(),
        indicators=IndicatorsSettings(cache_seconds=0), tracer_provider=provider,
    )
    caller = format_traceparent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/v1/territories", headers={"traceparent": caller})
        assert response.status_code == 200
        assert (await client.get("/api/v1/sensors", params={"territory": "x"})).status_code
    spans = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert len(spans) == 2, [s.name for s in exporter.get_finished_spans()]
    first, second = spans
    assert first.name == "GET /api/v1/territories"
    assert first.attributes["http.route"] == "/api/v1/territories"
    assert first.attributes["http.status_code"] == 200 or (
        first.attributes.get("http.response.status_code") == 200
    )
    # the caller's trace context is honoured: the request joins its trace
    assert f"{first.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first.parent is not None
    assert f"{first.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert second.parent is None


async def test_no_provider_no_plugin(store: Store) -> None:
    app = create_app(ApiSettings(), store=store, register=register())
    assert not any("OpenTelemetry" in type(p).__name__ for p in app.plugins)
