"""Time-series diffusion transformer: the transformer-based noise-prediction network of Diffusion Policy.

Action tokens (one per horizon step) go through a transformer decoder that cross-attends to a memory
of condition tokens: the diffusion-step embedding followed by one token per observation step. With
``causal_attn`` an action token sees only earlier action tokens and observation tokens up to its own
step. Module names follow the original ``TransformerForDiffusion`` (``input_emb``, ``pos_emb``,
``cond_obs_emb``, ``cond_pos_emb``, ``encoder``, ``decoder.layers.i``, ``ln_f``, ``head``).
"""

from __future__ import annotations

import torch
from torch import nn

from robot_stack.policy.config import TransformerConfig
from robot_stack.policy.embeddings import SinusoidalPosEmb, timestep_batch


class TransformerForDiffusion(nn.Module):
    """Noise predictor ``(sample (B,T,Da), timestep (B,), cond (B,To,Dc)) -> (B,T,Da)``."""

    def __init__(self, input_dim: int, cond_dim: int, horizon: int, n_obs_steps: int, cfg: TransformerConfig):
        super().__init__()
        n_emb = cfg.n_emb
        t_cond = 1 + n_obs_steps  # diffusion-step token + observation tokens
        self.input_emb = nn.Linear(input_dim, n_emb)
        self.pos_emb = nn.Parameter(torch.zeros(1, horizon, n_emb))
        self.drop = nn.Dropout(cfg.p_drop_emb)
        self.time_emb = SinusoidalPosEmb(n_emb)
        self.cond_obs_emb = nn.Linear(cond_dim, n_emb)
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, t_cond, n_emb))

        def layer_kwargs() -> dict:
            return dict(
                d_model=n_emb, nhead=cfg.n_head, dim_feedforward=4 * n_emb, dropout=cfg.p_drop_attn,
                activation="gelu", batch_first=True, norm_first=True,  # pre-norm: stable training
            )

        if cfg.n_cond_layers > 0:
            self.encoder: nn.Module = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(**layer_kwargs()), cfg.n_cond_layers, enable_nested_tensor=False
            )
        else:
            self.encoder = nn.Sequential(nn.Linear(n_emb, 4 * n_emb), nn.Mish(), nn.Linear(4 * n_emb, n_emb))
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer_kwargs()), cfg.n_layer)
        if cfg.causal_attn:
            self.register_buffer("mask", _additive(torch.tril(torch.ones(horizon, horizon, dtype=torch.bool))))
            t, s = torch.meshgrid(torch.arange(horizon), torch.arange(t_cond), indexing="ij")
            # Memory token s is observation step s-1 (token 0 is the diffusion step): visible iff s-1 <= t.
            self.register_buffer("memory_mask", _additive(t >= s - 1))
        else:
            self.mask = None
            self.memory_mask = None
        self.ln_f = nn.LayerNorm(n_emb)
        self.head = nn.Linear(n_emb, input_dim)
        self.apply(self._init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.cond_pos_emb, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            nn.init.normal_(module.in_proj_weight, std=0.02)
            nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = timestep_batch(timestep, sample)
        cond_tokens = torch.cat([self.time_emb(t).unsqueeze(1), self.cond_obs_emb(cond)], dim=1)
        memory = self.encoder(self.drop(cond_tokens + self.cond_pos_emb[:, : cond_tokens.shape[1]]))
        x = self.drop(self.input_emb(sample) + self.pos_emb[:, : sample.shape[1]])
        x = self.decoder(tgt=x, memory=memory, tgt_mask=self.mask, memory_mask=self.memory_mask)
        return self.head(self.ln_f(x))


def _additive(allowed: torch.Tensor) -> torch.Tensor:
    """Boolean "may attend" matrix -> additive float mask (0 allowed, -inf blocked)."""
    return torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
