"""PushTPhysics: determinism, resets, coverage, pushing, friction, walls and the lifted tip."""

import numpy as np
import pytest

from robot_stack.sim.pusht import SCENE_STATE_SPEC, PushTPhysics, SceneConfig
from robot_stack.sim.pusht.geometry import point_polygon_distance, transform_points

CFG = SceneConfig()


def _run(seed: int, targets: np.ndarray) -> list[dict]:
    physics = PushTPhysics(CFG)
    states = [physics.reset(seed)]
    for target in targets:
        states.append(physics.step(target))
    return states


def test_state_record_matches_the_ring_buffer_spec():
    state = PushTPhysics(CFG).reset(0)
    assert state.keys() == SCENE_STATE_SPEC.keys()
    for name, (shape, dtype) in SCENE_STATE_SPEC.items():
        value = np.asarray(state[name])
        assert value.shape == shape and value.dtype == np.dtype(dtype), name


def test_same_seed_and_targets_give_identical_trajectories():
    rng = np.random.default_rng(1)
    # A random walk of the tip across the table, so it hits the block in some runs.
    targets = np.clip(np.cumsum(rng.normal(0, 0.01, (400, 2)), axis=0), -0.23, 0.23)
    a, b = _run(7, targets), _run(7, targets)
    for sa, sb in zip(a, b):
        for name in SCENE_STATE_SPEC:
            assert np.array_equal(sa[name], sb[name]), name
    assert not np.array_equal(_run(8, targets[:1])[0]["block_pose"], a[0]["block_pose"])


def test_random_resets_are_valid_starts():
    physics = PushTPhysics(CFG)
    half = np.asarray(CFG.table_size) / 2
    for seed in range(50):
        state = physics.reset(seed)
        corners = transform_points(CFG.block_outline, state["block_pose"])
        assert np.all(np.abs(corners) <= half + 1e-9), seed
        assert point_polygon_distance(state["pusher_xy"], corners) > CFG.pusher_radius, seed
        assert state["coverage"] < 0.5 and not state["success"]
        assert state["episode"] == seed + 1 and state["seed"] == seed and state["timestamp"] == 0.0
    # A given tip position is kept and the block avoids it.
    state = physics.reset(3, pusher_xy=np.array([0.1, -0.05]))
    assert np.allclose(state["pusher_xy"], [0.1, -0.05])
    assert point_polygon_distance(state["pusher_xy"], transform_points(CFG.block_outline, state["block_pose"])) > 0.015


def test_coverage_is_one_at_the_goal_and_small_far_away():
    physics = PushTPhysics(CFG)
    physics.set_pose(np.asarray(CFG.goal_pose), np.array([-0.2, -0.2]))
    state = physics.state()
    assert state["coverage"] == pytest.approx(1.0, abs=1e-5) and state["success"]
    physics.set_pose(np.array([0.15, 0.15, 0.0]), np.array([-0.2, -0.2]))
    state = physics.state()
    assert state["coverage"] < 0.1 and not state["success"]
    # Just below the threshold is not a success.
    physics.set_pose(np.asarray(CFG.goal_pose) + (0.0, 0.0, 0.2), np.array([-0.2, -0.2]))
    state = physics.state()
    assert state["coverage"] < CFG.success_threshold and not state["success"]


def test_pushing_moves_the_block_and_friction_stops_it():
    physics = PushTPhysics(CFG)
    # Block upright at the centre; the tip pushes the stem's left face (centroid height) to +x at 5 cm/s.
    physics.set_pose(np.zeros(3), np.array([-0.1, 0.0]))
    tip = np.array([-0.1, 0.0])
    for _ in range(200):
        tip = tip + (0.0005, 0.0)
        state = physics.step(tip)
    # The tip travelled 10 cm; its face starts 7 cm from the stem, so the block moved about 3 cm along +x.
    assert 0.02 < state["block_pose"][0] < 0.04
    assert abs(state["block_pose"][1]) < 0.01 and abs(state["block_pose"][2]) < 0.2
    # Then the tip backs off and the block comes to rest within a few millimeters.
    rest = state["block_pose"].copy()
    for _ in range(100):
        state = physics.step(np.array([-0.2, 0.0]))
    assert np.linalg.norm(state["block_pose"][:2] - rest[:2]) < 0.003
    later = physics.step(np.array([-0.2, 0.0]))
    assert np.array_equal(later["block_pose"], state["block_pose"])  # at rest, exactly


def test_off_centre_push_turns_the_block():
    physics = PushTPhysics(CFG)
    # Push the underside of the bar's right end upward: the block turns counter-clockwise.
    bar_bottom = CFG.block_parts[0][0, 1]
    start = np.array([0.045, bar_bottom - CFG.pusher_radius - 0.005])
    physics.set_pose(np.zeros(3), start)
    for i in range(100):
        state = physics.step(start + (0.0, 0.0004 * (i + 1)))
    assert state["block_pose"][2] > 0.1


def test_lifted_tip_passes_over_the_block():
    physics = PushTPhysics(CFG)
    physics.set_pose(np.zeros(3), np.array([-0.15, 0.0]))
    for i in range(150):
        state = physics.step(np.array([-0.15 + 0.002 * (i + 1), 0.0]), pusher_down=False)
    assert np.allclose(state["pusher_xy"], [0.15, 0.0])
    assert not state["pusher_down"]
    assert np.array_equal(state["block_pose"], np.zeros(3))


def test_tip_lowered_onto_the_block_rests_on_it():
    physics = PushTPhysics(CFG)
    physics.set_pose(np.zeros(3), np.array([0.0, 0.0]))
    physics.set_pusher_down(False)
    state = physics.step(np.array([0.0, 0.0]), pusher_down=True)
    assert not state["pusher_down"] and np.array_equal(state["block_pose"], np.zeros(3))
    # Moving while "down" slides over the top; once clear of the block it comes down.
    for i in range(100):
        state = physics.step(np.array([0.0, -0.002 * (i + 1)]), pusher_down=True)
    assert state["pusher_down"] and np.array_equal(state["block_pose"], np.zeros(3))


def test_walls_keep_the_block_on_the_table():
    physics = PushTPhysics(CFG)
    physics.set_pose(np.array([0.1, 0.0, 0.0]), np.array([0.0, 0.0]))
    # Shove the block into the +x wall (the tip itself may go past it: it is the robot, not a table object).
    for i in range(300):
        state = physics.step(np.array([min(0.002 * (i + 1), 0.3), 0.0]))
    corners = transform_points(CFG.block_outline, state["block_pose"])
    assert corners[:, 0].max() <= CFG.table_size[0] / 2 + 0.003


def test_tip_speed_is_limited():
    physics = PushTPhysics(CFG)
    physics.set_pose(np.array([0.15, 0.15, 0.0]), np.array([-0.2, -0.2]))
    state = physics.step(np.array([0.2, -0.2]))
    assert state["pusher_xy"][0] == pytest.approx(-0.2 + CFG.max_pusher_speed / CFG.physics_hz)


@pytest.mark.parametrize("target", [[np.nan, 0.0], [0.0, np.inf], [0.0, 0.0, 0.0]])
def test_bad_targets_are_rejected(target):
    physics = PushTPhysics(CFG)
    physics.reset(0)
    with pytest.raises(ValueError, match="2 finite numbers"):
        physics.step(np.array(target))
