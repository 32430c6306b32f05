"""Run datacenter services — ingest, indicators, API — alone or all in one process.

The all-in-one mode exists because embedded chDB allows one process per data directory: the
services then share one :class:`~bocage.store.Store`. In production each service runs in its own
process or pod against a ClickHouse server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final, Literal

import uvicorn
from prometheus_client import REGISTRY, start_http_server

from bocage.core.connection import connect_nats
from bocage.core.errors import BocageError
from bocage.core.logs import get_logger
from bocage.core.streams import ensure_streams
from bocage.datacenter.settings import DatacenterSettings
from bocage.store import Store

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

Service = Literal["ingest", "indicators", "api"]
SERVICES: Final[tuple[Service, ...]] = ("ingest", "indicators", "api")


def metrics_port(settings: DatacenterSettings, services: Sequence[Service]) -> int:
    """Port of the process's own Prometheus endpoint, 0 for none.

    With the API in the process its ``/metrics`` serves the registry; otherwise the ingest
    port when ingest runs here, else the indicators port when the indicator service does.
    """
    if "api" in services:
        return 0
    if "ingest" in services and settings.ingest.metrics_port:
        return settings.ingest.metrics_port
    if "indicators" in services:
        return settings.indicators.metrics_port
    return 0


log = get_logger("bocage.datacenter")


def _first_cause(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    first = errors.exceptions[0]
    return _first_cause(first) if isinstance(first, BaseExceptionGroup) else first


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the datacenter owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def install_stop_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on SIGINT/SIGTERM so every service ends cleanly (no traceback on Ctrl-C)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


class Datacenter:
    """The services of one datacenter process, sharing a store and a NATS connection."""

    def __init__(
        self,
        settings: DatacenterSettings,
        services: tuple[Service, ...] = SERVICES,
        *,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.tracer_provider = tracer_provider
        """Where ingest and API spans go (:mod:`bocage.datacenter.tracing`); None: no spans."""
        self.store: Store | None = None
        self.ready = asyncio.Event()
        """Set once every selected service has started (the API is listening)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop each service gracefully."""
        settings = self.settings
        # connecting applies pending migrations (StoreSettings.migrate_on_connect) and logs them
        store = await asyncio.to_thread(Store.connect, settings.store)
        self.store = store
        try:
            await asyncio.to_thread(store.sync_register, settings.register)
            try:
                async with asyncio.TaskGroup() as group:
                    await self._start(group, store, stop)
                    self.ready.set()
                    log.info("datacenter running", services=",".join(self.services))
            except BaseExceptionGroup as errors:
                # one service failing stops the others; report the first cause, not the group
                raise _first_cause(errors) from None
        finally:
            await asyncio.to_thread(store.close)

    async def _start(self, group: asyncio.TaskGroup, store: Store, stop: asyncio.Event) -> None:
        settings = self.settings
        port = metrics_port(settings, self.services)
        if port:
            # a process without the API (an ingest or indicators pod) exposes the registry for
            # scraping; with the API, its /metrics already serves the same registry
            try:
                metrics_server, _thread = start_http_server(port, addr="0.0.0.0")  # noqa: S104
            except OSError as error:
                raise BocageError(
                    f"the metrics endpoint could not listen on port {port}: {error.strerror}"
                ) from None

            async def serve_metrics() -> None:
                try:
                    await stop.wait()
                finally:
                    # (shutdown waits for the server loop's next poll: not on the event loop)
                    await asyncio.to_thread(metrics_server.shutdown)
                    metrics_server.server_close()

            group.create_task(serve_metrics(), name="metrics")
        if "ingest" in self.services:
            from bocage.ingest import Ingestor

            nc = await connect_nats(
                settings.nats.url, name="bocage-ingest", credentials=settings.nats.credentials
            )
            await ensure_streams(nc.jetstream(), replicas=settings.nats.replicas)
            ingestor = Ingestor(
                settings.ingest,
                store,
                settings.register,
                nc,
                tracer_provider=self.tracer_provider,
            )

            async def ingest() -> None:
                try:
                    await ingestor.run(stop)
                finally:
                    await nc.drain()

            group.create_task(ingest(), name="ingest")
        if "indicators" in self.services:
            from bocage.indicators import IndicatorService

            service = IndicatorService(
                settings.indicators, store, settings.register, metrics_registry=REGISTRY
            )
            group.create_task(service.run(stop), name="indicators")
        if "api" in self.services:
            from bocage.api import create_app

            app = create_app(
                settings.api,
                store=store,
                register=settings.register,
                metrics_registry=REGISTRY,
                indicators=settings.indicators,
                tracer_provider=self.tracer_provider,
            )
            server = _ApiServer(
                uvicorn.Config(
                    app,
                    host=settings.api.host,
                    port=settings.api.port,
                    log_config=None,
                    access_log=False,
                    lifespan="on",
                )
            )

            async def serve_api() -> None:
                async def stop_server() -> None:
                    await stop.wait()
                    server.should_exit = True

                watcher = asyncio.create_task(stop_server())
                try:
                    await server.serve()
                except SystemExit:  # uvicorn exits the process when it cannot bind
                    raise BocageError(
                        f"the API could not listen on {settings.api.host}:{settings.api.port}"
                        " (port in use?)"
                    ) from None
                finally:
                    watcher.cancel()

            api_task = group.create_task(serve_api(), name="api")
            # ready means listening: wait for uvicorn's bind (or its failure, e.g. port in use)
            while not server.started and not api_task.done() and not stop.is_set():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                await asyncio.sleep(0.05)
            if not server.started and not stop.is_set():
                raise BocageError(
                    f"the API could not listen on {settings.api.host}:{settings.api.port}"
                )
