"""Multimodality: demos pass an obstacle on the left or the right, 50/50 from the same start.

A regressor trained with MSE would average the two modes and drive into the obstacle; Diffusion Policy
must sample both ways around, and rarely anything in between.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robot_stack.policy.config import load_task_config, merge_dicts
from robot_stack.policy.trainer import Trainer

LENGTH = 24
START = np.array([0.0, -0.8])


def obstacle_episodes(n: int = 20, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Paths from START to (0, 0.8) bulging to x = -0.6 (even episodes) or +0.6 (odd) around (0, 0)."""
    rng = np.random.default_rng(seed)
    s = np.linspace(0, 1, LENGTH + 1)
    episodes = []
    for e in range(n):
        side = 1 if e % 2 else -1
        path = np.stack([side * 0.6 * np.sin(np.pi * s), START[1] + 1.6 * s], axis=-1) + rng.normal(0, 0.01, 2)
        pose, action = np.zeros((LENGTH, 6)), np.zeros((LENGTH, 6))
        pose[:, :2], action[:, :2] = path[:-1], path[1:]
        episodes.append({"robot_eef_pose": pose, "action": action})
    return episodes


def test_sampled_actions_cover_both_ways_around(tmp_path: Path, dataset_writer, tiny_overrides_for) -> None:
    seed = 0  # also passes with seeds 1 and 2 (checked when written); one run keeps the suite fast
    root = dataset_writer(tmp_path / "ds", obstacle_episodes(seed=seed), cameras=())
    training = {"batch_size": 64, "max_steps": 600, "num_epochs": 10_000, "lr": 2e-3, "warmup_steps": 20,
                "val_ratio": 0.0, "ema": False, "checkpoint_every_epochs": 10_000, "seed": seed}
    cfg = load_task_config("push_t", merge_dicts(tiny_overrides_for("unet", []), {"training": training}))
    trainer = Trainer(cfg, root, tmp_path / "out", show_progress=False)
    trainer.run()
    policy = trainer.policy.eval()
    policy.configure_inference("ddpm", 100)
    n = 200
    obs = {"robot_eef_pose": torch.tensor(START, dtype=torch.float32).expand(n, 2, 2).contiguous()}
    x = policy.predict_action(obs, generator=torch.Generator().manual_seed(seed))["action_pred"][:, 10, 0].numpy()
    left, right, between = np.mean(x < -0.3), np.mean(x > 0.3), np.mean(np.abs(x) < 0.15)
    hist = np.histogram(x, bins=8, range=(-0.8, 0.8))[0]
    assert left > 0.25 and right > 0.25, f"a mode is missing: left {left:.2f}, right {right:.2f}, histogram {hist}"
    assert between < 0.1, f"{between:.0%} of samples head into the obstacle, histogram {hist}"
