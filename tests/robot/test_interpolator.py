import math

import numpy as np
import pytest

from robot_stack.hardware.robot.interpolator import PoseTrajectoryInterpolator, pose_distance

DOWN = [math.pi, 0.0, 0.0]
P0 = np.array([0.4, 0.0, 0.1, *DOWN])
V_MAX, W_MAX = 0.25, 0.6


def moved(dx=0.0, dy=0.0, dz=0.0, rot=None):
    p = P0.copy()
    p[:3] += [dx, dy, dz]
    if rot is not None:
        p[3:] = rot
    return p


def assert_same_pose(a, b, tol=1e-9):
    pos, rot = pose_distance(a, b)
    assert pos < tol and rot < tol, f"poses differ by {pos} m / {rot} rad: {a} vs {b}"


def segment_speeds(traj):
    times, poses = traj.times, traj.poses
    out = []
    for i in range(1, len(times)):
        pos, rot = pose_distance(poses[i - 1], poses[i])
        out.append((pos / (times[i] - times[i - 1]), rot / (times[i] - times[i - 1])))
    return np.array(out).reshape(-1, 2)


def test_interpolates_linearly_and_holds_at_the_ends():
    traj = PoseTrajectoryInterpolator([1.0, 3.0], [P0, moved(dx=0.2)])
    np.testing.assert_allclose(traj(2.0), moved(dx=0.1), atol=1e-12)
    np.testing.assert_allclose(traj(0.0), P0)
    np.testing.assert_allclose(traj(10.0), moved(dx=0.2))
    assert traj([1.0, 2.0, 3.0]).shape == (3, 6)


def test_rejects_bad_knots():
    with pytest.raises(ValueError, match="strictly increasing"):
        PoseTrajectoryInterpolator([1.0, 1.0], [P0, P0])
    with pytest.raises(ValueError, match="finite"):
        PoseTrajectoryInterpolator([1.0], [moved(dx=float("nan"))])


def test_past_waypoints_are_dropped():
    traj = PoseTrajectoryInterpolator([0.0], [P0])
    assert traj.schedule_waypoint(moved(dx=0.05), 0.9, V_MAX, W_MAX, curr_time=1.0) is traj
    assert traj.schedule_waypoint(moved(dx=0.05), 1.0, V_MAX, W_MAX, curr_time=1.0) is traj


def test_reachable_waypoints_keep_their_times_and_append_after_the_last_one():
    traj = PoseTrajectoryInterpolator([0.0], [P0])
    traj = traj.schedule_waypoint(moved(dx=0.05), 1.5, V_MAX, W_MAX, curr_time=1.0)
    traj = traj.schedule_waypoint(moved(dx=0.05, dy=0.05), 2.0, V_MAX, W_MAX, curr_time=1.1, last_waypoint_time=1.5)
    np.testing.assert_allclose(traj.times, [1.1, 1.5, 2.0])  # the past (before t=1.1) is trimmed
    np.testing.assert_allclose(traj(1.5), moved(dx=0.05), atol=1e-12)
    np.testing.assert_allclose(traj(2.0), moved(dx=0.05, dy=0.05), atol=1e-12)


def test_too_fast_waypoints_are_time_stretched_to_the_speed_limits():
    traj = PoseTrajectoryInterpolator([0.0], [P0])
    fast = traj.schedule_waypoint(moved(dx=0.25), 0.1, V_MAX, W_MAX, curr_time=0.0)
    assert fast.end_time == pytest.approx(0.25 / V_MAX)  # 1 s instead of 0.1 s
    np.testing.assert_allclose(fast(fast.end_time), moved(dx=0.25), atol=1e-12)
    spin = traj.schedule_waypoint(moved(rot=[0.0, math.pi, 0.0]), 0.1, V_MAX, W_MAX, curr_time=0.0)
    _, angle = pose_distance(P0, moved(rot=[0.0, math.pi, 0.0]))
    assert spin.end_time == pytest.approx(angle / W_MAX)


def test_an_earlier_waypoint_replaces_the_rest_of_the_plan_without_a_jump():
    traj = PoseTrajectoryInterpolator([0.0], [P0])
    traj = traj.schedule_waypoint(moved(dx=0.1), 1.0, V_MAX, W_MAX, curr_time=0.0)
    traj = traj.schedule_waypoint(moved(dx=0.1, dy=0.1), 2.0, V_MAX, W_MAX, curr_time=0.0, last_waypoint_time=1.0)
    before = traj(0.5)
    new = traj.schedule_waypoint(moved(dy=-0.05), 1.5, V_MAX, W_MAX, curr_time=0.5, last_waypoint_time=2.0)
    np.testing.assert_allclose(new.times, [0.5, 1.5])
    np.testing.assert_allclose(new(0.5), before, atol=1e-12)
    np.testing.assert_allclose(new(1.5), moved(dy=-0.05), atol=1e-12)


def test_random_streams_never_exceed_the_speed_limits_or_jump():
    rng = np.random.default_rng(0)
    traj = PoseTrajectoryInterpolator([0.0], [P0])
    last, t = 0.0, 0.0
    for _ in range(300):
        t += rng.uniform(0.0, 0.05)
        target_time = t + rng.uniform(-0.05, 0.4)
        rot = (np.array(DOWN) + rng.normal(0, 0.3, 3)).tolist()
        pose = moved(*rng.uniform(-0.15, 0.15, 3), rot=rot)
        before = traj(t)
        new = traj.schedule_waypoint(pose, target_time, V_MAX, W_MAX, curr_time=t, last_waypoint_time=last)
        assert_same_pose(new(t), before)  # no jump at the current time
        if new is not traj:
            assert new.end_time >= target_time - 1e-12
            assert_same_pose(new(new.end_time), pose)
            last = new.end_time
        traj = new
        speeds = segment_speeds(traj)
        assert np.all(speeds[:, 0] <= V_MAX * (1 + 1e-9)) and np.all(speeds[:, 1] <= W_MAX * (1 + 1e-9))


def test_drive_to_waypoint_replaces_the_plan_from_the_current_pose():
    traj = PoseTrajectoryInterpolator([0.0, 1.0], [P0, moved(dx=0.1)])
    new = traj.drive_to_waypoint(moved(dy=0.05), time=0.9, curr_time=0.5, max_pos_speed=V_MAX, max_rot_speed=W_MAX)
    np.testing.assert_allclose(new.times, [0.5, 0.9])  # 7 cm in 0.4 s: within the speed limit
    np.testing.assert_allclose(new(0.5), traj(0.5), atol=1e-12)
    np.testing.assert_allclose(new(0.9), moved(dy=0.05), atol=1e-12)
    slow = traj.drive_to_waypoint(moved(dy=0.25), time=0.6, curr_time=0.5, max_pos_speed=V_MAX, max_rot_speed=W_MAX)
    dist, _ = pose_distance(traj(0.5), moved(dy=0.25))
    assert slow.end_time == pytest.approx(0.5 + dist / V_MAX)


def test_without_last_waypoint_time_the_new_segment_starts_now():
    """As the original's interpolator: no ``last_waypoint_time`` -> the plan after ``curr_time`` is replaced by
    one segment from the pose commanded at ``curr_time`` (not appended after the last knot)."""
    traj = PoseTrajectoryInterpolator([0.0, 1.0, 2.0], [moved(), moved(dx=0.1), moved(dx=0.2)])
    new = traj.schedule_waypoint(moved(dy=0.05), 1.8, V_MAX, W_MAX, curr_time=0.5)
    assert np.allclose(new.times, [0.5, 1.8]) and np.allclose(new(0.5), traj(0.5))
    assert np.allclose(new(1.8), moved(dy=0.05))
    rng = np.random.default_rng(1)
    for _ in range(300):  # the same as saying "the last waypoint is now", over random trajectories
        n = int(rng.integers(1, 5))
        times = np.cumsum(rng.uniform(0.05, 0.6, n))
        poses = [moved(*rng.uniform(-0.1, 0.1, 3)) for _ in range(n)]
        traj = PoseTrajectoryInterpolator(times, poses)
        curr, target = rng.uniform(0, 2.5), moved(*rng.uniform(-0.1, 0.1, 3))
        t = curr + rng.uniform(0.01, 1.0)
        a = traj.schedule_waypoint(target, t, V_MAX, W_MAX, curr_time=curr)
        b = traj.schedule_waypoint(target, t, V_MAX, W_MAX, curr_time=curr, last_waypoint_time=curr)
        assert np.allclose(a.times, b.times) and np.allclose(a.poses, b.poses)
        assert a.times[-2] <= curr + 1e-12  # nothing planned survives between now and the new waypoint
