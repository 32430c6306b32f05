"""The interoperability API (Litestar + msgspec): indicators, register, dashboard, health.

Build it with :func:`create_app` and serve it with uvicorn; see ``docs/api.md``.
"""

from __future__ import annotations

from bocage.api.app import create_app
from bocage.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
