"""``robot-stack replay``: send a recorded episode's actions to the robot with the original timing.

Examples::

    robot-stack replay --dataset data/pusht --episode 3 --rig hardware_configs/sim_pusht.yaml
    robot-stack replay --dataset data/pusht --episode -1 --rig hardware_configs/sim_ur5.yaml --max-error 5

The arm first moves slowly to the episode's first recorded pose, then replays; the command prints the
tracking error between the recorded and the reproduced TCP trajectory (position mean / p95 / max in mm,
rotation max in degrees). With ``--max-error MM`` it exits 1 if the p95 position error exceeds it. On a real
robot, keep a hand on the e-stop: the episode's motions are executed as recorded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robot_stack.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a recorded episode on the robot and report tracking error",
        description="Send an episode's recorded actions to the rig's robot with their original timing and report "
        "how closely the robot reproduces the recorded TCP poses.",
    )
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder (with replay_buffer.zarr)")
    parser.add_argument("--episode", required=True, type=int, help="episode index (negative counts from the end)")
    parser.add_argument("--rig", required=True, help="rig YAML path or shipped rig name whose robot: section to drive")
    parser.add_argument("--max-error", type=float, help="fail (exit 1) if the p95 position error exceeds this, mm")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import contextlib

    from robot_stack.data.dataset import EpisodeDataset
    from robot_stack.data.replay import replay_episode
    from robot_stack.hardware.gripper.controller import GripperController
    from robot_stack.hardware.robot.controller import RobotController
    from robot_stack.rig import load_rig
    from robot_stack.rig.preflight import check_gripper, check_robot

    if args.max_error is not None and not args.max_error > 0:
        raise ConfigError(f"--max-error must be > 0 mm, got {args.max_error}")
    rig = load_rig(args.rig)
    robot_cfg = rig.robot
    with EpisodeDataset.open(args.dataset) as dataset:
        try:
            episode = dataset.replay_buffer.get_episode(args.episode)
        except IndexError as exc:
            raise ConfigError(f"--episode: {exc}") from None
        timing = dataset.timing_convention()
    check_robot(robot_cfg)
    if rig.gripper is not None:
        check_gripper(rig.gripper)
    with contextlib.ExitStack() as stack:
        robot = stack.enter_context(RobotController(robot_cfg))
        gripper = stack.enter_context(GripperController(rig.gripper)) if rig.gripper is not None else None
        report = replay_episode(robot.client, episode, timing.action_delay_steps,
                                gripper=gripper.client if gripper is not None else None)
    print(report.summary(), flush=True)
    if args.max_error is not None and report.position_error_p95 * 1e3 > args.max_error:
        print(f"p95 position error {report.position_error_p95 * 1e3:.2f} mm exceeds --max-error {args.max_error} mm",
              file=sys.stderr)
        return 1
    return 0
