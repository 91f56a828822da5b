"""The 6-D rotation representation: conversions, continuity, and pose fields through the data reader and policy."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from robot_stack.config import ConfigError
from robot_stack.policy.dataset import load_replay_data
from robot_stack.policy.rotation_6d import (
    decode_pose,
    encode_pose,
    rotation_6d_to_matrix,
    rotation_6d_to_rotvec,
    rotvec_to_6d,
)
from robot_stack.policy.trainer import Trainer

SIX_D = {"low_dim": [{"key": "robot_eef_pose", "dims": 6, "rotation": "rotation_6d"}],
         "action": [{"key": "action", "dims": 6, "rotation": "rotation_6d"}, {"key": "gripper", "dims": 1}]}


def test_round_trip_is_exact_and_the_6d_columns_are_the_matrix_columns():
    rotvecs = Rotation.random(2000, random_state=0).as_rotvec()
    r6 = rotvec_to_6d(rotvecs)
    matrix = Rotation.from_rotvec(rotvecs).as_matrix()
    assert np.array_equal(r6[:, :3], matrix[:, :, 0]) and np.array_equal(r6[:, 3:], matrix[:, :, 1])
    assert np.abs(rotation_6d_to_rotvec(r6) - rotvecs).max() < 1e-9
    poses = np.concatenate([np.random.default_rng(0).normal(size=(2000, 3)), rotvecs, np.ones((2000, 1))], axis=1)
    encoded = encode_pose(poses, "rotation_6d")
    assert encoded.shape == (2000, 10) and np.abs(decode_pose(encoded, "rotation_6d") - poses).max() < 1e-9
    assert encode_pose(poses, "axis_angle") is poses


def test_6d_is_continuous_where_axis_angle_wraps():
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    angles = np.linspace(np.pi - 0.05, np.pi + 0.05, 101)  # through a half turn
    rotvecs = Rotation.from_rotvec(angles[:, None] * axis).as_rotvec()  # scipy keeps the angle in [0, pi]
    assert np.linalg.norm(np.diff(rotvecs, axis=0), axis=1).max() > 6.0  # axis-angle flips to the opposite vector
    assert np.abs(np.diff(rotvec_to_6d(rotvecs), axis=0)).max() < 2e-3  # 1 mrad steps


def test_any_six_numbers_map_to_a_rotation():
    r6 = np.random.default_rng(1).normal(size=(500, 6))
    m = rotation_6d_to_matrix(r6)
    assert np.abs(m @ m.transpose(0, 2, 1) - np.eye(3)).max() < 1e-12
    assert np.abs(np.linalg.det(m) - 1).max() < 1e-12


def test_degenerate_six_numbers_name_no_rotation_and_a_policy_producing_them_says_so(tiny_config):
    for r6 in ([0, 0, 0, 0, 1, 0], [1, -1, 1, -1, 1, -1], [1, 1, 0, 2, 2, 0]):  # zero, antiparallel, parallel
        with pytest.raises(ValueError, match="degenerate 6-D rotation"):
            rotation_6d_to_matrix(np.array([[1.0, 0, 0, 0, 1, 0], r6]))
    from robot_stack.policy.diffusion_policy import DiffusionPolicy

    policy = DiffusionPolicy(tiny_config(cameras=[], **SIX_D).policy).eval()
    # a saturated network: every predicted clean sample clips to -1, so both rotation columns are (-1, -1, -1)
    policy.model.forward = lambda x, t, cond: torch.full_like(x, 1e3)
    obs = {k: torch.zeros(1, policy.n_obs_steps, *shape) for k, shape in policy.obs_shapes.items()}
    with pytest.raises(RuntimeError, match="invalid action: degenerate 6-D rotation"):
        policy.predict_action(obs)


def test_rotation_6d_needs_a_pose_field(tiny_config):
    with pytest.raises(ConfigError, match="robot_eef_pose: rotation rotation_6d needs a pose field"):
        tiny_config(cameras=[], low_dim=[{"key": "robot_eef_pose", "dims": 2, "rotation": "rotation_6d"}])
    with pytest.raises(ConfigError, match=r"rotation: must be one of \['axis_angle', 'rotation_6d'\]"):
        tiny_config(cameras=[], low_dim=[{"key": "robot_eef_pose", "dims": 6, "rotation": "quaternion"}])


def _flipping_episodes(n=4, length=24):
    """Poses turning about z through the axis-angle wrap at pi; action = next pose, gripper closes midway."""
    episodes = []
    for e in range(n):
        angles = np.linspace(np.pi - 0.6, np.pi + 0.6, length + 1) + 0.05 * e
        rot = Rotation.from_euler("z", angles[:, None]).as_rotvec()
        pose = np.concatenate([np.full((length + 1, 3), [0.4, 0.0, 0.2]), rot], axis=1)
        episodes.append({"robot_eef_pose": pose[:-1], "action": pose[1:],
                         "gripper": (np.arange(length) >= length // 2).astype(np.float64)[:, None],
                         "timestamp": 50.0 * e + np.arange(length) * 0.1})
    return episodes


def test_pose_fields_train_and_act_in_6d_but_read_and_return_rotation_vectors(tiny_config, dataset_writer, tmp_path):
    episodes = _flipping_episodes()
    root = dataset_writer(tmp_path / "data", episodes, cameras=())
    cfg = tiny_config(cameras=[], **SIX_D)
    assert cfg.policy.action_dim == 7 and cfg.policy.model_action_dim == 10

    data = load_replay_data(root, cfg.policy, show_progress=False)
    recorded = np.concatenate([ep["robot_eef_pose"] for ep in episodes])
    assert data.low_dim["robot_eef_pose"].shape[1] == 9 and data.action.shape[1] == 10
    assert np.abs(data.low_dim["robot_eef_pose"] - encode_pose(recorded, "rotation_6d")).max() < 1e-6

    cfg.training.num_epochs = 3
    Trainer(cfg, root, tmp_path / "run", show_progress=False).run()
    from robot_stack.policy.checkpoint import load_policy
    policy = load_policy(tmp_path / "run" / "latest.ckpt")
    assert policy.obs_shapes["robot_eef_pose"] == (6,) and policy.action_dim == 7

    obs = {"robot_eef_pose": torch.from_numpy(recorded[None, :2]).float()}  # recorded units: rotation vectors
    out = policy.predict_action(obs, generator=torch.Generator().manual_seed(0))
    assert out["action"].shape == (1, policy.n_action_steps, 7)
    rotvec = out["action_pred"][0, :, 3:6].numpy()
    assert np.linalg.norm(rotvec, axis=1).max() <= np.pi + 1e-6  # valid rotation vectors came back

    planned = torch.from_numpy(np.concatenate([recorded[2:5], np.zeros((3, 1))], axis=1)[None]).float()
    inpainted = policy.predict_action(obs, generator=torch.Generator().manual_seed(0), planned=planned)["action"]
    same = Rotation.from_rotvec(inpainted[0, :3, 3:6].numpy()).inv() * Rotation.from_rotvec(planned[0, :, 3:6].numpy())
    assert same.magnitude().max() < 1e-3  # the committed plan comes back in rotation vectors
    assert torch.allclose(inpainted[0, :3, :3], planned[0, :, :3], atol=1e-4)
