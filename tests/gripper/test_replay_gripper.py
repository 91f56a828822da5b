"""Replaying a 6-DoF + gripper episode on the simulated UR5 and gripper: both tracked, errors reported."""

from pathlib import Path

import numpy as np
import pytest

from robot_stack.data.replay import ReplayError, replay_episode
from robot_stack.hardware.gripper.controller import GripperController
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.rig import load_rig

RIG = Path(__file__).resolve().parents[2] / "hardware_configs" / "sim_ur5_gripper.yaml"


def _episode(home: np.ndarray, steps: int = 30, dt: float = 0.1) -> dict:
    """The arm turns 0.2 rad about z and moves 2 cm while the fingers close from open to 5 cm (above the
    rig's 4 cm object), recorded as collect records it (measured width two steps behind the command)."""
    from scipy.spatial.transform import Rotation

    s = np.linspace(0, 1, steps)
    pose = np.tile(home, (steps, 1))
    pose[:, 1] += 0.02 * s
    pose[:, 3:] = (Rotation.from_euler("z", 0.2 * s[:, None]) * Rotation.from_rotvec(home[3:])).as_rotvec()
    widths = 0.085 - 0.035 * s
    measured = np.concatenate([np.full(2, 0.085), widths[:-2]])
    return {"timestamp": 100.0 + dt * np.arange(steps), "robot_eef_pose": pose,
            "action": np.concatenate([pose, widths[:, None]], axis=1), "gripper_width": measured[:, None]}


def test_a_gripper_episode_replays_with_pose_and_width_tracking_errors():
    rig = load_rig(RIG)
    with RobotController(rig.robot) as robot, GripperController(rig.gripper) as gripper:
        home = np.array(robot.get_state()["actual_tcp_pose"])
        episode = _episode(home)
        with pytest.raises(ReplayError, match="commands a gripper"):
            replay_episode(robot.client, episode, action_delay_steps=2)
        report = replay_episode(robot.client, episode, action_delay_steps=2, gripper=gripper.client)
        final_width = float(gripper.client.get_state()["width"])
    assert report.width_error_max is not None and report.width_error_max < 0.004, report.summary()
    assert report.position_error_p95 < 0.005 and report.rotation_error_max < 0.05, report.summary()
    assert final_width == pytest.approx(0.05, abs=0.001)
    assert "gripper width mean" in report.summary()
