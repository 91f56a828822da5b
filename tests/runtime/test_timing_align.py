import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_stack.runtime import interpolate_poses, nearest_indices, now, precise_sleep, precise_wait


def test_precise_wait_reaches_target_without_large_overshoot():
    errors = []
    for _ in range(20):
        t_end = now() + 0.005
        precise_wait(t_end)
        errors.append(now() - t_end)
    errors = np.array(errors)
    assert np.all(errors >= 0)
    assert np.median(errors) < 0.002  # generous: the CI machine is shared


def test_precise_sleep_duration():
    t0 = now()
    precise_sleep(0.02)
    assert 0.02 <= now() - t0 < 0.05


def test_nearest_indices_picks_nearest_sample():
    ts = np.array([0.0, 0.1, 0.2, 0.35])
    np.testing.assert_array_equal(nearest_indices(ts, [-1.0, 0.04, 0.06, 0.3, 0.27, 9.0]), [0, 0, 1, 3, 2, 3])
    np.testing.assert_array_equal(nearest_indices([5.0], [0.0, 10.0]), [0, 0])
    with pytest.raises(ValueError, match="no samples"):
        nearest_indices([], [0.0])


def test_interpolate_poses_linear_position_slerp_rotation_and_clamping():
    ts = np.array([0.0, 1.0])
    r0 = np.zeros(3)
    r1 = np.array([0.0, 0.0, np.pi / 2])
    poses = np.array([[0, 0, 0, *r0], [1, 2, 3, *r1]], dtype=float)
    out = interpolate_poses(ts, poses, [0.5, -1.0, 2.0])
    np.testing.assert_allclose(out[0, :3], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(Rotation.from_rotvec(out[0, 3:]).as_euler("xyz")[2], np.pi / 4, atol=1e-9)
    np.testing.assert_allclose(out[1], poses[0])
    np.testing.assert_allclose(out[2], poses[1])


def test_interpolate_poses_rejects_bad_input():
    with pytest.raises(ValueError, match="strictly increasing"):
        interpolate_poses([0.0, 0.0], np.zeros((2, 6)), [0.0])
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        interpolate_poses([0.0], np.zeros((1, 3)), [0.0])
