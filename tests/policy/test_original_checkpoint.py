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


HYBRID_VISION = {"pool": "spatial_softmax", "stage_blocks": [2, 2, 2, 2], "width": 64, "num_keypoints": 32,
                 "feature_dim": 64, "feature_relu": True, "crop_size": [84, 84]}
STAGES = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}


def hybrid_layout(ours: dict[str, torch.Tensor], names: dict[str, str]) -> dict[str, torch.Tensor]:
    """Our state dict rewritten in the original DiffusionUnetHybridImagePolicy's layout (robomimic VisualCore:
    backbone.nets.<i>, pool.nets + fixed buffers, and nets.<i> as second views of the same modules), with the
    original's observation names (``names``: ours -> theirs) and its empty dummy parameters."""
    import numpy as np

    out = {"_dummy_variable": torch.zeros(0), "mask_generator._dummy_variable": torch.zeros(0)}
    for name, value in ours.items():
        if name.startswith("obs_encoder.key_model_map."):
            key, module, rest = name[len("obs_encoder.key_model_map."):].split(".", 2)
            base = f"obs_encoder.obs_nets.{names.get(key, key)}"
            if module in STAGES:
                for view in ("backbone.nets", "nets.0.nets"):
                    out[f"{base}.{view}.{STAGES[module]}.{rest}"] = value
            elif module == "pool":  # pool.keypoints.<weight|bias>
                for view in ("pool", "nets.1"):
                    out[f"{base}.{view}.nets.{rest.split('.')[-1]}"] = value
            else:  # fc
                out[f"{base}.nets.3.{rest}"] = value
        elif name.startswith("normalizer.params_dict."):
            key, rest = name[len("normalizer.params_dict."):].split(".", 1)
            out[f"normalizer.params_dict.{names.get(key, key)}.{rest}"] = value
        else:
            out[name] = value
    for key in ("image",):
        pos_x, pos_y = np.meshgrid(np.linspace(-1.0, 1.0, 3), np.linspace(-1.0, 1.0, 3))  # 84 px -> 3x3 map
        for view in ("pool", "nets.1"):
            out[f"obs_encoder.obs_nets.{key}.{view}.temperature"] = torch.ones(1)
            out[f"obs_encoder.obs_nets.{key}.{view}.pos_x"] = torch.from_numpy(pos_x.reshape(1, 9)).float()
            out[f"obs_encoder.obs_nets.{key}.{view}.pos_y"] = torch.from_numpy(pos_y.reshape(1, 9)).float()
    return out


def robomimic_features(sd: dict[str, torch.Tensor], key: str, images: torch.Tensor) -> torch.Tensor:
    """What the original's hybrid encoder computes at eval for one camera, written from its state dict:
    torchvision center crop, ResNet-18 (GroupNorm C/16), 1x1 conv, spatial softmax over its position
    buffers, Linear, ReLU."""
    import torch.nn.functional as F

    p = f"obs_encoder.obs_nets.{key}."
    h, w = images.shape[-2:]
    top, left = int(round((h - 84) / 2.0)), int(round((w - 84) / 2.0))
    x = images[..., top:top + 84, left:left + 84]

    def gn(x, prefix):
        return F.group_norm(x, x.shape[1] // 16, sd[prefix + ".weight"], sd[prefix + ".bias"])

    b = p + "backbone.nets."
    x = F.max_pool2d(F.relu(gn(F.conv2d(x, sd[b + "0.weight"], stride=2, padding=3), b + "1")), 3, 2, 1)
    for stage in "4567":
        for block in "01":
            q = f"{b}{stage}.{block}."
            stride = 2 if stage != "4" and block == "0" else 1
            out = F.relu(gn(F.conv2d(x, sd[q + "conv1.weight"], stride=stride, padding=1), q + "bn1"))
            out = gn(F.conv2d(out, sd[q + "conv2.weight"], padding=1), q + "bn2")
            identity = x
            if q + "downsample.0.weight" in sd:
                identity = gn(F.conv2d(x, sd[q + "downsample.0.weight"], stride=stride), q + "downsample.1")
            x = F.relu(out + identity)
    feat = F.conv2d(x, sd[p + "pool.nets.weight"], sd[p + "pool.nets.bias"])
    n, k, fh, fw = feat.shape
    attn = F.softmax(feat.reshape(-1, fh * fw) / sd[p + "pool.temperature"], dim=-1)
    xy = torch.cat([torch.sum(sd[p + "pool.pos_x"] * attn, 1, keepdim=True),
                    torch.sum(sd[p + "pool.pos_y"] * attn, 1, keepdim=True)], 1).view(n, k * 2)
    return F.relu(F.linear(xy, sd[p + "nets.3.weight"], sd[p + "nets.3.bias"]))


def test_import_original_hybrid_checkpoint_is_bit_exact(tmp_path: Path, tiny_config) -> None:
    """The paper's real-robot encoder (robomimic ResNet-18 GroupNorm + spatial softmax), random weights in the
    original's key layout and Push-T sim names (image, agent_pos): imported, it computes the same features."""
    cfg = tiny_config(vision=HYBRID_VISION, image_size=[96, 96])
    torch.manual_seed(0)
    source = DiffusionPolicy(cfg.policy)
    ours = {k: (torch.randn_like(v) if "bn" in k or "downsample.1" in k else v) for k, v in source.state_dict().items()}
    original = hybrid_layout(ours, {"camera_0": "image", "robot_eef_pose": "agent_pos"})
    src = tmp_path / "hybrid.ckpt"
    torch.save({"cfg": None, "state_dicts": {"model": original}, "pickles": {}}, src)
    policy = load_policy(import_original_checkpoint(src, cfg, tmp_path / "ours.ckpt"))
    images = torch.rand(2, 3, 96, 96)
    features = policy.obs_encoder({"camera_0": images, "robot_eef_pose": torch.rand(2, 2)})
    assert torch.equal(features[:, :64], robomimic_features(original, "image", images))
    assert (features[:, :64] == 0).any() and (features[:, :64] > 0).any()  # the ReLU is there and matters

    bad = dict(original, **{"obs_encoder.obs_nets.image.pool.temperature": torch.full((1,), 0.5)})
    torch.save({"state_dicts": {"model": bad}}, tmp_path / "bad.ckpt")
    with pytest.raises(ConfigError, match="only the default spatial-softmax temperature 1"):
        import_original_checkpoint(tmp_path / "bad.ckpt", cfg, tmp_path / "x.ckpt")
