"""The application factory: ``create_app(settings, *, store, register) -> Litestar``.

The app receives its resources (the store, the register) instead of opening them, so the
all-in-one process shares one store between services and tests inject a real chDB store.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Histogram

from bocage.api import dashboard, routes, sta
from bocage.api.problems import http_exception_to_problem, internal_error_to_problem
from bocage.api.settings import ApiSettings
from bocage.core.register import Register
from bocage.indicators import Indicators, IndicatorsSettings, QueryStore

if TYPE_CHECKING:
    from litestar.plugins import PluginProtocol
    from opentelemetry.trace import TracerProvider

API_VERSION = "1.0.0"


@dataclass(frozen=True)
class Resources:
    """What the route handlers use, held in ``app.state.resources``."""

    settings: ApiSettings
    store: QueryStore
    register: Register
    indicators: Indicators
    metrics_registry: CollectorRegistry


class _ApiMetrics:
    """The API's collectors in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "bocage_api_requests_total",
            "HTTP requests answered by the API",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "bocage_api_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )


# Several apps may share a registry (the process-wide one, in tests or restarts): collectors
# are registered once per registry, or prometheus_client refuses the duplicates.
_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _ApiMetrics] = weakref.WeakKeyDictionary()


def _metrics(registry: CollectorRegistry) -> _ApiMetrics:
    found = _METRICS.get(registry)
    if found is None:
        found = _METRICS[registry] = _ApiMetrics(registry)
    return found


class _RequestMetrics(ASGIMiddleware):
    """Counts requests and their latency per route template (bounded labels: never the path)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        metrics = _metrics(registry)
        self.requests = metrics.requests
        self.latency = metrics.latency

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        template = scope.get("path_template")
        if template:
            # the OpenTelemetry server span (when tracing) is named after the route template
            span = trace.get_current_span()
            if span.is_recording():
                span.update_name(f"{scope.get('method', 'HTTP')} {template}")
                span.set_attribute("http.route", template)
        try:
            await next_app(scope, receive, send_and_record)
        finally:
            route = scope.get("path_template") or "unmatched"
            self.requests.labels(scope.get("method", ""), route, str(status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)


def _span_details(scope: Scope) -> tuple[str, dict[str, str]]:
    """The server span's first name: the method alone (the route is not known before routing;
    :class:`_RequestMetrics` renames the span ``METHOD /route/{template}`` once it is). Never
    the raw path: span names must have a bounded cardinality (OpenTelemetry HTTP conventions).
    """
    return str(scope.get("method", "") or "HTTP").strip(), {}


def create_app(
    settings: ApiSettings,
    *,
    store: QueryStore,
    register: Register,
    metrics_registry: CollectorRegistry | None = None,
    indicators: IndicatorsSettings | None = None,
    clock: Callable[[], datetime] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Litestar:
    """The Bocage interoperability API.

    ``store`` is a connected :class:`bocage.store.Store` (its lifetime is the caller's);
    ``register`` the territories, gateways and sensors; ``metrics_registry`` the Prometheus
    registry ``/metrics`` exposes (a private one when None: pass ``prometheus_client.REGISTRY``
    to expose the whole process); ``indicators`` the indicator settings (time zone, cache);
    ``clock`` replaces the current time (tests); ``tracer_provider``, when given, turns on
    Litestar's OpenTelemetry plugin: one server span per request (W3C ``traceparent`` of the
    request honoured), named after the route template.
    """
    registry = CollectorRegistry() if metrics_registry is None else metrics_registry
    resources = Resources(
        settings=settings,
        store=store,
        register=register,
        indicators=Indicators(indicators or IndicatorsSettings(), store, register, clock=clock),
        metrics_registry=registry,
    )
    api_v1 = Router(path="/api/v1", route_handlers=routes.API_V1)
    plugins: list[PluginProtocol] = [
        ProblemDetailsPlugin(ProblemDetailsConfig(exception_handler=http_exception_to_problem))
    ]
    if tracer_provider is not None:
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

        plugins.append(
            OpenTelemetryPlugin(
                OpenTelemetryConfig(
                    tracer_provider=tracer_provider,
                    scope_span_details_extractor=_span_details,
                    # one span per request, not one per ASGI receive/send message
                    exclude_spans=["receive", "send"],
                )
            )
        )
    return Litestar(
        route_handlers=[api_v1, *routes.OPS, *sta.ROUTES, dashboard.index],
        state=State({"resources": resources, "sta": {}}),
        middleware=[_RequestMetrics(registry)],
        plugins=plugins,
        exception_handlers={
            HTTPException: http_exception_to_problem,
            Exception: internal_error_to_problem,
        },
        openapi_config=OpenAPIConfig(
            title=f"{settings.title} API",
            version=API_VERSION,
            description=(
                "Territorial indicators with their published definitions, the public sensor"
                " register, territories, health and metrics."
            ),
            path="/schema",
        ),
        debug=False,
        # the process (bocage.core.logs) owns logging: Litestar must not reconfigure the root
        logging_config=None,
    )

