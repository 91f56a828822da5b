"""Diffusion Policy: observation encoder + noise-prediction network + normalizer + noise schedulers.

Interface (what the policy server relies on)::

    policy.n_obs_steps, policy.n_action_steps, policy.horizon, policy.action_dim
    policy.steps_per_inference  # actions per chunk to execute when deployed (None: all), from the config
    policy.obs_shapes   # {"camera_0": (3, H, W), "robot_eef_pose": (D,), ...} per observation step
    policy.predict_action(obs_dict) -> {"action": (B, n_action_steps, Da), "action_pred": (B, horizon, Da)}
    policy.predict_action(obs_dict, planned=(B, K, Da), committed_steps=F)  # inpainted: continues a plan

``obs_dict`` holds, for every key of ``obs_shapes``, a tensor (B, n_obs_steps, *shape), oldest step
first: camera images float in [0, 1], RGB, channels first, already resized to the configured
``image_size`` (use ``robot_stack.policy.frames.resize_frame`` so run time matches training); low-dim
arrays may carry more columns than configured, the leading ``dims`` columns are used (same rule as the
dataset). Pose fields configured with ``rotation: rotation_6d`` come in and go out as rotation vectors;
the network, its normalizer and ``compute_loss`` batches (as the dataset reader builds them) hold their
rotations in the 6-D representation (``robot_stack.policy.rotation_6d``). ``action_pred`` covers the whole horizon, whose step ``n_obs_steps - 1`` is the current
observation step; ``action`` is the ``n_action_steps`` actions starting there (as in the original).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robot_stack.policy.config import PolicyConfig
from robot_stack.policy.noise_schedulers import begin_sample, inference_scheduler, training_scheduler
from robot_stack.policy.normalizer import LinearNormalizer
from robot_stack.policy.obs_encoder import ObsEncoder
from robot_stack.policy.rotation_6d import decode_fields, encode_fields, encode_pose
from robot_stack.policy.transformer import TransformerForDiffusion
from robot_stack.policy.unet import ConditionalUnet1D


class DiffusionPolicy(nn.Module):
    """A visuomotor Diffusion Policy built from a ``PolicyConfig``."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.horizon = cfg.horizon
        self.n_obs_steps = cfg.n_obs_steps
        self.n_action_steps = cfg.n_action_steps
        self.steps_per_inference = cfg.steps_per_inference
        self.chunking = cfg.chunking
        self.action_dim = cfg.action_dim  # as recorded and executed
        self.model_action_dim = cfg.model_action_dim  # as the network predicts it
        self.obs_shapes: dict[str, tuple[int, ...]] = {k: (3, *cfg.image_size) for k in cfg.camera_keys}
        self.obs_shapes.update({f.key: (f.dims,) for f in cfg.low_dim})
        self.obs_encoder = ObsEncoder(cfg)
        feat = self.obs_encoder.out_dim
        if cfg.model == "unet":
            self.model: nn.Module = ConditionalUnet1D(self.model_action_dim, feat * cfg.n_obs_steps, cfg.unet)
        else:
            self.model = TransformerForDiffusion(self.model_action_dim, feat, cfg.horizon, cfg.n_obs_steps,
                                                 cfg.transformer)
        dims = {k: 1 for k in cfg.camera_keys} | {f.key: f.model_dims for f in cfg.low_dim} | \
            {"action": self.model_action_dim}
        self._low_dim_fields = {f.key: f for f in cfg.low_dim}
        self.normalizer = LinearNormalizer(dims)
        for key in cfg.camera_keys:
            self.normalizer.set_image_range(key)
        self.noise_scheduler = training_scheduler(cfg.noise_scheduler)
        self.configure_inference(cfg.noise_scheduler.inference, cfg.noise_scheduler.num_inference_steps)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def compile_networks(self, **options) -> None:
        """``torch.compile`` the observation encoder and the noise-prediction network in place (``options``
        go to ``torch.compile``). In place, not wrapped: the modules keep their types and ``state_dict``
        keys, so checkpoints and EMA copies are unaffected. The first calls afterwards compile (seconds to
        minutes); shapes seen later for the first time compile again."""
        self.obs_encoder.compile(**options)
        self.model.compile(**options)

    def configure_inference(self, sampler: str, num_inference_steps: int) -> None:
        """Choose the sampler used by ``predict_action``: "ddim" (few steps), "ddpm" or "dpmsolver"."""
        self.sampler = inference_scheduler(self.cfg.noise_scheduler, sampler, num_inference_steps)
        self.sampler_name = sampler
        self.num_inference_steps = num_inference_steps

    def fit_normalizer(self, low_dim: Mapping[str, np.ndarray], action: np.ndarray) -> None:
        """Fit min-max normalization of every low-dim key and the action on (training) data, given as the
        network sees it (the dataset reader's ``ReplayData``)."""
        for key in self.obs_encoder.low_dim_keys:
            self.normalizer.fit(key, low_dim[key])
        self.normalizer.fit("action", action)

    # ---- training ----
    def forward(self, batch: Mapping, generator: torch.Generator | None = None) -> torch.Tensor:
        """``compute_loss``: the training step goes through ``forward`` so DistributedDataParallel sees it."""
        return self.compute_loss(batch, generator)

    def compute_loss(self, batch: Mapping, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising loss on a batch ``{"obs": {key: (B, >=To, ...)}, "action": (B, horizon, Da)}``.

        ``generator`` fixes noise and diffusion steps (validation uses one so losses are comparable).
        """
        action = self.normalizer.normalize("action", batch["action"])
        cond = self._encode({k: batch["obs"][k] for k in self.obs_shapes}, recorded=False)
        b = action.shape[0]
        noise = torch.randn(action.shape, generator=generator, device=action.device, dtype=action.dtype)
        steps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (b,), generator=generator, device=action.device)
        noisy = self.noise_scheduler.add_noise(action, noise, steps)
        pred = self.model(noisy, steps, cond)
        target = noise if self.noise_scheduler.config.prediction_type == "epsilon" else action
        return F.mse_loss(pred, target)

    # ---- inference ----
    # inference_mode rather than no_grad: it also skips autograd's version counting, 4-9 % of a chunk on CPU
    # with identical actions (benchmarks/inference.py --options).
    @torch.inference_mode()
    def predict_action(
        self, obs_dict: Mapping[str, torch.Tensor | np.ndarray], generator: torch.Generator | None = None,
        planned: torch.Tensor | np.ndarray | None = None, committed_steps: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Sample action sequences for a batch of observations (see the module docstring for shapes).

        ``planned`` (B, K, Da), raw actions: what the previous chunk plans for this chunk's first K steps,
        of which the first ``committed_steps`` (default all K) are committed — the robot executes them while
        this inference runs. The sample is then inpainted (guided toward the plan): after every denoising
        step, the noisy sample's planned positions are pulled to the planned actions noised to that step's
        level, fully for committed steps, with weights falling linearly toward 0 over the rest, so the new
        chunk continues the old one instead of jumping. The returned chunk's committed actions equal the
        plan's. ``None`` (or K = 0): plain sampling, identical to a call without it.

        Raises ``ValueError`` for missing keys, wrong shapes, images outside [0, 1] or non-finite values
        (observations or committed actions), and ``RuntimeError`` if the network produces non-finite actions
        or degenerate 6-D rotations.
        """
        obs = self._check_obs(obs_dict)
        cond = self._encode(obs, recorded=True)
        b = next(iter(obs.values())).shape[0]
        inpaint = self._inpainting(planned, committed_steps, b)
        x = torch.randn((b, self.horizon, self.model_action_dim), generator=generator, device=self.device)
        begin_sample(self.sampler)
        timesteps = self.sampler.timesteps
        for i, t in enumerate(timesteps):
            out = self.model(x, t.to(self.device), cond)
            x = self.sampler.step(out, t, x, generator=generator).prev_sample
            if inpaint is not None:
                target, mask = inpaint
                if i + 1 < len(timesteps):  # x is now at the next step's noise level: noise the target to it
                    noise = torch.randn(target.shape, generator=generator, device=self.device)
                    target = self.sampler.add_noise(target, noise, timesteps[i + 1 : i + 2])
                x = mask * target + (1.0 - mask) * x
        action_pred = self.normalizer.unnormalize("action", x)
        if not torch.isfinite(action_pred).all():
            raise RuntimeError("policy produced non-finite actions (NaN/inf); the checkpoint may be corrupt")
        if self.cfg.uses_rotation_6d:
            try:
                decoded = decode_fields(self.cfg.action, action_pred.cpu().numpy())
            except ValueError as e:  # the network's output, not the caller's input, is at fault
                raise RuntimeError(f"policy produced an invalid action: {e}; the checkpoint may be corrupt") from None
            action_pred = torch.from_numpy(decoded).to(self.device)
        start = self.n_obs_steps - 1
        return {"action": action_pred[:, start : start + self.n_action_steps], "action_pred": action_pred}

    def _inpainting(self, planned: torch.Tensor | np.ndarray | None, committed_steps: int | None,
                    batch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(normalized plan over the horizon, per-position weight (1, horizon, 1)); None without a plan."""
        if planned is None:
            return None
        planned = torch.as_tensor(planned, device=self.device, dtype=torch.float32)
        start = self.n_obs_steps - 1
        room = self.horizon - start  # positions from the current step to the end of the horizon
        if planned.ndim != 3 or planned.shape[0] != batch or planned.shape[2] != self.action_dim or \
                planned.shape[1] > room:
            raise ValueError(f"planned actions must have shape ({batch}, K <= {room}, {self.action_dim}), "
                             f"got {tuple(planned.shape)}")
        if not torch.isfinite(planned).all():
            raise ValueError("planned actions hold NaN/inf")
        k = planned.shape[1]
        fixed = k if committed_steps is None else committed_steps
        if not 0 <= fixed <= k:
            raise ValueError(f"committed_steps must be in [0, {k}] (the planned steps), got {committed_steps}")
        if k == 0:
            return None
        if self.cfg.uses_rotation_6d:
            planned = torch.from_numpy(encode_fields(self.cfg.action, planned.cpu().numpy())).to(self.device)
        target = torch.zeros((batch, self.horizon, self.model_action_dim), device=self.device)
        target[:, start : start + k] = self.normalizer.normalize("action", planned)
        weight = torch.zeros(self.horizon, device=self.device)
        weight[start : start + fixed] = 1.0
        free = k - fixed  # planned but not committed: weights 1 - j / (free + 1), j = 1..free
        weight[start + fixed : start + k] = 1.0 - torch.arange(1, free + 1, device=self.device) / (free + 1)
        return target, weight.reshape(1, -1, 1)

    def _encode(self, obs: Mapping[str, torch.Tensor], recorded: bool) -> torch.Tensor:
        """Normalize and encode the first ``n_obs_steps`` of each key into the network's condition; low-dim
        values are ``recorded`` ones (inference) or already in the network's representation (training)."""
        to = self.n_obs_steps
        flat = {}
        for key, value in obs.items():
            field = self._low_dim_fields.get(key)
            if field is None:
                value = value[:, :to]
            elif not recorded:
                value = value[:, :to, : field.model_dims]
            else:
                value = value[:, :to, : field.dims]
                if field.rotation != "axis_angle":
                    value = torch.from_numpy(encode_pose(value.cpu().numpy(), field.rotation)).to(value.device)
            flat[key] = self.normalizer.normalize(key, value).reshape(-1, *value.shape[2:])
        b = next(iter(obs.values())).shape[0]
        features = self.obs_encoder(flat)
        if isinstance(self.model, ConditionalUnet1D):
            return features.reshape(b, -1)  # global condition (B, To * Do)
        return features.reshape(b, to, -1)  # one condition token per observation step

    def _check_obs(self, obs_dict: Mapping[str, torch.Tensor | np.ndarray]) -> dict[str, torch.Tensor]:
        missing = [k for k in self.obs_shapes if k not in obs_dict]
        if missing:
            raise ValueError(f"observation is missing keys {missing}; the policy expects {sorted(self.obs_shapes)}")
        out: dict[str, torch.Tensor] = {}
        batch = None
        for key, shape in self.obs_shapes.items():
            value = torch.as_tensor(obs_dict[key])
            if value.dtype == torch.uint8:
                raise ValueError(f"'{key}': images must be float in [0, 1], not uint8 (divide by 255)")
            value = value.to(self.device, torch.float32)
            expected = f"(B, {self.n_obs_steps}, {', '.join(map(str, shape))})"
            ok = value.ndim == 2 + len(shape) and value.shape[1] == self.n_obs_steps
            ok = ok and (tuple(value.shape[2:]) == shape if len(shape) == 3 else value.shape[-1] >= shape[0])
            if not ok:
                raise ValueError(f"'{key}': expected shape {expected}, got {tuple(value.shape)}")
            if batch is not None and value.shape[0] != batch:
                raise ValueError(f"'{key}': batch size {value.shape[0]} differs from other keys ({batch})")
            batch = value.shape[0]
            if not torch.isfinite(value).all():
                raise ValueError(f"'{key}' contains NaN or inf; refusing to act on it")
            if len(shape) == 3 and (value.min() < 0.0 or value.max() > 1.0):
                raise ValueError(f"'{key}': image values must be in [0, 1], got [{value.min():.3g}, {value.max():.3g}]")
            out[key] = value
        return out
