
"""Operator commands ``bocage quarantine list`` and ``bocage quarantine replay``.

Hooked into the ``bocage`` command by bocage.datacenter (``register(commands)``). They read
the ``[nats]`` and ``[store]`` sections of the settings file given with ``--config`` (the
datacenter's file works as is; ``BOCAGE_*`` overrides apply). The work itself is done by
:func:`bocage.ingest.quarantine.list_entries`, :func:`~bocage.ingest.quarantine.select_sequences`
and :func:`~bocage.ingest.quarantine.replay`, which a caller holding its own store and NATS
connection can use directly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bocage.core import settings as settings_loader
from bocage.core.errors import BocageError

if TYPE_CHECKING:
    from bocage.datacenter.settings import DatacenterSettings


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``quarantine list|replay`` to the ``bocage`` command."""
    parser = commands.add_parser("quarantine", help="list or replay messages refused by ingest")
    actions = parser.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--config", type=Path, help="datacenter settings (TOML)")
        sub.add_argument("--territory", help="only this territory (INSEE/SIREN code)")
        sub.add_argument("--reason", help="only this reason (decode, unknown_gateway...)")

    listing = actions.add_parser("list", help="most recent quarantined messages first")
    common(listing)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_list)

    replaying = actions.add_parser(
        "replay", help="republish quarantined messages on their original subject"
    )
    common(replaying)
    replaying.add_argument("seq", nargs="*", type=int, help="quarantine sequences to replay")
    replaying.add_argument(
        "--all", action="store_true", help="replay every entry matching the filters"
    )
    replaying.add_argument("--dry-run", action="store_true", help="say what would be replayed")
    replaying.set_defaults(handler=cmd_replay)


def _settings(args: argparse.Namespace) -> DatacenterSettings:
    from bocage.datacenter.settings import DatacenterSettings

    return settings_loader.load(DatacenterSettings, args.config)


def cmd_list(args: argparse.Namespace) -> int:
    """``bocage quarantine list``."""
    import msgspec

    from bocage.ingest import quarantine
    from bocage.store import Store

    settings = _settings(args)
    with Store.connect(settings.store) as store:
        entries = quarantine.list_entries(
            store, territory=args.territory, reason=args.reason, limit=args.limit
        )
    if args.json:
        for entry in entries:
            sys.stdout.write(msgspec.json.encode(entry).decode() + "\n")
        return 0
    if not entries:
        print("no quarantined message")
        return 0
    print(f"{'seq':>8}  {'received (UTC)':<23}  {'territory':<9}  {'reason':<18}  detail")
    for e in entries:
        where = e.frame_id or e.subject
        print(
            f"{e.quarantine_seq:>8}  {e.received_at:<23}  {e.territory:<9}  {e.reason:<18}  "
            f"{where}: {e.detail[:80]}"
        )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """``bocage quarantine replay``."""
    from bocage.core.connection import connect_nats
    from bocage.ingest import quarantine
    from bocage.store import Store

    settings = _settings(args)
    sequences: list[int] = list(args.seq)
    if args.all:
        with Store.connect(settings.store) as store:
            sequences += quarantine.select_sequences(
                store, territory=args.territory, reason=args.reason
            )
    if not sequences:
        raise BocageError("nothing to replay: give quarantine sequences or --all")

    async def run() -> quarantine.ReplayReport:
        nc = await connect_nats(
            settings.nats.url, name="bocage-quarantine", credentials=settings.nats.credentials
        )
        try:
            return await quarantine.replay(
                nc.jetstream(), sorted(set(sequences)), dry_run=args.dry_run
            )
        finally:
            await nc.drain()

    report = asyncio.run(run())
    verb = "would replay" if args.dry_run else "replayed"
    print(f"{verb} {len(report.replayed)} message(s)")
    if report.missing:
        print(f"{len(report.missing)} no longer in the quarantine stream: {report.missing[:20]}")
    if report.skipped:
        print(f"{len(report.skipped)} without a gateway subject: {report.skipped[:20]}")
    return 0
