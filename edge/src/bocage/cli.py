"""The ``bocage`` command.

The edge agent ships the command and its ``edge`` subcommands. Datacenter commands
(``serve``, ``demo``, ``migrate``, ``quarantine``...) are added by the ``bocage-services``
distribution through the ``bocage.commands`` entry-point group, so a gateway has a working
``bocage`` without any datacenter dependency.

Every subcommand handler takes the parsed arguments and returns an exit code. Expected errors
(:class:`~bocage.core.errors.BocageError`) are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from bocage.core import logs
from bocage.core.errors import BocageError

Handler = Callable[[argparse.Namespace], int]
Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with the commands of every installed Bocage distribution."""
    parser = argparse.ArgumentParser(
        prog="bocage", description="Bocage: edge-first sovereign data stack for pooled territories."
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from bocage.edge.cli import register as register_edge  # the edge always ships with the CLI

    register_edge(commands)
    for entry in sorted(entry_points(group="bocage.commands"), key=lambda e: e.name):
        registrar: Registrar = entry.load()
        registrar(commands)
    if "serve" not in commands.choices:
        _add_missing(commands, "serve", "run datacenter services (needs bocage-services)")
        _add_missing(commands, "demo", "run the whole stack locally (needs bocage-services)")
    return parser


def _add_missing(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str
) -> None:
    sub = commands.add_parser(name, help=help_)
    sub.add_argument("rest", nargs=argparse.REMAINDER)

    def missing(_: argparse.Namespace) -> int:
        raise BocageError(
            f"`bocage {name}` needs the datacenter services: install the bocage-services package"
        )

    sub.set_defaults(handler=missing)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bocage`` command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(args.log_level, as_json=args.log_json)
    handler: Handler = args.handler
    try:
        return handler(args)
    except BocageError as exc:
        print(f"bocage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
