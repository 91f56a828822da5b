"""Diffusion-step embedding shared by the U-Net and the transformer."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    """Fixed sin/cos embedding of a scalar (the diffusion step) into ``dim`` features."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * (-math.log(10000.0) / (half - 1)))
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


def timestep_batch(timestep: torch.Tensor | int, sample: torch.Tensor) -> torch.Tensor:
    """Diffusion step(s) as a (B,) tensor on the sample's device (a scalar is broadcast)."""
    t = torch.as_tensor(timestep, device=sample.device)
    if t.ndim == 0:
        t = t[None]
    return t.expand(sample.shape[0])
