"""1-D temporal conditional U-Net: the CNN-based noise-prediction network of Diffusion Policy.

The action sequence (B, T, Da) is treated as a Da-channel 1-D signal over time. Every residual block is
FiLM-conditioned on the diffusion-step embedding concatenated with the observation features (per-channel
scale and bias, or bias only). Module names follow the original ``ConditionalUnet1D``
(``diffusion_step_encoder``, ``down_modules.i.{0,1,2}``, ``mid_modules``, ``up_modules``, ``final_conv``,
``blocks.j.block.{0,1}``, ``cond_encoder.1``, ``residual_conv``), so its state dicts load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from robot_stack.policy.config import UnetConfig
from robot_stack.policy.embeddings import SinusoidalPosEmb, timestep_batch


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish, length preserving."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2), nn.GroupNorm(n_groups, out_ch), nn.Mish()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Resample1d(nn.Module):
    """Halves (strided conv) or doubles (transposed conv) the time axis; stored as ``conv`` like the original."""

    def __init__(self, dim: int, up: bool):
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, stride=2, padding=1) if up else nn.Conv1d(dim, dim, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM conditioning in between and a residual connection."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int, n_groups: int, cond_predict_scale: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            [Conv1dBlock(in_ch, out_ch, kernel_size, n_groups), Conv1dBlock(out_ch, out_ch, kernel_size, n_groups)]
        )
        self.out_channels = out_ch
        self.cond_predict_scale = cond_predict_scale
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, out_ch * 2 if cond_predict_scale else out_ch))
        self.residual_conv = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.blocks[0](x)
        embed = self.cond_encoder(cond).unsqueeze(-1)
        if self.cond_predict_scale:
            scale, bias = embed.reshape(embed.shape[0], 2, self.out_channels, 1).unbind(1)
            out = scale * out + bias
        else:
            out = out + embed
        out = self.blocks[1](out)
        return out + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    """Noise predictor ``(sample (B,T,Da), timestep (B,), global_cond (B,Dc)) -> (B,T,Da)``.

    ``T`` must be divisible by ``2 ** (len(down_dims) - 1)``.
    """

    def __init__(self, input_dim: int, global_cond_dim: int, cfg: UnetConfig):
        super().__init__()
        dims = [input_dim, *cfg.down_dims]
        dsed = cfg.diffusion_step_embed_dim
        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalPosEmb(dsed), nn.Linear(dsed, dsed * 4), nn.Mish(), nn.Linear(dsed * 4, dsed)
        )
        cond_dim = dsed + global_cond_dim

        def res(i: int, o: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(i, o, cond_dim, cfg.kernel_size, cfg.n_groups, cfg.cond_predict_scale)

        in_out = list(zip(dims[:-1], dims[1:]))
        self.down_modules = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.down_modules.append(
                nn.ModuleList([res(d_in, d_out), res(d_out, d_out), nn.Identity() if last else Resample1d(d_out, up=False)])
            )
        mid = dims[-1]
        self.mid_modules = nn.ModuleList([res(mid, mid), res(mid, mid)])
        self.up_modules = nn.ModuleList()
        for d_in, d_out in reversed(in_out[1:]):
            # Input is the previous level concatenated with the matching skip connection.
            self.up_modules.append(nn.ModuleList([res(d_out * 2, d_in), res(d_in, d_in), Resample1d(d_in, up=True)]))
        start = cfg.down_dims[0]
        self.final_conv = nn.Sequential(
            Conv1dBlock(start, start, cfg.kernel_size, cfg.n_groups), nn.Conv1d(start, input_dim, 1)
        )

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        t = timestep_batch(timestep, sample)
        cond = torch.cat([self.diffusion_step_encoder(t), global_cond], dim=-1)
        x = sample.transpose(1, 2)  # (B, Da, T): actions are channels, time is the conv axis
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = down(x)
        for block in self.mid_modules:
            x = block(x, cond)
        for res1, res2, up in self.up_modules:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(res2(res1(x, cond), cond))
        return self.final_conv(x).transpose(1, 2)
