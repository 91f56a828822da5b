"""The `robot-stack` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser whose
``func`` default takes the parsed ``argparse.Namespace`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import traceback
from typing import Sequence

from robot_stack.config import ConfigError
from robot_stack.runtime import ProcessFailed
from robot_stack.runtime.device_process import DEBUG_ENV, debug_enabled, error_summary

# Modules under robot_stack.cli that each contribute one subcommand, in --help order.
_COMMAND_MODULES: tuple[str, ...] = ("train", "report", "serve", "cameras", "collect", "replay", "eval", "dataset",
                                     "view", "ursim", "calibrate", "doctor")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="robot-stack",
        description="Diffusion Policy robot stack: collect demos, train, and run policies on real or simulated rigs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help=f"show tracebacks, also of device processes (same as ${DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"robot_stack.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `robot-stack` console script.

    Exit codes: 0 done, 2 bad input (one line naming what to fix, before anything moves), 1 a device or the
    policy failed at run time (one line naming the process), 130 interrupted. ``--debug`` (or
    ``$ROBOT_STACK_DEBUG=1``) adds the tracebacks, also those of device processes.
    """
    # Ctrl-C must raise KeyboardInterrupt whatever disposition we inherited (a shell's background job starts
    # its children with SIGINT ignored); SIGTERM (systemd, a supervisor, `kill`) unwinds the same way, so
    # devices stop and shared memory is freed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = os.environ.get(DEBUG_ENV)
    if args.debug:
        os.environ[DEBUG_ENV] = "1"  # device processes inherit it
    try:
        return _run(parser, args)
    finally:  # main() may be called in a process that goes on (tests, scripts)
        if previous is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = previous


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    debug = debug_enabled()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose or debug else logging.INFO,
        format="%(asctime)s %(processName)s %(name)s %(levelname)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    prefix = f"robot-stack {args.command}"
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        # Bad user input: say what to fix, no traceback.
        return _fail(prefix, str(exc), 2, debug)
    except ProcessFailed as exc:
        # A device process died (or could not start): name it and its final error, not a child traceback.
        if debug:
            print(exc.error, file=sys.stderr)
        return _fail(prefix, f"process '{exc.name}': {exc.reason}", 1, debug)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # The machine, not the input: a full disk, a lost device node, a permission.
        return _fail(prefix, f"{type(exc).__name__}: {exc}", 1, debug)
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the traceback with --debug
        return _fail(prefix, f"internal error: {error_summary(f'{type(exc).__name__}: {exc}')} "
                     "(run with --debug for the traceback and report it)", 1, debug)


def _fail(prefix: str, message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"{prefix}: {' '.join(message.split())}", file=sys.stderr)
    return code
