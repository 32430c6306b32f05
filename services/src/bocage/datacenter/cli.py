"""Datacenter commands of ``bocage``: ``serve``, ``migrate``, ``demo``.

Registered through the ``bocage.commands`` entry point of bocage-services. Heavy imports
(chDB, Litestar) happen inside the handlers so ``bocage --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bocage.core import settings as settings_loader


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the datacenter commands to the ``bocage`` parser."""
    serve = commands.add_parser("serve", help="run datacenter services")
    serve.add_argument("service", choices=["ingest", "indicators", "api", "all"])
    serve.add_argument(
        "--config", type=Path, help="bocage.toml (default: built-in defaults + BOCAGE_* env)"
    )
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply ClickHouse schema migrations and exit")
    migrate.add_argument("--config", type=Path)
    migrate.set_defaults(handler=_migrate)

    demo = commands.add_parser("demo", help="run the whole stack locally with simulated gateways")
    demo.add_argument(
        "--data-dir", type=Path, default=Path(".bocage/demo"), help="kept between runs"
    )
    demo.add_argument("--port", type=int, default=8080, help="HTTP port of the API and dashboard")
    demo.add_argument(
        "--backfill-hours",
        type=float,
        default=48.0,
        help="history the simulated gateways replay at start-up, fast, before going live",
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: until Ctrl-C)",
    )
    demo.set_defaults(handler=_demo)

    try:
        from bocage.ingest.cli import register as register_quarantine
    except ImportError:  # pragma: no cover - ingest always ships with services
        return
    register_quarantine(commands)


def _serve(args: argparse.Namespace) -> int:
    from bocage.datacenter.runtime import SERVICES, Datacenter, install_stop_signals
    from bocage.datacenter.settings import DatacenterSettings
    from bocage.datacenter.tracing import setup_tracing, shutdown_tracing

    settings = settings_loader.load(DatacenterSettings, args.config)
    services = SERVICES if args.service == "all" else (args.service,)
    # only when OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_TRACES_EXPORTER is set; None otherwise
    tracer_provider = setup_tracing(services)

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await Datacenter(settings, services, tracer_provider=tracer_provider).run(stop)

    try:
        asyncio.run(main())
    finally:
        shutdown_tracing(tracer_provider)  # flush the last spans
    return 0


def _migrate(args: argparse.Namespace) -> int:
    import msgspec

    from bocage.datacenter.settings import DatacenterSettings
    from bocage.store import Store

    settings = settings_loader.load(DatacenterSettings, args.config)
    # connect without the automatic migration, so that this command reports what it applied
    store = Store.connect(msgspec.structs.replace(settings.store, migrate_on_connect=False))
    try:
        applied = store.migrate()
        store.sync_register(settings.register)
    finally:
        store.close()
    print(
        f"applied {len(applied)} migration(s): {', '.join(applied) or 'schema already up to date'}"
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bocage.datacenter.demo import run_demo

    return run_demo(
        args.data_dir, port=args.port, backfill_hours=args.backfill_hours, duration=args.duration
    )
