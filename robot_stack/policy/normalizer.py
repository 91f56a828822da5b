"""Per-key affine normalizer: min-max to [-1, 1] for actions and low-dim observations.

Each key stores ``scale`` and ``offset`` (``normalized = x * scale + offset``) plus the statistics it was
fitted from (``input_stats.min/max/mean/std``), in the same nested layout as the original Diffusion
Policy ``LinearNormalizer`` (``params_dict.<key>.scale`` ...), so its state dicts load unchanged. The
parameters never train (``requires_grad=False``) but live in the module's state dict, hence in every
checkpoint.

Dimensions whose range is (nearly) constant in the data cannot be scaled to [-1, 1]; they are mapped to
0 with unit scale instead of dividing by ~0, so unseen values at run time stay finite and ordered.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import nn

# Ranges below this are treated as constant (same threshold as the original implementation).
RANGE_EPS = 1e-4


class LinearNormalizer(nn.Module):
    """Affine normalizer for a fixed set of keys, each with a feature size ``dim`` (last axis)."""

    def __init__(self, dims: Mapping[str, int]):
        super().__init__()
        self.params_dict = nn.ParameterDict()
        for key, dim in dims.items():
            self.params_dict[key] = _params(
                scale=torch.ones(dim),
                offset=torch.zeros(dim),
                stats={"min": -torch.ones(dim), "max": torch.ones(dim), "mean": torch.zeros(dim), "std": torch.ones(dim)},
            )

    def keys(self) -> list[str]:
        return list(self.params_dict.keys())

    def fit(self, key: str, data: np.ndarray | torch.Tensor) -> None:
        """Fit ``key`` to min-max normalize ``data`` (any leading shape, features last) into [-1, 1]."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float64)
        if x.ndim == 0 or x.shape[-1] != self._dim(key):
            raise ValueError(f"normalizer: '{key}' has {self._dim(key)} features, data has shape {tuple(x.shape)}")
        x = x.reshape(-1, x.shape[-1])
        if x.shape[0] == 0:
            raise ValueError(f"normalizer: no data to fit '{key}'")
        if not torch.isfinite(x).all():
            raise ValueError(f"normalizer: '{key}' contains NaN or inf values; clean the dataset first")
        lo, hi = x.min(dim=0).values, x.max(dim=0).values
        span = hi - lo
        constant = span < RANGE_EPS
        span = torch.where(constant, torch.full_like(span, 2.0), span)
        scale = 2.0 / span
        offset = torch.where(constant, -lo, -1.0 - scale * lo)
        self._set(key, scale, offset, {"min": lo, "max": hi, "mean": x.mean(dim=0), "std": x.std(dim=0, correction=0)})

    def set_image_range(self, key: str) -> None:
        """Map images in [0, 1] to [-1, 1] (fixed, not fitted), like the original image normalizer."""
        one = torch.ones(1)
        self._set(key, 2 * one, -one, {"min": 0 * one, "max": one, "mean": one / 2, "std": one * math.sqrt(1 / 12)})

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        p = self.params_dict[key]
        return x * p["scale"] + p["offset"]

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        p = self.params_dict[key]
        return (x - p["offset"]) / p["scale"]

    def stats(self, key: str) -> dict[str, np.ndarray]:
        """The statistics ``key`` was fitted from (min, max, mean, std) as numpy arrays."""
        return {k: v.detach().cpu().numpy() for k, v in self.params_dict[key]["input_stats"].items()}

    def _dim(self, key: str) -> int:
        if key not in self.params_dict:
            raise KeyError(f"normalizer has no key '{key}' (keys: {self.keys()})")
        return self.params_dict[key]["scale"].shape[-1]

    def _set(self, key: str, scale: torch.Tensor, offset: torch.Tensor, stats: dict[str, torch.Tensor]) -> None:
        old = self.params_dict[key]["scale"]
        if scale.shape != old.shape:
            raise ValueError(f"normalizer: '{key}' has {old.shape[-1]} features, got {scale.shape[-1]}")
        self.params_dict[key] = _params(scale, offset, stats, device=old.device, dtype=old.dtype)


def _params(
    scale: torch.Tensor,
    offset: torch.Tensor,
    stats: dict[str, torch.Tensor],
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> nn.ParameterDict:
    def frozen(t: torch.Tensor) -> nn.Parameter:
        return nn.Parameter(t.to(device=device, dtype=dtype), requires_grad=False)

    return nn.ParameterDict(
        {
            "scale": frozen(scale),
            "offset": frozen(offset),
            "input_stats": nn.ParameterDict({k: frozen(v) for k, v in stats.items()}),
        }
    )
