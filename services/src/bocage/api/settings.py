"""Settings of the interoperability API (section ``[api]`` of ``bocage.toml``)."""

from __future__ import annotations

import msgspec

from bocage.api.access import ApiKey


class ApiSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the API listens and what it publishes about itself."""

    host: str = "127.0.0.1"
    """Address uvicorn binds (``0.0.0.0`` in a container)."""
    port: int = 8080
    title: str = "Bocage"
    """Name shown on the dashboard and in the OpenAPI document."""
    public_url: str = "http://127.0.0.1:8080"
    """Base URL the API is reached at by its users (absolute links, DCAT, SensorThings)."""
    dashboard_days: int = 14
    """Days shown by the dashboard sparklines (the last value is today's)."""
    health_timeout_seconds: float = 2.0
    """How long ``/health`` waits for the store before answering 503."""
    keys: tuple[ApiKey, ...] = ()
    """API keys (SHA-256 only) scoping non-public data to a territory; see ``access``."""
