"""Serve a simulated UR5 over RTDE until Ctrl-C: ``python -m robot_stack.hardware.robot.rtde_loopback RIG``.

Point a rig with ``driver: rtde`` and ``robot_ip: 127.0.0.1`` (or ur_rtde's own examples) at it to run the
real-driver code path without a robot. The arm is ``SimUR5`` built from the rig's ``robot:`` section; a
500 Hz rig gets an e-series controller, anything else a CB3.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from robot_stack.config import ConfigError
from robot_stack.hardware.robot.config import load_robot_config
from robot_stack.hardware.robot.rtde_loopback.controller import CB3, E_SERIES
from robot_stack.hardware.robot.rtde_loopback.server import RTDELoopbackServer
from robot_stack.hardware.robot.sim_ur5 import SimUR5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_stack.hardware.robot.rtde_loopback", description=__doc__)
    parser.add_argument("rig", help="rig YAML whose robot: section describes the simulated arm")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on (default 127.0.0.1)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (sensor noise)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every dashboard request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        config = load_robot_config(args.rig)
        version = E_SERIES if float(config.frequency) == E_SERIES.frequency else CB3
        server = RTDELoopbackServer(SimUR5(config, seed=args.seed), args.host, version=version,
                                    tcp_offset=config.tcp_offset)
        server.start()
    except (ConfigError, ValueError) as exc:
        print(f"rtde loopback: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"rtde loopback: {exc}; is a robot server already running there? try another --host such as "
              "127.0.0.2", file=sys.stderr)
        return 1
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"simulated UR5 (controller {version.text}) on {args.host}: ports {server.ports}; Ctrl-C to stop",
          flush=True)
    try:
        while not done.wait(0.2):
            if server.error:
                print(f"rtde loopback: {server.error}", file=sys.stderr)
                return 1
    finally:
        server.stop()
        print(f"rtde loopback stopped: {server.stats}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
