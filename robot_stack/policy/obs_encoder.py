"""Observation encoder: one ResNet per camera (or one shared), plus the low-dim observations.

Feature layout (matters for checkpoints): camera features in sorted key order, then low-dim
observations in sorted key order, concatenated. Submodule names follow the original
``MultiImageObsEncoder`` (``key_model_map.<camera_key>`` or ``key_model_map.rgb`` when shared).

Augmentation: a random crop of ``crop_size`` in training and the center crop at evaluation, so the
network sees the same image size in both.
"""

from __future__ import annotations

import torch
from torch import nn

from robot_stack.policy.config import PolicyConfig
from robot_stack.policy.resnet import ResNetEncoder

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class ObsEncoder(nn.Module):
    """Maps a dict of (N, 3, H, W) images and (N, D) low-dim arrays to (N, out_dim) features."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        vision = cfg.vision
        self.rgb_keys = sorted(cfg.camera_keys)
        self.low_dim_keys = sorted(f.key for f in cfg.low_dim)
        self.low_dim_sizes = {f.key: f.model_dims for f in cfg.low_dim}
        self.image_size = tuple(cfg.image_size)
        self.crop_size = tuple(vision.crop_size) if vision.crop_size is not None else None
        self.share_model = vision.share_model

        def backbone() -> ResNetEncoder:
            return ResNetEncoder(vision.stage_blocks, vision.width, vision.pool, vision.num_keypoints, vision.feature_dim,
                                 vision.feature_relu)

        self.key_model_map = nn.ModuleDict()
        if self.rgb_keys:
            if self.share_model:
                self.key_model_map["rgb"] = backbone()
            else:
                for key in self.rgb_keys:
                    self.key_model_map[key] = backbone()
        self.imagenet_norm = vision.imagenet_norm
        self.register_buffer("img_mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("img_std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        per_camera = next(iter(self.key_model_map.values())).out_dim if self.rgb_keys else 0
        self.out_dim = per_camera * len(self.rgb_keys) + sum(self.low_dim_sizes.values())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        features = []
        images = [self._transform(obs[key]) for key in self.rgb_keys]
        if self.share_model and images:
            n = images[0].shape[0]
            # One batched pass for all cameras, then back to (N, cameras * D) in key order.
            feats = self.key_model_map["rgb"](torch.cat(images, dim=0))
            features.append(feats.reshape(len(images), n, -1).transpose(0, 1).reshape(n, -1))
        else:
            features.extend(self.key_model_map[key](img) for key, img in zip(self.rgb_keys, images))
        features.extend(obs[key] for key in self.low_dim_keys)
        return torch.cat(features, dim=-1)

    def _transform(self, img: torch.Tensor) -> torch.Tensor:
        if self.crop_size is not None:
            img = random_crop(img, self.crop_size) if self.training else center_crop(img, self.crop_size)
        if self.imagenet_norm:
            img = (img - self.img_mean) / self.img_std
        return img


def center_crop(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop the central ``size`` (H, W) window of (N, C, H, W) images.

    The offset is ``round((H - h) / 2)`` (Python's round, half to even) exactly as torchvision's
    ``center_crop``, which the original's eval-time crop uses: flooring differs by a pixel when
    (H - h) % 4 == 3, and an imported checkpoint would see shifted images.
    """
    h, w = img.shape[-2:]
    top, left = int(round((h - size[0]) / 2.0)), int(round((w - size[1]) / 2.0))
    return img[..., top : top + size[0], left : left + size[1]]


def random_crop(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An independent random ``size`` (H, W) window per image of (N, C, H, W) (global torch RNG)."""
    n, _, h, w = img.shape
    ch, cw = size
    top = torch.randint(0, h - ch + 1, (n,)).to(img.device)
    left = torch.randint(0, w - cw + 1, (n,)).to(img.device)
    rows = (top[:, None] + torch.arange(ch, device=img.device))[:, :, None]  # (N, ch, 1)
    cols = (left[:, None] + torch.arange(cw, device=img.device))[:, None, :]  # (N, 1, cw)
    batch = torch.arange(n, device=img.device)[:, None, None]
    # Advanced indexing puts the indexed dims first: (N, ch, cw, C) -> (N, C, ch, cw).
    return img.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
