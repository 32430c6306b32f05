"""``bocage edge ...``: run the gateway agent, verify or salvage a spool."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from bocage.core import settings as settings_loader
from bocage.core.logs import get_logger
from bocage.edge.agent import Agent
from bocage.edge.settings import EdgeSettings
from bocage.edge.verify import verify

log = get_logger("bocage.edge")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``edge`` command and its subcommands to the ``bocage`` parser."""
    edge = commands.add_parser("edge", help="the gateway agent")
    sub = edge.add_subparsers(dest="edge_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    run.add_argument("--config", "-c", required=True, type=Path, help="edge.toml")
    run.add_argument(
        "--exit-when-drained",
        action="store_true",
        help="exit once finite sources are done and every frame is delivered (replays, tests)",
    )
    run.set_defaults(handler=_run)

    verify = sub.add_parser("verify", help="check a spool directory and report damage")
    verify.add_argument("spool_dir", metavar="SPOOL_DIR", type=Path)
    verify.add_argument(
        "--repair", action="store_true",
        help="salvage: rewrite damaged segments keeping every valid record (agent stopped)",
    )
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=_verify)


def _run(args: argparse.Namespace) -> int:
    settings = settings_loader.load(EdgeSettings, args.config)
    agent = Agent(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(agent.run(stop))
        if args.exit_when_drained:
            waiter = asyncio.create_task(agent.drained())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            waiter.cancel()
        await task

    asyncio.run(main())
    return 0


def _verify(args: argparse.Namespace) -> int:
    report = verify(args.spool_dir, repair=args.repair)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report["summary"])
        for damage in report["damage"]:
            print(
                f"  {damage['segment']}: {damage['length']} bytes at offset {damage['offset']} "
                f"discarded ({damage['reason']})"
            )
        for seq in report["undecodable"]:
            print(f"  record {seq}: checksum holds but the frame does not decode")
        if report["repaired"]:
            print("  repaired: damaged segments rewritten with their valid records")
    return 0 if report["clean"] else 1
