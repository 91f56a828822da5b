"""Serve a simulated UR5 over RTDE until Ctrl-C: ``python -m robot_stack.hardware.robot.rtde_loopback RIG``
(the same as ``robot-stack ursim --rig RIG``; options in ``ursim.py``).

Point a rig with ``driver: rtde`` and ``robot_ip: 127.0.0.1`` (or ur_rtde's own examples) at it to run the
real-driver code path without a robot.
"""

from __future__ import annotations

import argparse
import logging
import sys

from robot_stack.config import ConfigError
from robot_stack.hardware.robot.rtde_loopback import ursim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_stack.hardware.robot.rtde_loopback", description=__doc__)
    parser.add_argument("rig", help="rig YAML (or shipped rig name) whose robot: section describes the arm")
    ursim.add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every dashboard request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        return ursim.run(args)
    except ConfigError as exc:
        print(f"rtde loopback: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
