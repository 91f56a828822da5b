"""Noise schedulers (from ``diffusers``): DDPM for training, DDPM or DDIM for sampling.

Training always uses the DDPM forward process (``add_noise``) with ``num_train_timesteps`` steps. DDIM
shares the same noise schedule (same betas), so a policy trained once can be sampled with DDPM (all
steps, stochastic) or DDIM (few steps, deterministic) without retraining.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler

from robot_stack.policy.config import NoiseSchedulerConfig


def training_scheduler(cfg: NoiseSchedulerConfig) -> DDPMScheduler:
    """The DDPM scheduler whose ``add_noise`` defines the training targets."""
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        variance_type="fixed_small",
        clip_sample=cfg.clip_sample,
        prediction_type=cfg.prediction_type,
    )


def inference_scheduler(cfg: NoiseSchedulerConfig, kind: str, num_inference_steps: int) -> DDPMScheduler | DDIMScheduler:
    """A sampler of ``kind`` ("ddpm" or "ddim") with its timesteps set for ``num_inference_steps``."""
    if not 1 <= num_inference_steps <= cfg.num_train_timesteps:
        raise ValueError(f"num_inference_steps must be in [1, {cfg.num_train_timesteps}], got {num_inference_steps}")
    if kind == "ddpm":
        scheduler: DDPMScheduler | DDIMScheduler = training_scheduler(cfg)
    elif kind == "ddim":
        scheduler = DDIMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            clip_sample=cfg.clip_sample,
            set_alpha_to_one=True,
            steps_offset=0,
            prediction_type=cfg.prediction_type,
        )
    else:
        raise ValueError(f"unknown sampler {kind!r}: use 'ddim' or 'ddpm'")
    scheduler.set_timesteps(num_inference_steps)
    return scheduler
