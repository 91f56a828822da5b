"""Noise schedulers (from ``diffusers``): DDPM for training; DDPM, DDIM or DPM-Solver++ for sampling.

Training always uses the DDPM forward process (``add_noise``) with ``num_train_timesteps`` steps. DDIM and
DPM-Solver++ share the same noise schedule (same betas), so a policy trained once can be sampled with DDPM
(all steps, stochastic), DDIM (few steps, deterministic) or DPM-Solver++ (a second-order multistep solver,
meant for fewer steps still) without retraining. DPM-Solver++ keeps the previous steps' outputs between
steps: its timesteps are set again before each sample (``needs_reset``).
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

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


Sampler = DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler
SAMPLERS = ("ddim", "ddpm", "dpmsolver")


def needs_reset(kind: str) -> bool:
    """The sampler keeps state between steps (set its timesteps again before each sample)."""
    return kind == "dpmsolver"


def inference_scheduler(cfg: NoiseSchedulerConfig, kind: str, num_inference_steps: int) -> Sampler:
    """A sampler of ``kind`` (one of ``SAMPLERS``) with its timesteps set for ``num_inference_steps``."""
    if not 1 <= num_inference_steps <= cfg.num_train_timesteps:
        raise ValueError(f"num_inference_steps must be in [1, {cfg.num_train_timesteps}], got {num_inference_steps}")
    if kind == "ddpm":
        scheduler: Sampler = training_scheduler(cfg)
    elif kind == "ddim":
        scheduler = DDIMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            clip_sample=cfg.clip_sample,
            set_alpha_to_one=True,
            steps_offset=0,
            prediction_type=cfg.prediction_type,
        )
    elif kind == "dpmsolver":
        # Timesteps spaced as DDIM's ("leading": the first at T - T/n, not T - 1): with the squared-cosine
        # schedule the noise level at T - 1 is so extreme that the solver's first step blows up (measured:
        # actions metres off the table). Its final step is first order (lower_order_final), which keeps
        # few-step samples stable.
        scheduler = DPMSolverMultistepScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type=cfg.prediction_type,
            algorithm_type="dpmsolver++",
            solver_order=2,
            lower_order_final=True,
            timestep_spacing="leading",
            steps_offset=0,
        )
    else:
        raise ValueError(f"unknown sampler {kind!r}: use one of {', '.join(SAMPLERS)}")
    scheduler.set_timesteps(num_inference_steps)
    return scheduler
