"""SceneProcess: the scene in its own process, its tip following a (fake) robot state buffer."""

import time

import numpy as np
import pytest

from robot_stack.runtime import SharedMemoryRingBuffer, now
from robot_stack.sim.pusht import PushTPhysics, SceneConfig, SceneProcess
from robot_stack.sim.pusht.render import BLOCK

CFG = SceneConfig(table_center=(0.45, 0.05))
ROBOT_SPEC = {"actual_tcp_pose": ((6,), np.float64), "timestamp": ((), np.float64)}


def _tcp(table_xy, z=None):
    x, y = CFG.table_to_base(np.asarray(table_xy, dtype=float))
    return {"actual_tcp_pose": np.array([x, y, CFG.push_z if z is None else z, 0.0, np.pi, 0.0]), "timestamp": now()}


@pytest.fixture
def robot():
    with SharedMemoryRingBuffer.create(ROBOT_SPEC, capacity=64) as buffer:
        yield buffer


def test_scene_follows_the_robot_tcp_and_publishes_state(robot, wait_for_state):
    start_tip = np.array([-0.2, -0.2])
    robot.put(_tcp(start_tip))
    with SceneProcess(CFG, robot, seed=4) as scene:
        first = scene.get_state()
        assert first["episode"] == 1 and first["seed"] == 4
        assert np.allclose(first["pusher_xy"], start_tip)
        # The block starts where a pure-physics reset with the same seed and tip puts it.
        expected = PushTPhysics(CFG).reset(4, pusher_xy=start_tip)
        assert np.allclose(first["block_pose"], expected["block_pose"], atol=1e-9)

        robot.put(_tcp([0.2, -0.2]))
        state = wait_for_state(scene, lambda s: np.allclose(s["pusher_xy"], [0.2, -0.2], atol=1e-6))
        assert state["pusher_down"]
        # Published at about physics_hz, with runtime-clock timestamps.
        t0, n0 = now(), scene.state.count
        time.sleep(0.5)
        rate = (scene.state.count - n0) / (now() - t0)
        assert 30 < rate <= CFG.physics_hz * 1.1
        recent = scene.state.get_last_k(10)["timestamp"]
        assert np.all(np.diff(recent) > 0) and abs(recent[-1] - now()) < 0.5

        # Raising the TCP lifts the tip.
        robot.put(_tcp([0.2, -0.2], z=CFG.table_z + CFG.contact_height + 0.05))
        wait_for_state(scene, lambda s: not s["pusher_down"])


def test_reset_applies_a_new_seed_and_renderer_sees_it(robot):
    robot.put(_tcp([-0.2, -0.2]))
    with SceneProcess(CFG, robot, seed=0) as scene:
        state = scene.reset(11)
        assert state["episode"] == 2 and state["seed"] == 11
        expected = PushTPhysics(CFG).reset(11, pusher_xy=np.array([-0.2, -0.2]))
        assert np.allclose(state["block_pose"], expected["block_pose"], atol=1e-9)
        img = scene.renderer("top", (320, 240)).render()
        assert np.any(np.all(img == BLOCK, axis=-1))


def test_tip_pushes_the_block_through_the_process(robot, wait_for_state):
    robot.put(_tcp([-0.2, -0.2]))
    with SceneProcess(CFG, robot, seed=0) as scene:
        pose = scene.get_state()["block_pose"]
        # Drive the tip straight through the block's centroid, from 10 cm to one side to 10 cm beyond.
        direction = np.array([1.0, 0.0]) if pose[0] < 0 else np.array([-1.0, 0.0])
        robot.put(_tcp(pose[:2] - direction * 0.1, z=0.2))  # lifted while getting there
        wait_for_state(scene, lambda s: np.allclose(s["pusher_xy"], pose[:2] - direction * 0.1, atol=1e-6))
        for k in range(40):
            robot.put(_tcp(pose[:2] + direction * (-0.1 + 0.005 * (k + 1))))
            time.sleep(0.02)
        moved = wait_for_state(scene, lambda s: np.linalg.norm(s["block_pose"][:2] - pose[:2]) > 0.02)
        assert (moved["block_pose"][:2] - pose[:2]) @ direction > 0.02


def test_tip_is_lifted_until_the_robot_publishes_and_ignores_nan(robot, wait_for_state):
    with SceneProcess(CFG, robot, seed=0) as scene:
        assert not scene.get_state()["pusher_down"]
        robot.put(_tcp([0.1, 0.2]))
        state = wait_for_state(scene, lambda s: bool(s["pusher_down"]))
        assert np.allclose(state["pusher_xy"], [0.1, 0.2])
        bad = _tcp([0.0, 0.0])
        bad["actual_tcp_pose"][0] = np.nan
        robot.put(bad)
        time.sleep(0.1)
        state = scene.get_state()
        assert np.allclose(state["pusher_xy"], [0.1, 0.2]) and state["pusher_down"]


def test_wrong_robot_pose_key_is_a_clear_error(robot):
    cfg = SceneConfig(robot_pose_key="ActualTCPPose")
    with pytest.raises(KeyError, match="robot_pose_key"):
        SceneProcess(cfg, robot)
