"""ResNet image backbone with GroupNorm and a spatial-softmax (or average) pooling head.

Written here instead of importing torchvision (whose PyPI wheel does not import beside the pinned CPU
torch). Module and parameter names follow torchvision's ``resnet18`` (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` ...), with every BatchNorm replaced by ``GroupNorm(C // 16, C)`` under the same
name, exactly as the original Diffusion Policy does; so its image-encoder weights map one to one.

Diffusion Policy trains the encoder end to end with small batches; GroupNorm keeps its statistics
independent of the batch (BatchNorm interacts badly with the EMA weights used at inference).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with ~16 channels per group (the original's BatchNorm replacement rule)."""
    groups = max(1, channels // 16)
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34 block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = group_norm(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = group_norm(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), group_norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SpatialSoftmax(nn.Module):
    """Keypoint pooling: a 1x1 conv makes ``num_keypoints`` heat maps; each is softmaxed over space and
    reduced to its expected (x, y) position in [-1, 1]. Output ``(B, 2 * num_keypoints)``.

    Unlike average pooling this keeps *where* things are, which is what visuomotor control needs.
    """

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        heat = self.keypoints(x).flatten(2)  # (B, K, H*W)
        attn = F.softmax(heat, dim=-1)
        grid_x, grid_y = (g.to(device=x.device, dtype=x.dtype) for g in keypoint_grid(h, w))
        ex = (attn * grid_x).sum(-1)
        ey = (attn * grid_y).sum(-1)
        return torch.stack([ex, ey], dim=-1).reshape(b, -1)


@functools.lru_cache(maxsize=16)
def keypoint_grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel positions in [-1, 1], (1, 1, H*W) each for x and y, row-major.

    Made as robomimic makes them (numpy float64 linspace, then float32): ``torch.linspace`` differs from it
    in the last bit for most sizes, and imported hybrid checkpoints are meant to give bit-identical outputs.
    """
    xs, ys = np.meshgrid(np.linspace(-1.0, 1.0, w), np.linspace(-1.0, 1.0, h))
    # Cached for training too: made as normal tensors even when first asked for by predict_action under
    # inference mode, whose tensors autograd refuses to save for backward.
    with torch.inference_mode(False):
        return (torch.from_numpy(xs.reshape(1, 1, h * w)).float(), torch.from_numpy(ys.reshape(1, 1, h * w)).float())


class ResNetEncoder(nn.Module):
    """ResNet trunk (``stage_blocks`` (2,2,2,2), ``width`` 64 = ResNet-18) plus pooling head.

    ``pool="avg"``: global average pooling, ``fc`` is Identity, output ``8 * width`` features (the
    original real-robot encoder). ``pool="spatial_softmax"``: keypoints, then ``fc`` Linear to
    ``feature_dim`` (the paper's encoder). ``feature_relu``: a ReLU on the output (robomimic's encoders).
    """

    def __init__(
        self,
        stage_blocks: tuple[int, ...] = (2, 2, 2, 2),
        width: int = 64,
        pool: str = "spatial_softmax",
        num_keypoints: int = 32,
        feature_dim: int = 64,
        feature_relu: bool = False,
    ):
        super().__init__()
        self.feature_relu = feature_relu
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = group_norm(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = width
        for i, n_blocks in enumerate(stage_blocks):
            out_ch = width * 2**i
            blocks = [BasicBlock(in_ch if j == 0 else out_ch, out_ch, 2 if (i > 0 and j == 0) else 1) for j in range(n_blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.n_stages = len(stage_blocks)
        if pool == "avg":
            self.pool: nn.Module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.fc: nn.Module = nn.Identity()
            self.out_dim = in_ch
        elif pool == "spatial_softmax":
            self.pool = SpatialSoftmax(in_ch, num_keypoints)
            self.fc = nn.Linear(2 * num_keypoints, feature_dim)
            self.out_dim = feature_dim
        else:
            raise ValueError(f"unknown pool {pool!r}: use 'spatial_softmax' or 'avg'")
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, 3, H, W) -> (B, out_dim)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = self.fc(self.pool(x))
        return F.relu(x) if self.feature_relu else x
