"""Noise schedulers (from ``diffusers``): DDPM for training; DDPM, DDIM or DPM-Solver++ for sampling.

Training always uses the DDPM forward process (``add_noise``) with ``num_train_timesteps`` steps. DDIM and
DPM-Solver++ share the same noise schedule (same betas), so a policy trained once can be sampled with DDPM
(all steps, stochastic), DDIM (few steps, deterministic) or DPM-Solver++ (a second-order multistep solver,
meant for fewer steps still) without retraining. DDIM and DPM-Solver++ visit the same timesteps and
both clip the predicted clean sample to [-1, 1] when ``clip_sample`` is set. DPM-Solver++ keeps the
previous steps' outputs between steps: ``begin_sample`` resets it before each sample.
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


def begin_sample(sampler: Sampler) -> None:
    """Ready ``sampler`` for a new sample: DPM-Solver++ forgets the previous sample's model outputs (its
    timesteps are set again, the same ones); the other samplers keep no state between samples."""
    if isinstance(sampler, DPMSolverMultistepScheduler):
        sampler.set_timesteps(timesteps=sampler.timesteps.tolist())


def ddim_timesteps(num_train_timesteps: int, num_inference_steps: int) -> list[int]:
    """DDIM's timesteps (``leading`` spacing, no offset): ``(n-1)*k, ..., k, 0`` with ``k = T // n``."""
    step = num_train_timesteps // num_inference_steps
    return [i * step for i in reversed(range(num_inference_steps))]


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
        # clip_sample as DDIM does it: dynamic thresholding with its threshold capped at 1 clamps each
        # step's predicted clean sample to [-1, 1] (the solver has no clip_sample). Its final step is first
        # order (lower_order_final), which keeps few-step samples stable.
        scheduler = DPMSolverMultistepScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_schedule=cfg.beta_schedule,
            prediction_type=cfg.prediction_type,
            thresholding=cfg.clip_sample,
            sample_max_value=1.0,
            algorithm_type="dpmsolver++",
            solver_order=2,
            lower_order_final=True,
        )
        # DDIM's timesteps, passed explicitly: the solver's own spacings either start at T - 1, where the
        # squared-cosine schedule's noise is so extreme that the first step blows up (measured: actions
        # metres off the table), or ("leading") space by T // (n + 1), which starts ever lower as n grows
        # (at n = 50 the sample began at t = 50, half the noise range skipped) and breaks at n = T.
        scheduler.set_timesteps(timesteps=ddim_timesteps(cfg.num_train_timesteps, num_inference_steps))
        return scheduler
    else:
        raise ValueError(f"unknown sampler {kind!r}: use one of {', '.join(SAMPLERS)}")
    scheduler.set_timesteps(num_inference_steps)
    return scheduler
