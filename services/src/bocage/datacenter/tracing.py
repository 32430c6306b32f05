"""OpenTelemetry tracing of the datacenter services: off unless configured.

Tracing is on when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` environment variable is
set (``OTEL_TRACES_EXPORTER=none`` turns it off, ``console`` prints spans). Then
:func:`setup_tracing` installs an SDK :class:`TracerProvider` (batch processor, OTLP/HTTP
exporter, which reads the endpoint, headers and timeout from the standard variables) as the
global provider and returns it; the caller shuts it down (flushing the last spans) on exit.
Otherwise nothing is imported beyond this module and nothing is installed: the global
provider stays OpenTelemetry's no-op proxy and the services create no spans.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from bocage.core.logs import get_logger

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = get_logger("bocage.datacenter.tracing")

SERVICE_NAMES: Final[dict[str, str]] = {
    "ingest": "bocage-ingest",
    "api": "bocage-api",
    "indicators": "bocage-indicators",
}
ALL_SERVICES_NAME: Final = "bocage-datacenter"
_SWITCHES: Final = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


def service_name(services: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """``OTEL_SERVICE_NAME`` if set, else ``bocage-<service>``, ``bocage-datacenter`` for
    several services in one process."""
    env = os.environ if env is None else env
    override = env.get("OTEL_SERVICE_NAME", "").strip()
    if override:
        return override
    if len(services) == 1:
        return SERVICE_NAMES.get(services[0], f"bocage-{services[0]}")
    return ALL_SERVICES_NAME


def tracing_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (see the module docstring)."""
    env = os.environ if env is None else env
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return any(env.get(name, "").strip() for name in _SWITCHES)


def setup_tracing(
    services: Sequence[str], env: Mapping[str, str] | None = None, *, install: bool = True
) -> TracerProvider | None:
    """Install the SDK tracer provider when configured; None (nothing done) otherwise.

    ``install`` False builds the provider without making it the global one (tests).
    """
    env = os.environ if env is None else env
    if not tracing_configured(env):
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    name = service_name(services, env)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        if exporter_name != "otlp":
            log.warning("unsupported OTEL_TRACES_EXPORTER, using otlp", exporter=exporter_name)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    if install:
        trace.set_tracer_provider(provider)
    log.info("tracing on", service=name, exporter=exporter_name)
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Flush the spans still queued and stop the exporter (no-op for None)."""
    if provider is not None:
        provider.shutdown()
