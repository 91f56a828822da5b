"""Import weights from checkpoints of the original Diffusion Policy code (real-stanford/diffusion_policy).

An original ``.ckpt`` is ``torch.save`` (pickled with dill) of::

    {"cfg": <OmegaConf config>, "state_dicts": {"model": ..., "ema_model": ..., "optimizer": ...},
     "pickles": {...}}

Unpickling it normally needs hydra/omegaconf/dill and runs whatever the file names, so it is only safe
for files you trust. We need just the weights: ``extract_state_dicts`` reads the file with a restricted
unpickler that rebuilds tensors and plain containers and replaces every other object (the config, the
workspace pickles) with an inert placeholder - nothing the file names is imported or called, and no
extra packages are needed. The original config is therefore not read: you provide the matching task
config (``robot_stack.policy.config``) yourself, and loading fails with a list of mismatched keys and
shapes if it does not match.

Supported, with ``ConditionalUnet1D`` (global conditioning) and ``LinearNormalizer`` in both:

- ``DiffusionUnetImagePolicy`` (per-camera torchvision ResNet-18, GroupNorm, global average pooling).
  Configure ``model: unet``, ``vision: {pool: avg, stage_blocks: [2, 2, 2, 2], width: 64, share_model:
  <share_rgb_model>, imagenet_norm: <imagenet_norm>, crop_size: <crop_shape>}``. Module names are the same
  in both implementations: apart from dropping the empty ``_dummy_variable`` parameters it loads as is.
- ``DiffusionUnetHybridImagePolicy`` with ``obs_encoder_group_norm: true`` (the paper's real-robot
  configuration: robomimic's ResNet-18 with GroupNorm, a 32-keypoint spatial softmax and a Linear to 64
  features, then robomimic's ReLU). Configure ``vision: {pool: spatial_softmax, stage_blocks: [2, 2, 2, 2],
  width: 64, num_keypoints: 32, feature_dim: 64, feature_relu: true, crop_size: <crop_shape>}``. Its encoder
  ``obs_encoder.obs_nets.<key>.*`` maps onto ours: ``backbone.nets.0/1/4/5/6/7`` -> ``conv1/bn1/layer1-4``,
  ``pool.nets`` -> ``pool.keypoints``, ``nets.3`` (the Linear) -> ``fc``; its duplicate views of the same
  modules (``nets.0``, ``nets.1``) must equal the originals and are dropped, as are the spatial softmax's
  fixed position grids and temperature, which are checked to be what ours computes (temperature 1).

In both, also set the same ``unet`` sizes, ``horizon``/``n_obs_steps``, ``image_size`` = the image shape in
``shape_meta``, and each low-dim key with its ``shape_meta`` size. Observation keys: the original's
Push-T simulation names are renamed by ``ORIGINAL_KEY_MAP`` (``image`` -> ``camera_0``, ``agent_pos`` ->
``robot_eef_pose``); real-robot names (``camera_<i>``, ``robot_eef_pose``) are already ours. Features are
concatenated cameras first, then low-dim keys, each in sorted order; robomimic concatenates in
``shape_meta`` order, which is the same for the original's task configs (cameras listed first) — a config
that lists a low-dim key before a camera would need its ``global_cond`` columns permuted, and is not supported.

Not supported: the transformer hybrid policy and the low-dim-only policies.

Command line::

    python -m robot_stack.policy.original_checkpoint original.ckpt --config my_task.yaml --out imported.ckpt
"""

from __future__ import annotations

import argparse
import collections
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import torch

from robot_stack.config import ConfigError
from robot_stack.policy.checkpoint import load_state_dict_checked, save_checkpoint
from robot_stack.policy.config import TaskConfig, load_task_config
from robot_stack.policy.diffusion_policy import DiffusionPolicy
from robot_stack.policy.resnet import keypoint_grid

# The original's Push-T simulation observation names -> robot_stack's (applied to every imported state dict).
ORIGINAL_KEY_MAP = {"image": "camera_0", "agent_pos": "robot_eef_pose"}
# robomimic's ResNet18Conv is torchvision's resnet18 children without avgpool/fc, as one Sequential.
_HYBRID_BACKBONE = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_HYBRID_PREFIX = "obs_encoder.obs_nets."

# Globals a state-dict payload legitimately needs (the same kind of allowlist torch's weights_only uses).
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class Opaque:
    """Stands in for any object the restricted unpickler refuses to build; records nothing, runs nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Opaque":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        return Opaque


# torch.load takes a "pickle module": this one only knows the restricted unpickler.
_restricted_pickle = types.SimpleNamespace(
    Unpickler=_RestrictedUnpickler,
    load=lambda f, **kwargs: _RestrictedUnpickler(f, **kwargs).load(),
    __name__="restricted_pickle",
)


def extract_state_dicts(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The ``state_dicts`` entries of an original checkpoint that are tensor dicts ("model", "ema_model")."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
    except Exception as exc:  # noqa: BLE001 - report any read failure as "not a readable checkpoint"
        raise ConfigError(f"cannot read {path} as a torch checkpoint: {type(exc).__name__}: {exc}") from None
    states = payload.get("state_dicts") if isinstance(payload, dict) else None
    if not isinstance(states, dict):
        raise ConfigError(f"{path} has no 'state_dicts' entry: not a checkpoint of the original Diffusion Policy code")
    found = {
        name: dict(sd)
        for name, sd in states.items()
        if name in ("model", "ema_model") and isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    }
    if "model" not in found:
        raise ConfigError(f"{path}: state_dicts has no 'model' weights (entries: {sorted(states)})")
    return found


def convert_state_dict(state: dict[str, torch.Tensor], key_map: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Original ``DiffusionUnetImagePolicy`` or ``DiffusionUnetHybridImagePolicy`` state dict -> ours.

    Drops the empty ``_dummy_variable``s, maps the hybrid encoder's names (module docstring) and renames
    observation keys by ``key_map`` (default ``ORIGINAL_KEY_MAP``). ``ConfigError`` for hybrid entries it
    does not know or cannot reproduce.
    """
    key_map = ORIGINAL_KEY_MAP if key_map is None else key_map
    out = {}
    for name, value in state.items():
        if name.split(".")[-1] == "_dummy_variable":
            continue
        if name.startswith(_HYBRID_PREFIX):
            mapped = _hybrid_name(name, value, state)
            if mapped is None:
                continue
            name = mapped
        out[_rename_observation_key(name, key_map)] = value
    return out


def _hybrid_name(name: str, value: torch.Tensor, state: dict[str, torch.Tensor]) -> str | None:
    """Our name for one robomimic encoder entry, or None for entries that carry nothing of their own."""
    key, _, rest = name[len(_HYBRID_PREFIX):].partition(".")
    ours = f"obs_encoder.key_model_map.{key}"
    head, _, tail = rest.partition(".")
    if head == "backbone" and tail.startswith("nets."):
        index, _, leaf = tail[len("nets."):].partition(".")
        if index in _HYBRID_BACKBONE:
            return f"{ours}.{_HYBRID_BACKBONE[index]}.{leaf}"
    elif rest in ("pool.nets.weight", "pool.nets.bias"):
        return f"{ours}.pool.keypoints.{rest.rsplit('.', 1)[1]}"
    elif rest == "pool.temperature":
        if value.numel() != 1 or float(value) != 1.0:
            raise ConfigError(f"{name} is {value.flatten()[:1].tolist()}: only the default spatial-softmax "
                              "temperature 1 (not learned) is supported")
        return None
    elif rest in ("pool.pos_x", "pool.pos_y"):
        _check_position_grid(name, value, rest.endswith("x"))
        return None
    elif rest.startswith(("nets.0.", "nets.1.")):
        # VisualCore.nets is a Sequential over the same backbone and pool modules: a second view of them.
        original = f"{_HYBRID_PREFIX}{key}.{'backbone' if rest[5] == '0' else 'pool'}.{rest[7:]}"
        if original not in state or not torch.equal(state[original], value):
            raise ConfigError(f"{name} differs from {original}: not the layout of robomimic's VisualCore")
        return None
    elif rest.startswith("nets.3."):
        return f"{ours}.fc.{rest[len('nets.3.'):]}"
    raise ConfigError(f"{name}: an encoder entry this importer does not know (robomimic VisualCore with "
                      "ResNet18Conv, SpatialSoftmax and a Linear is supported)")


def _check_position_grid(name: str, value: torch.Tensor, is_x: bool) -> None:
    flat = value.reshape(-1)
    n, distinct = flat.numel(), int(torch.unique(flat).numel())  # pos_x takes W distinct values, pos_y H
    h, w = (n // distinct, distinct) if is_x else (distinct, n // distinct)
    if h * w != n or not torch.equal(flat, keypoint_grid(h, w)[0 if is_x else 1].reshape(-1)):
        raise ConfigError(f"{name} is not the spatial softmax position grid robot_stack computes")


def _rename_observation_key(name: str, key_map: dict[str, str]) -> str:
    for prefix in ("obs_encoder.key_model_map.", "normalizer.params_dict."):
        if name.startswith(prefix):
            key, dot, rest = name[len(prefix):].partition(".")
            return f"{prefix}{key_map.get(key, key)}{dot}{rest}"
    return name


def import_original_checkpoint(src: str | Path, cfg: TaskConfig | str | Path, dst: str | Path) -> Path:
    """Convert an original checkpoint to ours, checking every weight against ``cfg``'s policy.

    Keeps both the raw and the EMA weights when present (``load_policy`` prefers EMA).
    """
    task = cfg if isinstance(cfg, TaskConfig) else load_task_config(cfg)
    states = {}
    for name, state in extract_state_dicts(src).items():
        policy = DiffusionPolicy(task.policy)
        load_state_dict_checked(policy, convert_state_dict(state), f"{src} ({name})")
        states[name] = policy.state_dict()
    return save_checkpoint(dst, task, states, {"imported_from": str(src)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert an original Diffusion Policy .ckpt into a robot_stack checkpoint.")
    parser.add_argument("src", type=Path, help="original checkpoint (.ckpt)")
    parser.add_argument("--config", required=True, help="task config matching the original model (name or .yaml)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    args = parser.parse_args(argv)
    try:
        out = import_original_checkpoint(args.src, args.config, args.out)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
