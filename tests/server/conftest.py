import os
import sys

# Spawned children (PolicyProcess in local mode) import the fake policy by module name: make this folder
# importable there too (spawn passes the parent's sys.path to the child).
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# A Push-T-shaped policy small enough for shared CPUs: one 32x32 camera + eef xy, 2-D actions.
TINY_POLICY = {
    "image_size": [32, 32],
    "vision": {"width": 8, "stage_blocks": [1, 1], "crop_size": [28, 28], "num_keypoints": 8, "feature_dim": 16},
    "unet": {"down_dims": [32, 64], "diffusion_step_embed_dim": 32, "kernel_size": 3},
    "noise_scheduler": {"num_inference_steps": 4},
}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained but complete Push-T checkpoint (normalizer fitted to the sim table's xy range)."""
    import torch

    from robot_stack.policy.checkpoint import save_checkpoint
    from robot_stack.policy.config import load_task_config
    from robot_stack.policy.diffusion_policy import DiffusionPolicy

    torch.manual_seed(0)
    cfg = load_task_config("push_t", {"policy": TINY_POLICY})
    policy = DiffusionPolicy(cfg.policy)
    xy = np.random.default_rng(0).uniform([0.2, -0.25], [0.7, 0.25], size=(256, 2))
    policy.fit_normalizer({"robot_eef_pose": xy}, xy)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(path, cfg, {"model": policy.state_dict()})
    return path


def _with_convention(src, dst, dt: float, delay: int, cameras=None):
    """A copy of checkpoint ``src`` that records a timing convention (and optionally a camera setup)."""
    from robot_stack.data.timing_convention import TimingConvention
    from robot_stack.policy.checkpoint import load_checkpoint, make_convention, save_checkpoint
    from robot_stack.policy.config import task_config_from_dict

    payload = load_checkpoint(src)
    return save_checkpoint(dst, task_config_from_dict(payload["config"]), payload["state_dicts"],
                           payload["train_state"], make_convention(TimingConvention(dt, delay), cameras))


@pytest.fixture
def with_convention():
    """``with_convention(src, dst, dt, delay, cameras=None) -> dst``: a copy of a checkpoint that records a
    timing convention (and a camera setup)."""
    return _with_convention


@pytest.fixture
def serve():
    """Start ``ServerThread``s (a fake policy by default); all are stopped at the end of the test."""
    from server_fakes import FakeDelayPolicy, ServerThread

    started = []

    def start(policy=None, token=None):
        started.append(ServerThread(policy or FakeDelayPolicy(), token))
        return started[-1]

    yield start
    for s in started:
        s.close()
