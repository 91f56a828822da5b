"""Diffusion Policy (Chi et al., RSS 2023): models, training data, training loop and checkpoints.

Public API::

    from robot_stack.policy import load_policy, resize_frame
    policy = load_policy("runs/push_t/latest.ckpt", device="cpu")   # eval mode, EMA weights
    policy.n_obs_steps, policy.n_action_steps, policy.horizon, policy.action_dim
    policy.obs_shapes      # {"camera_0": (3, H, W), "robot_eef_pose": (D,)}
    out = policy.predict_action(obs)   # obs[key]: (B, n_obs_steps, *shape); images float RGB in [0, 1]
    out["action"]          # (B, n_action_steps, Da), first one for the latest observation step

Training: ``robot-stack train`` (``robot_stack.cli.train``) or ``robot_stack.policy.trainer.Trainer``.
Task configs: ``robot_stack.policy.config`` (built-ins ``push_t``, ``mug_flip``, ``sauce``).
"""

from robot_stack.policy.checkpoint import load_policy
from robot_stack.policy.config import PolicyConfig, TaskConfig, load_task_config
from robot_stack.policy.diffusion_policy import DiffusionPolicy
from robot_stack.policy.frame_cache import DatasetError, resize_frame

__all__ = [
    "DatasetError",
    "DiffusionPolicy",
    "PolicyConfig",
    "TaskConfig",
    "load_policy",
    "load_task_config",
    "resize_frame",
]
