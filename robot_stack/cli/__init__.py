"""The `robot-stack` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser whose
``func`` default takes the parsed ``argparse.Namespace`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import signal
import sys
from typing import Sequence

from robot_stack.config import ConfigError
from robot_stack.runtime import ProcessFailed

# Modules under robot_stack.cli that each contribute one subcommand, in --help order.
_COMMAND_MODULES: tuple[str, ...] = ("train", "serve", "cameras", "collect", "replay", "eval")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="robot-stack",
        description="Diffusion Policy robot stack: collect demos, train, and run policies on real or simulated rigs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"robot_stack.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `robot-stack` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(processName)s %(name)s %(levelname)s: %(message)s",
    )
    # SIGTERM (systemd, a supervisor, `kill`) unwinds like Ctrl-C so devices stop and shared memory is freed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        # Bad user input: say what to fix, no traceback.
        print(f"robot-stack {args.command}: {exc}", file=sys.stderr)
        return 2
    except ProcessFailed as exc:
        # A device process died (or could not start): name it and show its final error, not a child traceback.
        print(f"robot-stack {args.command}: process '{exc.name}' failed:\n{last_exception(exc.error)}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"robot-stack {args.command}: interrupted", file=sys.stderr)
        return 130



def last_exception(traceback_text: str) -> str:
    """The final exception (type, message and any lines that follow it) of a child's formatted traceback."""
    lines = traceback_text.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt|Exit)\b", lines[i]):
            return "\n".join(lines[i:])
    return traceback_text
