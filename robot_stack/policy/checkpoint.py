"""Policy checkpoints: our own format, safe to share, plus ``load_policy`` for inference.

A checkpoint is ``torch.save`` of plain data only (tensors, dicts, lists, numbers, strings), so it loads
with ``torch.load(weights_only=True)``: no pickled objects, nothing from the file is executed::

    {
      "format": "robot_stack.diffusion_policy", "version": 1,
      "config": {...},                      # TaskConfig as a plain dict (task_config_to_dict)
      "state_dicts": {
        "model": {...},                     # DiffusionPolicy state dict (includes the fitted normalizer)
        "ema_model": {...},                 # EMA weights, when training used EMA (preferred at inference)
        "optimizer": {...},                 # only in latest.ckpt (needed to resume)
      },
      "train_state": {"global_step": int, "epoch": int, "val_loss": float | None, "train_loss": float, ...},
      "convention": {                       # how the training data was made (absent in older/imported files)
        "timing": {"dt": float, "action_delay_steps": int},   # robot_stack.data.timing_convention
        "cameras": [{"name", "driver", "resolution", "crop", "image_size", "fps"}, ...] | None,
      },
    }

Checkpoints without ``convention`` (the original's, converted; robot_stack's from before it was stored) run
with the original Diffusion Policy's timing (``TimingConvention.original``, logged).

Files are written to a temporary name, fsynced and renamed into place, so a crash or full disk during
saving never replaces a good checkpoint with a truncated one.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import torch

from robot_stack.config import ConfigError
from robot_stack.data.timing_convention import TimingConvention
from robot_stack.policy.config import TaskConfig, task_config_from_dict, task_config_to_dict
from robot_stack.policy.diffusion_policy import DiffusionPolicy

FORMAT = "robot_stack.diffusion_policy"
VERSION = 1


def save_checkpoint(
    path: str | Path,
    cfg: TaskConfig,
    state_dicts: dict[str, dict[str, Any]],
    train_state: dict[str, Any] | None = None,
    convention: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a checkpoint (see the module docstring for the payload; ``convention`` as there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": task_config_to_dict(cfg),
        "state_dicts": state_dicts,
        "train_state": dict(train_state or {}),
    }
    if convention is not None:
        payload["convention"] = convention
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint payload with ``weights_only=True``; clear errors for missing/foreign files."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"checkpoint {path} is a folder; give a .ckpt file in it (e.g. {path / 'latest.ckpt'})")
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ConfigError(f"checkpoint {path} is empty (0 bytes): an interrupted copy? train or copy it again")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not our checkpoint"
        # torch's messages span lines and carry terminal escapes: keep the first line's plain text.
        first_line = re.sub(r"\x1b\[[0-9;]*m", "", (str(exc).strip().splitlines() or [""])[0])[:200].strip()
        raise ConfigError(
            f"{path} is not a robot_stack checkpoint, or it is truncated ({type(exc).__name__}"
            f"{': ' + first_line if first_line else ''}); a checkpoint of the original Diffusion Policy code "
            "must be converted first (robot_stack.policy.original_checkpoint)"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a robot_stack Diffusion Policy checkpoint (no '{FORMAT}' format tag)")
    if payload.get("version") != VERSION:
        raise ConfigError(f"{path} has checkpoint version {payload.get('version')}; this code reads version {VERSION}")
    for key, kind in (("config", dict), ("state_dicts", dict)):
        if not isinstance(payload.get(key), kind):
            raise ConfigError(f"{path} is damaged: its '{key}' entry is missing or not a {kind.__name__}")
    if not {"model", "ema_model"} & set(payload["state_dicts"]):
        raise ConfigError(f"{path} is damaged: it holds no model weights")
    convention = payload.get("convention")
    if convention is not None:
        if not isinstance(convention, dict) or set(convention) != {"timing", "cameras"} or not (
                convention["cameras"] is None or isinstance(convention["cameras"], list)):
            raise ConfigError(f"{path} is damaged: its 'convention' entry is not {{timing, cameras}}")
        TimingConvention.from_dict(convention["timing"], str(path))  # ConfigError naming the file
    return payload


def make_convention(timing: TimingConvention, cameras: list[dict] | None) -> dict[str, Any]:
    """The ``convention`` entry for data recorded with ``timing`` and camera setup ``cameras``."""
    return {"timing": timing.to_dict(), "cameras": None if cameras is None else [dict(c) for c in cameras]}


def checkpoint_timing(payload: dict[str, Any], source: str) -> TimingConvention:
    """The action-timing convention a checkpoint's policy was trained with (the original's when unrecorded)."""
    convention = payload.get("convention")
    if convention is None:
        return TimingConvention.original(None, source)
    return TimingConvention.from_dict(convention["timing"], source)


def checkpoint_cameras(payload: dict[str, Any]) -> list[dict] | None:
    """How the training images were made (per camera, dataset attribute ``cameras``), or None if unknown."""
    convention = payload.get("convention")
    return None if convention is None or convention["cameras"] is None else [dict(c) for c in convention["cameras"]]


def policy_from_payload(payload: dict[str, Any], use_ema: bool = True, source: str = "checkpoint") -> DiffusionPolicy:
    """Rebuild the policy stored in a checkpoint payload (EMA weights when present and ``use_ema``).

    ``ConfigError`` prefixed with ``source`` when the stored config is not one this code reads, or the
    weights do not fit it."""
    try:
        cfg = task_config_from_dict(payload["config"])
    except ConfigError as exc:
        raise ConfigError(f"{source} holds a task config this version cannot use: {exc}") from None
    policy = DiffusionPolicy(cfg.policy)
    states = payload["state_dicts"]
    state = states["ema_model"] if use_ema and "ema_model" in states else states["model"]
    load_state_dict_checked(policy, state, source)
    return policy


def load_policy(path: str | Path, device: str | torch.device = "cpu", use_ema: bool = True) -> DiffusionPolicy:
    """Load a trained policy for inference: eval mode, on ``device``, EMA weights by default.

    The returned ``DiffusionPolicy`` exposes ``n_obs_steps``, ``n_action_steps``, ``horizon``,
    ``action_dim``, ``obs_shapes`` and ``predict_action``; its task config is ``policy.cfg``.
    """
    policy = policy_from_payload(load_checkpoint(path), use_ema=use_ema, source=str(path))
    return policy.to(device).eval()


def export_for_inference(src: str | Path, dst: str | Path, steps_per_inference: int | None = None,
                         chunking: str | None = None, sampler: str | None = None,
                         inference_steps: int | None = None) -> Path:
    """Write a checkpoint holding only what inference needs: the config and one set of weights (the EMA
    weights when trained with EMA) stored as ``model``, plus the step/epoch/losses for provenance.

    A third to a half the size of a training checkpoint; ``load_policy`` reads it like any other.
    ``steps_per_inference``, ``chunking``, ``sampler`` and ``inference_steps`` set how the exported policy
    is run by default (``PolicyConfig``, its ``noise_scheduler``); the weights are unchanged.
    """
    payload = load_checkpoint(src)
    cfg = task_config_from_dict(payload["config"])
    if steps_per_inference is not None:
        cfg.policy = dataclasses.replace(cfg.policy, steps_per_inference=steps_per_inference)  # validated
    if chunking is not None:
        cfg.policy = dataclasses.replace(cfg.policy, chunking=chunking)
    if sampler is not None or inference_steps is not None:
        schedule = cfg.policy.noise_scheduler
        schedule = dataclasses.replace(schedule, inference=sampler or schedule.inference,
                                       num_inference_steps=inference_steps or schedule.num_inference_steps)
        cfg.policy = dataclasses.replace(cfg.policy, noise_scheduler=schedule)
    states = payload["state_dicts"]
    weights = states.get("ema_model", states["model"])
    kept = {k: payload["train_state"][k] for k in ("global_step", "epoch", "train_loss", "val_loss", "scene_seeds", "eval_history")
            if k in payload["train_state"]}
    return save_checkpoint(dst, cfg, {"model": weights}, kept, payload.get("convention"))


def load_state_dict_checked(policy: DiffusionPolicy, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what does not match."""
    own = policy.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise ConfigError(
            f"{source} weights do not fit the configured policy: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}, "
            f"shape mismatch {mismatched[:5]}{'...' if len(mismatched) > 5 else ''}"
        )
    policy.load_state_dict(state)


def main(argv: list[str] | None = None) -> None:
    """``python -m robot_stack.policy.checkpoint SRC DST [--steps-per-inference N] [--chunking M] [--sampler S]
    [--inference-steps K]``: export SRC for
    inference only (see above); exit code 2 with one line on a bad input."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=export_for_inference.__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="a checkpoint from `robot-stack train`")
    parser.add_argument("dst", type=Path, help="where to write the inference-only checkpoint")
    parser.add_argument("--steps-per-inference", type=int,
                        help="actions per chunk the policy executes by default when deployed")
    parser.add_argument("--chunking", choices=("switch", "inpaint", "ensemble"),
                        help="how the policy's chunks are joined by default when deployed")
    parser.add_argument("--sampler", choices=("ddim", "ddpm", "dpmsolver"), help="the sampler it denoises with")
    parser.add_argument("--inference-steps", type=int, help="its number of denoising steps")
    args = parser.parse_args(argv)
    try:
        out = export_for_inference(args.src, args.dst, args.steps_per_inference, args.chunking, args.sampler,
                                   args.inference_steps)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
