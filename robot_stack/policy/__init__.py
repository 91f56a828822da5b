"""Diffusion Policy (Chi et al., RSS 2023): models, training data, training loop and checkpoints.

Public API::

    from robot_stack.policy import load_policy, resize_frame
    policy = load_policy("runs/push_t/latest.ckpt", device="cpu")   # eval mode, EMA weights
    policy.n_obs_steps, policy.n_action_steps, policy.horizon, policy.action_dim
    policy.obs_shapes      # {"camera_0": (3, H, W), "robot_eef_pose": (D,)}
    out = policy.predict_action(obs)   # obs[key]: (B, n_obs_steps, *shape); images float RGB in [0, 1]
    out["action"]          # (B, n_action_steps, Da), first one for the latest observation step

Training: ``robot-stack train`` (``robot_stack.cli.train``) or ``robot_stack.policy.trainer.Trainer``.
Task configs: ``robot_stack.policy.config`` (built-ins ``push_t``, ``push_t_small``, ``mug_flip``, ``sauce``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names -> defining module, imported on first use so that importing a light submodule (e.g. the
# config, for `robot-stack --help`) does not pull in torch and diffusers.
_EXPORTS = {
    "DatasetError": "robot_stack.policy.frame_cache",
    "DiffusionPolicy": "robot_stack.policy.diffusion_policy",
    "PolicyConfig": "robot_stack.policy.config",
    "TaskConfig": "robot_stack.policy.config",
    "load_policy": "robot_stack.policy.checkpoint",
    "load_task_config": "robot_stack.policy.config",
    "resize_frame": "robot_stack.policy.frame_cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robot_stack.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
