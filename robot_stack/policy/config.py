"""Task configs for Diffusion Policy: what the policy observes and outputs, the networks, and training.

A task config is one YAML file with three sections, each parsed into a validated dataclass::

    name: push_t
    policy:                       # PolicyConfig: everything needed to rebuild the network at inference
      cameras: [0]                # camera indices -> observation keys camera_0, ...
      image_size: [96, 96]        # (H, W) frames are resized to before the encoder
      low_dim: [{key: robot_eef_pose, dims: 2}]   # leading `dims` columns of data/<key>
      action: [{key: action, dims: 2}]            # concatenated in order -> action vector
      horizon: 16
      n_obs_steps: 2
      n_action_steps: 8
      steps_per_inference: null   # actions executed per chunk when deployed (null: all n_action_steps)
      chunking: null              # switch | inpaint | ensemble: how chunks follow each other when deployed (null: switch)
      model: unet                 # unet | transformer
      vision: {...}               # VisionConfig
      unet: {...}                 # UnetConfig (used when model: unet)
      transformer: {...}          # TransformerConfig (used when model: transformer)
      noise_scheduler: {...}      # NoiseSchedulerConfig
    training: {...}               # TrainingConfig

Built-in task configs live in ``robot_stack/policy/configs/<name>.yaml`` (``push_t``, ``mug_flip``,
``sauce``); ``load_task_config`` accepts either such a name or a path to a YAML file. The config is stored
in every checkpoint as a plain dict (``task_config_to_dict``), so a checkpoint rebuilds its own policy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.policy.rotation_6d import EXTRA_DIMS, ROTATION_KINDS, RotationKind

BUILTIN_TASKS = ("push_t", "push_t_small", "push_t_lowdim", "push_t_lowdim_small", "mug_flip", "sauce")


@dataclass
class FieldConfig:
    """A slice of a recorded array: the leading ``dims`` columns of ``data/<key>``.

    ``rotation: rotation_6d`` on a pose field (``[x, y, z, rx, ry, rz]``, dims >= 6) makes the network see
    its rotation in the continuous 6-D representation (``robot_stack.policy.rotation_6d``): ``model_dims``
    is then ``dims + 3``. Recorded data, observations and actions outside the policy stay axis-angle.
    """

    key: str
    dims: int
    rotation: RotationKind = "axis_angle"

    def __post_init__(self) -> None:
        if not self.key or "/" in self.key:
            raise ConfigError(f"key: must be a dataset array name like 'robot_eef_pose', got {self.key!r}")
        if self.dims < 1:
            raise ConfigError(f"dims: must be >= 1, got {self.dims}")
        if self.rotation not in ROTATION_KINDS:
            raise ConfigError(f"{self.key}: rotation must be one of {', '.join(ROTATION_KINDS)}, got {self.rotation!r}")
        if self.rotation != "axis_angle" and self.dims < 6:
            raise ConfigError(f"{self.key}: rotation {self.rotation} needs a pose field [x, y, z, rx, ry, rz] "
                              f"(dims >= 6), got dims {self.dims}")

    @property
    def model_dims(self) -> int:
        """Columns the network sees for this field."""
        return self.dims + EXTRA_DIMS[self.rotation]


@dataclass
class VisionConfig:
    """Per-camera image encoder: a ResNet (GroupNorm) followed by a pooling head.

    ``stage_blocks`` (2, 2, 2, 2) with ``width`` 64 is ResNet-18; tests use narrower/shallower nets.
    ``pool: spatial_softmax`` (the paper's choice) yields ``2 * num_keypoints`` features projected to
    ``feature_dim``; ``pool: avg`` is global average pooling (8 * width features), matching the original
    implementation's real-robot image encoder so its state dicts load unchanged.
    """

    stage_blocks: tuple[int, ...] = (2, 2, 2, 2)
    width: int = 64
    pool: Literal["spatial_softmax", "avg"] = "spatial_softmax"
    num_keypoints: int = 32
    feature_dim: int = 64
    crop_size: tuple[int, int] | None = None  # (H, W): random crop in training, center crop at eval
    share_model: bool = False  # one ResNet for all cameras instead of one each
    imagenet_norm: bool = False
    # ReLU on each camera's features, as robomimic's ObservationEncoder applies after every visual core
    # (the original's "hybrid" policies); off for the original's image policy and robot_stack's own configs.
    feature_relu: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.stage_blocks) <= 4 or any(b < 1 for b in self.stage_blocks):
            raise ConfigError(f"stage_blocks: 1 to 4 stages of >= 1 block each, got {list(self.stage_blocks)}")
        if self.width < 1 or self.num_keypoints < 1 or self.feature_dim < 1:
            raise ConfigError("width, num_keypoints and feature_dim must be >= 1")
        if self.crop_size is not None and min(self.crop_size) < 8:
            raise ConfigError(f"crop_size: must be at least 8x8 pixels, got {list(self.crop_size)}")

    def feature_map_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Spatial size of the last ResNet stage for input ``image_size`` (after cropping)."""
        size = self.crop_size or image_size
        # stem (stride-2 conv, stride-2 max-pool), then stride 2 at the start of every later stage
        halvings = 2 + len(self.stage_blocks) - 1
        h, w = size
        for _ in range(halvings):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w


@dataclass
class UnetConfig:
    """1-D temporal conditional U-Net (FiLM conditioning); defaults are the paper's CNN-based policy."""

    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 128
    cond_predict_scale: bool = True

    def __post_init__(self) -> None:
        if not self.down_dims or any(d < 1 for d in self.down_dims):
            raise ConfigError(f"down_dims: need at least one positive width, got {list(self.down_dims)}")
        bad = [d for d in self.down_dims if d % self.n_groups]
        if self.n_groups < 1 or bad:
            raise ConfigError(f"down_dims: every width must be divisible by n_groups={self.n_groups}, not {bad}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size: must be odd and positive, got {self.kernel_size}")
        if self.diffusion_step_embed_dim < 4 or self.diffusion_step_embed_dim % 2:
            raise ConfigError("diffusion_step_embed_dim: must be an even number >= 4")


@dataclass
class TransformerConfig:
    """Time-series diffusion transformer; defaults are the paper's transformer-based image policy."""

    n_layer: int = 8
    n_head: int = 4
    n_emb: int = 256
    p_drop_emb: float = 0.0
    p_drop_attn: float = 0.3
    causal_attn: bool = True
    n_cond_layers: int = 0

    def __post_init__(self) -> None:
        if self.n_layer < 1 or self.n_head < 1 or self.n_emb % self.n_head or self.n_emb % 2:
            raise ConfigError(
                f"n_layer/n_head must be >= 1 and n_emb ({self.n_emb}) an even multiple of n_head ({self.n_head})"
            )
        if not (0.0 <= self.p_drop_emb < 1.0 and 0.0 <= self.p_drop_attn < 1.0):
            raise ConfigError("p_drop_emb and p_drop_attn must be in [0, 1)")


@dataclass
class NoiseSchedulerConfig:
    """Training noise schedule (DDPM) and the sampler used by ``predict_action``."""

    num_train_timesteps: int = 100
    beta_schedule: Literal["squaredcos_cap_v2", "linear", "scaled_linear"] = "squaredcos_cap_v2"
    prediction_type: Literal["epsilon", "sample"] = "epsilon"
    clip_sample: bool = True
    inference: Literal["ddim", "ddpm", "dpmsolver"] = "ddim"
    num_inference_steps: int = 16

    def __post_init__(self) -> None:
        if self.num_train_timesteps < 2:
            raise ConfigError(f"num_train_timesteps: must be >= 2, got {self.num_train_timesteps}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ConfigError(
                f"num_inference_steps: must be in [1, num_train_timesteps={self.num_train_timesteps}], "
                f"got {self.num_inference_steps}"
            )


@dataclass
class PolicyConfig:
    """Everything that defines a policy network and its input/output interface."""

    action: list[FieldConfig]
    cameras: list[int] = field(default_factory=lambda: [0])
    image_size: tuple[int, int] = (96, 96)
    low_dim: list[FieldConfig] = field(default_factory=list)
    horizon: int = 16
    n_obs_steps: int = 2
    n_action_steps: int = 8
    # How the policy is meant to be run: actions of each chunk executed before re-planning (eval/serve
    # default; ``--steps-per-inference`` overrides). None: the whole chunk. Does not change training.
    steps_per_inference: int | None = None
    # How consecutive chunks are joined when deployed (eval/serve default; ``--chunking`` overrides; the
    # executor's modes). None: switch. Does not change training.
    chunking: Literal["switch", "inpaint", "ensemble"] | None = None
    model: Literal["unet", "transformer"] = "unet"
    vision: VisionConfig = field(default_factory=VisionConfig)
    unet: UnetConfig = field(default_factory=UnetConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    noise_scheduler: NoiseSchedulerConfig = field(default_factory=NoiseSchedulerConfig)

    def __post_init__(self) -> None:
        if not self.action:
            raise ConfigError("action: list at least one {key, dims} entry")
        if not self.cameras and not self.low_dim:
            raise ConfigError("cameras/low_dim: the policy needs at least one observation")
        if len(set(self.cameras)) != len(self.cameras) or any(c < 0 for c in self.cameras):
            raise ConfigError(f"cameras: indices must be unique and >= 0, got {self.cameras}")
        low_keys = [f.key for f in self.low_dim]
        if len(set(low_keys)) != len(low_keys) or any(k.startswith("camera_") for k in low_keys):
            raise ConfigError(f"low_dim: keys must be unique and not start with 'camera_', got {low_keys}")
        if min(self.image_size) < 8:
            raise ConfigError(f"image_size: must be at least 8x8 (H, W), got {list(self.image_size)}")
        crop = self.vision.crop_size
        if crop is not None and (crop[0] > self.image_size[0] or crop[1] > self.image_size[1]):
            raise ConfigError(f"vision.crop_size {list(crop)} is larger than image_size {list(self.image_size)}")
        fmap = self.vision.feature_map_size(tuple(self.image_size))
        if self.cameras and self.vision.pool == "spatial_softmax" and min(fmap) < 2:
            raise ConfigError(
                f"vision: images of {list(crop or self.image_size)} shrink to a {fmap[0]}x{fmap[1]} feature map; "
                "spatial softmax needs at least 2x2 (use larger images or fewer vision.stage_blocks)"
            )
        if self.n_obs_steps < 1 or self.n_action_steps < 1:
            raise ConfigError("n_obs_steps and n_action_steps must be >= 1")
        if self.steps_per_inference is not None and not 1 <= self.steps_per_inference <= self.n_action_steps:
            raise ConfigError(f"steps_per_inference: must be in [1, n_action_steps={self.n_action_steps}] or null, "
                              f"got {self.steps_per_inference}")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ConfigError(
                f"horizon ({self.horizon}) must be >= n_obs_steps - 1 + n_action_steps "
                f"({self.n_obs_steps - 1 + self.n_action_steps}): executed actions start at step n_obs_steps-1"
            )
        if self.model == "unet":
            factor = 2 ** (len(self.unet.down_dims) - 1)
            if self.horizon % factor:
                raise ConfigError(
                    f"horizon ({self.horizon}) must be divisible by {factor} for a U-Net with "
                    f"{len(self.unet.down_dims)} down_dims levels"
                )

    @property
    def action_dim(self) -> int:
        """Action size as recorded and executed (rotations as rotation vectors)."""
        return sum(f.dims for f in self.action)

    @property
    def model_action_dim(self) -> int:
        """Action size the network predicts (``rotation_6d`` fields take 3 more columns)."""
        return sum(f.model_dims for f in self.action)

    @property
    def uses_rotation_6d(self) -> bool:
        return any(f.rotation != "axis_angle" for f in (*self.low_dim, *self.action))

    @property
    def camera_keys(self) -> list[str]:
        return [f"camera_{i}" for i in self.cameras]


@dataclass
class TrainingConfig:
    """Optimisation, EMA, validation and checkpointing; defaults follow the paper's image policies."""

    batch_size: int = 64
    num_epochs: int = 600
    max_steps: int | None = None  # stop after this many optimizer steps (overrides num_epochs when reached)
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 500
    grad_clip_norm: float | None = 1.0
    ema: bool = True
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    val_ratio: float = 0.1
    max_train_episodes: int | None = None
    val_every_epochs: int = 1
    checkpoint_every_epochs: int = 10
    log_every_steps: int = 10  # metrics.jsonl / TensorBoard: one training line per this many steps
    top_k: int = 5
    num_workers: int = 4
    seed: int = 42
    cache_dir: str | None = None  # decoded-frame cache; default <dataset>/cache

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.num_epochs < 1:
            raise ConfigError("batch_size and num_epochs must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps: must be >= 1, got {self.max_steps}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ConfigError("lr must be > 0, weight_decay and warmup_steps >= 0")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"betas: must be in [0, 1), got {list(self.betas)}")
        if self.grad_clip_norm is not None and self.grad_clip_norm <= 0:
            raise ConfigError("grad_clip_norm: must be > 0, or null to disable clipping")
        if not 0.0 <= self.val_ratio < 1.0:
            raise ConfigError(f"val_ratio: must be in [0, 1), got {self.val_ratio}")
        if not 0.0 < self.ema_max_decay < 1.0 or self.ema_power <= 0:
            raise ConfigError("ema_max_decay must be in (0, 1) and ema_power > 0")
        if min(self.val_every_epochs, self.checkpoint_every_epochs, self.top_k, self.log_every_steps) < 1 or \
                self.num_workers < 0:
            raise ConfigError("val_every_epochs, checkpoint_every_epochs, log_every_steps and top_k must be >= 1, "
                              "num_workers >= 0")


@dataclass
class TaskConfig:
    """A named task: the policy definition plus how to train it."""

    name: str
    policy: PolicyConfig
    training: TrainingConfig = field(default_factory=TrainingConfig)


def load_task_config(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> TaskConfig:
    """Load a built-in task config by name (``push_t``) or a YAML file by path.

    ``overrides`` is a nested mapping merged over the file's contents before validation (used by tests
    and the CLI to shrink models or change epochs).
    """
    text = str(name_or_path)
    if text in BUILTIN_TASKS:
        data = read_yaml(_builtin_path(text))
    elif text.endswith((".yaml", ".yml")) or Path(text).exists():
        data = read_yaml(text)
    else:
        raise ConfigError(f"unknown task config {text!r}: use one of {', '.join(BUILTIN_TASKS)} or a .yaml path")
    if overrides:
        data = merge_dicts(data, overrides)
    return load_dataclass(TaskConfig, data)


def task_config_from_dict(data: Mapping[str, Any]) -> TaskConfig:
    """Rebuild a TaskConfig from ``task_config_to_dict`` output (e.g. stored in a checkpoint)."""
    return load_dataclass(TaskConfig, data)


def task_config_to_dict(cfg: TaskConfig) -> dict[str, Any]:
    """Plain-python (JSON/YAML-safe) form of a config: dicts, lists, numbers, strings, None."""
    return _plain(dataclasses.asdict(cfg))


def merge_dicts(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else in ``override`` replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def _builtin_path(name: str) -> Path:
    return Path(str(resources.files("robot_stack.policy") / "configs" / f"{name}.yaml"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
