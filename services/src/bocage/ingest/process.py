"""Ingest as a process of its own: ``python -m bocage.ingest SETTINGS.toml``.

``bocage serve ingest`` (bocage.datacenter) does the same with the datacenter settings; this
module keeps a minimal standalone runner so ingest can be started, killed and restarted on its
own (reliability tests, scale-out). The TOML has the datacenter's sections: ``[nats]``,
``[store]``, ``[ingest]`` and the register (``[[register.territories]]``...). Unknown sections
are ignored so the datacenter's file works as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from prometheus_client import start_http_server

from bocage.core import logs
from bocage.core import settings as settings_loader
from bocage.core.errors import BocageError, UnreachableError
from bocage.core.logs import get_logger
from bocage.core.register import Register
from bocage.core.streams import ensure_streams
from bocage.ingest.ingestor import Ingestor
from bocage.ingest.settings import IngestSettings
from bocage.store import Store, StoreSettings

log = get_logger("bocage.ingest.process")


class NatsConnection(msgspec.Struct, frozen=True, kw_only=True):
    """How an ingest process reaches NATS (``[nats]``)."""

    url: str = "nats://127.0.0.1:4222"
    name: str = "bocage-ingest"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    credentials: str | None = None
    """Path of a ``.creds`` file (NKey + JWT), for an operator-mode NATS."""
    replicas: int = 1
    """JetStream replicas of the Bocage streams when ingest creates them."""


class IngestProcessSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a standalone ingest process needs."""

    nats: NatsConnection = NatsConnection()
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    register: Register = Register()
    log_level: str = "info"


async def connect_nats(settings: NatsConnection) -> NatsClient:
    """One NATS connection with explicit callbacks; reconnects forever once connected."""

    async def error_cb(exc: Exception) -> None:
        log.warning("nats error", error=repr(exc))

    async def disconnected_cb() -> None:
        log.warning("nats disconnected")

    async def reconnected_cb() -> None:
        log.info("nats reconnected")

    async def closed_cb() -> None:
        log.info("nats connection closed")

    try:
        return await nats.connect(
            settings.url,
            name=settings.name,
            user=settings.user,
            password=settings.password,
            token=settings.token,
            user_credentials=settings.credentials,
            error_cb=error_cb,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            closed_cb=closed_cb,
            max_reconnect_attempts=-1,
            connect_timeout=5,
            allow_reconnect=True,
        )
    except Exception as exc:
        raise UnreachableError("NATS", settings.url, str(exc) or type(exc).__name__) from None


async def serve(settings: IngestProcessSettings, stop: asyncio.Event) -> None:
    """Connect the store and NATS, then run the ingestor until ``stop``."""
    store = await asyncio.to_thread(Store.connect, settings.store)
    try:
        await asyncio.to_thread(store.sync_register, settings.register)
        nc = await connect_nats(settings.nats)
        try:
            await ensure_streams(nc.jetstream(), replicas=settings.nats.replicas)
            await Ingestor(settings.ingest, store, settings.register, nc).run(stop)
        finally:
            with contextlib.suppress(Exception):
                await nc.drain()
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bocage.ingest [SETTINGS.toml]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else None
    try:
        settings = settings_loader.load(IngestProcessSettings, path)
    except BocageError as exc:
        print(f"bocage-ingest: error: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    if settings.ingest.metrics_port:
        start_http_server(settings.ingest.metrics_port, addr="127.0.0.1")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    try:
        asyncio.run(run())
    except BocageError as exc:
        print(f"bocage-ingest: error: {exc}", file=sys.stderr)
        return 2
    return 0
