"""Importing weights from an original Diffusion Policy checkpoint without running its pickles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from robot_stack.config import ConfigError
from robot_stack.policy import load_policy
from robot_stack.policy.diffusion_policy import DiffusionPolicy
from robot_stack.policy.original_checkpoint import extract_state_dicts, import_original_checkpoint, main


class HydraConfigStandIn:
    """Pickled like the original's config object; unpickling it for real would run a command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def original_like_checkpoint(path: Path, policy: DiffusionPolicy, ema: DiffusionPolicy, marker: Path) -> None:
    """The original payload layout: cfg + state_dicts(model, ema_model, optimizer) + pickles."""

    def with_dummies(state: dict) -> dict:
        # the original's ModuleAttrMixin adds empty `_dummy_variable` parameters
        return {**state, "_dummy_variable": torch.zeros(0), "obs_encoder._dummy_variable": torch.zeros(0)}

    payload = {
        "cfg": HydraConfigStandIn(marker),
        "state_dicts": {"model": with_dummies(policy.state_dict()), "ema_model": with_dummies(ema.state_dict()),
                        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.95, 0.999)}]}},
        "pickles": {"_output_dir": HydraConfigStandIn(marker)},
    }
    torch.save(payload, path)


def test_import_original_checkpoint(tmp_path: Path, tiny_config) -> None:
    cfg = tiny_config(vision={"pool": "avg", "imagenet_norm": True}, cameras=[0, 1])
    torch.manual_seed(0)
    policy, ema = DiffusionPolicy(cfg.policy), DiffusionPolicy(cfg.policy)
    ema.normalizer.fit("action", torch.rand(50, 2).numpy())
    marker = tmp_path / "pwned"
    src = tmp_path / "original.ckpt"
    original_like_checkpoint(src, policy, ema, marker)

    states = extract_state_dicts(src)
    assert not marker.exists()  # nothing named by the file was run
    assert set(states) == {"model", "ema_model"}
    dst = import_original_checkpoint(src, cfg, tmp_path / "ours.ckpt")
    loaded = load_policy(dst)  # EMA weights by default
    obs = {"camera_0": torch.rand(2, 2, 3, 32, 32), "camera_1": torch.rand(2, 2, 3, 32, 32),
           "robot_eef_pose": torch.rand(2, 2, 2)}
    expected = ema.eval().predict_action(obs, generator=torch.Generator().manual_seed(0))["action_pred"]
    got = loaded.predict_action(obs, generator=torch.Generator().manual_seed(0))["action_pred"]
    assert torch.equal(got, expected)
    assert not marker.exists()


def test_mismatched_config_lists_the_differences(tmp_path: Path, tiny_config, capsys) -> None:
    cfg = tiny_config(vision={"pool": "avg"})
    src = tmp_path / "original.ckpt"
    original_like_checkpoint(src, DiffusionPolicy(cfg.policy), DiffusionPolicy(cfg.policy), tmp_path / "m")
    wrong = tiny_config(vision={"pool": "spatial_softmax"}, unet={"down_dims": [32, 128]})
    with pytest.raises(ConfigError, match=r"missing \[.*fc.weight.*shape mismatch"):
        import_original_checkpoint(src, wrong, tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()
    torch.save({"weights": {}}, tmp_path / "other.ckpt")
    assert main([str(tmp_path / "other.ckpt"), "--config", "push_t", "--out", str(tmp_path / "y.ckpt")]) == 2
    assert "no 'state_dicts'" in capsys.readouterr().err
