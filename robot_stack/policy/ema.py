"""Exponential moving average of model weights, used for validation, checkpoints and inference.

The decay warms up as ``1 - (1 + step) ** -power`` (capped at ``max_decay``), the schedule of the
original implementation: early on the average follows the fast-changing weights closely, later it
averages over thousands of steps. Parameters that do not train (the normalizer) are copied as is.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Holds ``ema_model``, a frozen copy of ``model`` updated by ``update(model)`` after each step."""

    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999):
        self.ema_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power = power
        self.max_decay = max_decay
        self.step = 0

    def decay(self) -> float:
        if self.step <= 0:
            return 0.0
        return min(self.max_decay, max(0.0, 1.0 - (1.0 + self.step) ** -self.power))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        for ema_p, p in zip(self.ema_model.parameters(), model.parameters()):
            if p.requires_grad:
                ema_p.mul_(d).add_(p.detach(), alpha=1.0 - d)
            else:
                ema_p.copy_(p)
        for ema_b, b in zip(self.ema_model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.step += 1
