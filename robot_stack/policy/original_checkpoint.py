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

Supported: ``DiffusionUnetImagePolicy`` (the original real-robot image policy: per-camera torchvision
ResNet-18 with GroupNorm and global average pooling, ``ConditionalUnet1D`` with global conditioning,
``LinearNormalizer``). Configure ``model: unet``, ``vision: {pool: avg, stage_blocks: [2, 2, 2, 2],
width: 64, share_model: <share_rgb_model>, imagenet_norm: <imagenet_norm>, crop_size: <crop_shape>}``,
the same ``unet`` sizes, ``horizon``/``n_obs_steps``, camera keys ``camera_<i>``, ``image_size`` = the
image shape in ``shape_meta``, and each low-dim key with its ``shape_meta`` size. Module names are the
same in both implementations, so apart from dropping the original's empty ``_dummy_variable``
parameters the state dict loads as is.

Not supported: the robomimic-encoder "hybrid" policies (``DiffusionUnetHybridImagePolicy``,
``DiffusionTransformerHybridImagePolicy``; their encoder is laid out as ``obs_encoder.obs_nets...``) and
the low-dim-only policies. Our transformer follows ``TransformerForDiffusion``'s names, but the original
only pairs it with the hybrid encoder.

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


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original ``DiffusionUnetImagePolicy`` state dict -> ours (drops the empty ``_dummy_variable``s)."""
    return {k: v for k, v in state.items() if k.split(".")[-1] != "_dummy_variable"}


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
