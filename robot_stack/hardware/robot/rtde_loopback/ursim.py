"""Serve a rig's simulated UR over the real RTDE, dashboard and script protocols until Ctrl-C: the twin as a
stand-in robot for any ur_rtde program (``robot-stack ursim --rig R``, or
``python -m robot_stack.hardware.robot.rtde_loopback R``).

The arm is ``SimUR5`` built from the rig's ``robot:`` section. ``--controller`` picks what it reports and its
rate: ``cb3`` (125 Hz), ``e-series`` (500 Hz), ``auto`` (the rig's frequency decides). ``--latency``,
``--jitter`` and ``--drop`` impair the RTDE data packages in both directions; ``--fault KIND@SECONDS[+D]``
(repeatable) injects protective stops, program stops and emergency stops (``conditions.py``).
"""

from __future__ import annotations

import argparse
import signal
import threading

from robot_stack.config import ConfigError
from robot_stack.hardware.robot.config import load_robot_config
from robot_stack.hardware.robot.rtde_loopback.conditions import Fault, NetworkConditions
from robot_stack.hardware.robot.rtde_loopback.controller import CB3, E_SERIES
from robot_stack.hardware.robot.rtde_loopback.server import RTDELoopbackServer
from robot_stack.hardware.robot.sim_ur5 import SimUR5

CONTROLLERS = {"cb3": CB3, "e-series": E_SERIES}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option except the rig (each entry point names that its own way)."""
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on (default 127.0.0.1)")
    parser.add_argument("--controller", choices=("auto", *CONTROLLERS), default="auto",
                        help="controller to emulate: cb3 (125 Hz), e-series (500 Hz), auto: from the rig's frequency")
    parser.add_argument("--latency", type=float, default=0.0, metavar="S",
                        help="delay every RTDE data package by S seconds, both directions (default 0)")
    parser.add_argument("--jitter", type=float, default=0.0, metavar="S",
                        help="plus a uniform random 0..S seconds (order is kept, as over TCP)")
    parser.add_argument("--drop", type=float, default=0.0, metavar="P",
                        help="lose each RTDE data package with probability P (default 0)")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND@SECONDS[+D]",
                        help="inject a fault S seconds after start: protective_stop, program_stop, or "
                        "emergency_stop (released after D seconds if given); repeatable")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (sensor noise, jitter, drops)")


def build_server(args: argparse.Namespace) -> RTDELoopbackServer:
    """The server the arguments describe (not started); ``ConfigError`` for a bad rig or option."""
    config = load_robot_config(args.rig)
    if args.controller == "auto":
        version = E_SERIES if float(config.frequency) == E_SERIES.frequency else CB3
    else:
        version = CONTROLLERS[args.controller]
    network = NetworkConditions(args.latency, args.jitter, args.drop, args.seed)
    faults = [Fault.parse(text) for text in args.fault]
    try:
        return RTDELoopbackServer(SimUR5(config, seed=args.seed), args.host, version=version,
                                  tcp_offset=config.tcp_offset, network=network, faults=faults)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 when stopped, 1 if the simulated controller failed."""
    server = build_server(args)
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(f"{exc}; is a robot server already running there? try another --host such as "
                          "127.0.0.2") from None
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    network = f", network {server.network}" if server.network is not None else ""
    print(f"simulated UR5 (controller {server.controller.version.text}{network}) on {args.host}: ports "
          f"{server.ports}; Ctrl-C to stop", flush=True)
    try:
        while not done.wait(0.2):
            if server.error:
                print(f"rtde loopback: {server.error}", flush=True)
                return 1
    finally:
        server.stop()
        print(f"rtde loopback stopped: {server.stats}", flush=True)
    return 0
