import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_stack.hardware.robot.kinematics import (
    UR5Kinematics,
    ik_flange_all,
    matrix_to_rotvec,
    pose_to_matrix,
    rotvec_to_matrix,
)

KIN = UR5Kinematics()


@pytest.mark.parametrize(
    "q, position, rotvec",
    [
        # arm stretched out along -x: x = a2 + a3, y = -(d4 + d6), z = d1 - d5; flange z-axis along -y
        ([0, 0, 0, 0, 0, 0], [-0.81725, -0.19145, 0.089159 - 0.09465], [math.pi / 2, 0, 0]),
        # same, base turned by +90 degrees
        ([math.pi / 2, 0, 0, 0, 0, 0], [0.19145, -0.81725, 0.089159 - 0.09465], None),
        # upper arm and forearm pointing straight up: z = d1 + 0.425 + 0.39225, wrist offset d5 toward -x
        ([0, -math.pi / 2, 0, 0, 0, 0], [-0.09465, -0.19145, 0.089159 + 0.81725], None),
    ],
)
def test_fk_matches_hand_derived_poses(q, position, rotvec):
    pose = KIN.fk(q)
    np.testing.assert_allclose(pose[:3], position, atol=1e-9)
    if rotvec is not None:
        np.testing.assert_allclose(pose[3:], rotvec, atol=1e-9)


def test_tcp_offset_is_applied_in_the_flange_frame():
    kin = UR5Kinematics(tcp_offset=[0, 0, 0.1, 0, 0, 0])
    # at q = 0 the flange z-axis points along -y, so a 10 cm tool moves the TCP 10 cm further along -y
    np.testing.assert_allclose(kin.fk([0] * 6)[:3], [-0.81725, -0.29145, 0.089159 - 0.09465], atol=1e-9)


def test_every_ik_solution_reproduces_the_pose():
    rng = np.random.default_rng(0)
    for _ in range(300):
        q = rng.uniform(-math.pi, math.pi, 6)
        target = KIN.fk_matrix(q)
        solutions = ik_flange_all(target)
        assert 1 <= len(solutions) <= 8
        assert len(np.unique(solutions.round(6), axis=0)) == len(solutions)
        for sol in solutions:
            np.testing.assert_allclose(KIN.fk_matrix(sol), target, atol=1e-8)


def test_fk_of_ik_round_trips_with_tcp_offset_and_picks_the_nearest_solution():
    kin = UR5Kinematics(tcp_offset=[0.01, -0.02, 0.15, 0.1, 0.0, 0.2])
    rng = np.random.default_rng(1)
    for _ in range(200):
        q = rng.uniform(-math.pi, math.pi, 6)
        pose = kin.fk(q)
        q_near = q + rng.normal(0, 0.02, 6)
        q_ik = kin.ik(pose, q_near)
        assert q_ik is not None
        np.testing.assert_allclose(kin.fk(q_ik), pose, atol=1e-8)
        # the nearest solution is the original branch, unless (near a singularity) another one is as near
        others = [s for s in kin.ik_all(pose) if np.abs(s - q).max() > 1e-6]
        if all(np.linalg.norm(s - q_near) > np.linalg.norm(q - q_near) + 0.1 for s in others):
            np.testing.assert_allclose(q_ik, q, atol=1e-6)


def test_ik_unwraps_joints_toward_the_reference_instead_of_the_short_angle():
    q = np.array([5.5, -1.2, 1.5, -1.9, -1.6, -5.0])  # |q0|, |q5| > pi: beyond the wrapped range
    q_ik = KIN.ik(KIN.fk(q), q)
    np.testing.assert_allclose(q_ik, q, atol=1e-6)


def test_ik_respects_joint_limits():
    q = np.array([0.3, -1.2, 1.5, -1.9, -1.6, 0.2])
    pose = KIN.fk(q)
    # forbid the elbow-up branch (q2 > 0): the solver must return another branch that reaches the pose
    limited = UR5Kinematics(joint_limits=([-6.28] * 6, [6.28, 6.28, 0.0, 6.28, 6.28, 6.28]))
    q_ik = limited.ik(pose, q)
    assert q_ik is not None and q_ik[2] <= 0.0
    np.testing.assert_allclose(limited.fk(q_ik), pose, atol=1e-8)
    # nothing inside these limits reaches the pose
    boxed = UR5Kinematics(joint_limits=(q - 1e-3 + [1.0, 0, 0, 0, 0, 0], q + 1.0 + [1.0, 0, 0, 0, 0, 0]))
    assert boxed.ik(pose, q) is None


def test_unreachable_poses_have_no_solution():
    assert KIN.ik([2.0, 0.0, 0.0, 0.0, 0.0, 0.0], np.zeros(6)) is None  # beyond the 0.85 m reach
    assert KIN.ik([0.0, 0.0, 0.3, 0.0, 0.0, 0.0], np.zeros(6)) is None  # inside the shoulder-offset cylinder


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(2)
    kin = UR5Kinematics(tcp_offset=[0, 0, 0.15, 0, 0, 0])
    for _ in range(20):
        q = rng.uniform(-math.pi, math.pi, 6)
        qd = rng.normal(0, 1, 6)
        eps = 1e-7
        t0, t1 = kin.fk_matrix(q), kin.fk_matrix(q + qd * eps)
        v = (t1[:3, 3] - t0[:3, 3]) / eps
        w = Rotation.from_matrix(t1[:3, :3] @ t0[:3, :3].T).as_rotvec() / eps
        np.testing.assert_allclose(kin.tcp_speed(q, qd), np.concatenate([v, w]), atol=1e-5)


def test_rotation_conversions_agree_with_scipy_including_near_zero_and_pi():
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, math.pi, 100), [0, 1e-9, 1e-5, math.pi - 1e-7, math.pi] * 20])
    for axis, angle in zip(axes, angles):
        rv = axis * angle
        m = Rotation.from_rotvec(rv).as_matrix()
        np.testing.assert_allclose(rotvec_to_matrix(rv), m, atol=1e-12)
        back = matrix_to_rotvec(m)
        assert np.linalg.norm(back) <= math.pi + 1e-12
        np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), m, atol=1e-12)
    np.testing.assert_allclose(pose_to_matrix([1, 2, 3, 0, 0, 0])[:3, 3], [1, 2, 3])
