"""One NATS connection per process, with every callback explicit (CONVENTIONS: NATS)."""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoServersError

from bocage.core.errors import UnreachableError
from bocage.core.logs import get_logger

log = get_logger("bocage.nats")


async def connect_nats(
    url: str,
    *,
    name: str,
    credentials: str | None = None,
    connect_timeout: float = 2.0,
    first_connect_deadline: float = 10.0,
) -> NatsClient:
    """Connect to NATS; once connected, the client reconnects forever on its own.

    Raises :class:`UnreachableError` (a clear one-line message) when the first connection
    fails within ``first_connect_deadline`` seconds (nats-py itself would retry forever);
    callers that must wait for the server (the edge agent) retry with backoff.
    """

    async def error_cb(exc: Exception) -> None:
        log.warning("nats error", error=repr(exc))

    async def disconnected_cb() -> None:
        log.warning("nats disconnected", url=url)

    async def reconnected_cb() -> None:
        log.info("nats reconnected", url=url)

    async def closed_cb() -> None:
        log.info("nats connection closed", url=url)

    try:
        return await asyncio.wait_for(
            nats.connect(
                servers=[url],
                name=name,
                user_credentials=credentials,
                connect_timeout=connect_timeout,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1.0,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
                closed_cb=closed_cb,
            ),
            first_connect_deadline,
        )
    except TimeoutError:
        raise UnreachableError(
            "NATS", url, f"no connection within {first_connect_deadline:g}s"
        ) from None
    except (NoServersError, OSError) as exc:
        raise UnreachableError("NATS", url, str(exc) or type(exc).__name__) from None
