"""The scene's tip follows the simulated UR5 controller's actual TCP, through the real processes and buffers."""

import time
from pathlib import Path

import numpy as np

from robot_stack.hardware.robot.config import load_robot_config
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.runtime import now
from robot_stack.sim.pusht import SceneConfig, SceneProcess

ROOT = Path(__file__).resolve().parents[2]


def _move(robot, start, goal, duration):
    """Stream waypoints along a straight line, as teleop does (the controller holds if commands stop)."""
    t0 = now()
    while now() < t0 + duration:
        alpha = min(1.0, (now() - t0 + 0.1) / duration)
        robot.schedule_waypoint(start + (goal - start) * alpha, now() + 0.1)
        time.sleep(0.05)


def test_tip_follows_the_simulated_arm(wait_for_state):
    scene_cfg = SceneConfig()
    with RobotController(load_robot_config(ROOT / "hardware_configs" / "sim_ur5.yaml")) as robot, \
            SceneProcess(scene_cfg, robot.state, seed=2) as scene:
        home = robot.get_state()["actual_tcp_pose"]
        tip = scene_cfg.base_to_table(home[:2])
        # At home the TCP is above the table: the tip is lifted, right under the TCP.
        state = wait_for_state(scene, lambda s: np.allclose(s["pusher_xy"], tip, atol=1e-3), 5.0)
        assert not state["pusher_down"]

        # Move over a table point, then down to pushing height.
        spot = np.array([-0.15, 0.15])
        above = home.copy()
        above[:2] = scene_cfg.table_to_base(spot)
        _move(robot, home, above, 1.2)
        down = above.copy()
        down[2] = scene_cfg.push_z
        _move(robot, above, down, 0.6)
        state = wait_for_state(scene, lambda s: bool(s["pusher_down"]), 2.0)
        state = wait_for_state(scene, lambda s: np.allclose(s["pusher_xy"], spot, atol=2e-3), 2.0)
        assert state["pusher_down"]
