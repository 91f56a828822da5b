"""``robot-stack ursim --rig R``: a rig's simulated UR served over the real RTDE, dashboard and script
protocols, so any ur_rtde program (or this stack with ``driver: rtde``, ``robot_ip: 127.0.0.1``) runs without
an arm; with network impairment and fault injection (see ``robot_stack.hardware.robot.rtde_loopback.ursim``).

Examples::

    robot-stack ursim --rig sim_ur5                                  # CB3 at 125 Hz on 127.0.0.1
    robot-stack ursim --rig sim_ur5 --controller e-series --latency 0.004 --jitter 0.002 --drop 0.01
    robot-stack ursim --rig sim_ur5 --fault protective_stop@10 --fault emergency_stop@30+5
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from robot_stack.hardware.robot.rtde_loopback import ursim

    parser = subparsers.add_parser(
        "ursim", help="serve a simulated UR over RTDE for any ur_rtde program (latency, drops, faults)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rig", required=True, help="rig YAML or shipped rig name (its robot: section)")
    ursim.add_arguments(parser)
    parser.set_defaults(func=ursim.run)
