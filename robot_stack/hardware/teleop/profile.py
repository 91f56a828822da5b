"""Teleop profiles (``teleop/*.yaml``) and the rig's ``teleop:`` section, validated at load time.

A profile says how one input device drives the arm: deadzone, which device axis feeds which robot axis and
with what sign, the speed at full deflection, and what its buttons (or, for the keyboard, its keys) do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.hardware.teleop.device import N_AXES, N_BUTTONS
from robot_stack.resources import shipped_dir

# On press: gripper_toggle (closed <-> open), gripper_open, gripper_close, record_toggle, discard_last.
# While held: gripper_closing / gripper_opening move the gripper's width continuously (``gripper_speed``).
ButtonAction = Literal["gripper_toggle", "gripper_open", "gripper_close", "gripper_closing", "gripper_opening",
                       "record_toggle", "discard_last"]
HELD_ACTIONS = ("gripper_closing", "gripper_opening")
Vec6 = tuple[float, float, float, float, float, float]
IVec6 = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class TeleopProfile:
    """How a device's ``TeleopState`` maps to TCP motion (see ``teleop/spacemouse.yaml`` for the fields)."""

    device: Literal["spacemouse", "keyboard", "scripted"]
    max_pos_speed: float = 0.1  # m/s at full deflection
    max_rot_speed: float = 0.5  # rad/s at full deflection
    deadzone: float = 0.05  # |axis| at or below this reads as 0; above, rescaled so motion starts smoothly
    axis_map: IVec6 = (0, 1, 2, 3, 4, 5)  # robot axis i (x, y, z, rx, ry, rz) takes device axis axis_map[i]
    axis_sign: Vec6 = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)  # then multiplied by axis_sign[i]
    buttons: dict[int, ButtonAction] = field(default_factory=dict)  # button index -> action on press
    stale_after: float = 0.1  # s; a device state older than this counts as "no input" (device stalled)
    gripper_speed: float = 0.5  # of the full stroke per second while a gripper_closing/opening button is held
    # keyboard only
    keys: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (device axis, deflection)
    button_keys: dict[str, int] = field(default_factory=dict)  # key -> button index
    key_hold: float = 0.6  # s a key counts as held after its last press/auto-repeat event

    def __post_init__(self) -> None:
        if sorted(self.axis_map) != list(range(N_AXES)):
            raise ConfigError(f"axis_map must be a permutation of 0..5, got {list(self.axis_map)}")
        if any(s not in (-1.0, 1.0) for s in self.axis_sign):
            raise ConfigError(f"axis_sign entries must be 1 or -1, got {list(self.axis_sign)}")
        if not 0 < self.max_pos_speed <= 1.0:
            raise ConfigError(f"max_pos_speed must be in (0, 1] m/s, got {self.max_pos_speed}")
        if not 0 < self.max_rot_speed <= math.pi:
            raise ConfigError(f"max_rot_speed must be in (0, pi] rad/s, got {self.max_rot_speed}")
        if not 0 <= self.deadzone < 0.9:
            raise ConfigError(f"deadzone must be in [0, 0.9), got {self.deadzone}")
        if not 0 < self.gripper_speed <= 10.0:
            raise ConfigError(f"gripper_speed must be in (0, 10] strokes/s, got {self.gripper_speed}")
        if not 0 < self.stale_after <= 2.0:
            raise ConfigError(f"stale_after must be in (0, 2] s, got {self.stale_after}")
        for index in list(self.buttons) + list(self.button_keys.values()):
            if not 0 <= index < N_BUTTONS:
                raise ConfigError(f"button index {index} out of range 0..{N_BUTTONS - 1}")
        for key, (axis, value) in self.keys.items():
            if len(key) != 1:
                raise ConfigError(f"keys: {key!r} must be a single character")
            if not 0 <= axis < N_AXES or not -1.0 <= value <= 1.0 or value == 0:
                raise ConfigError(f"keys.{key}: needs [axis 0..5, deflection in [-1, 1], not 0], got [{axis}, {value}]")
        for key in self.button_keys:
            if len(key) != 1 or key in self.keys:
                raise ConfigError(f"button_keys: {key!r} must be a single character not also in keys")
        if not 0 < self.key_hold <= 2.0:
            raise ConfigError(f"key_hold must be in (0, 2] s, got {self.key_hold}")
        if self.device == "keyboard" and not self.keys:
            raise ConfigError("a keyboard profile needs keys: {key: [axis, deflection], ...}")


@dataclass(frozen=True)
class TeleopConfig:
    """The rig's ``teleop:`` section."""

    profile: str = "spacemouse"  # a profile name under teleop/ or a path to a profile YAML
    mode: Literal["planar", "6dof"] = "6dof"  # planar: xy at a fixed height and fixed orientation (Push-T)
    planar_z: float | None = None  # m; planar height. None: the scene's push height, else the TCP z at start
    gripper: bool = False  # the rig has a gripper: a gripper command is recorded with each action

    def __post_init__(self) -> None:
        if self.planar_z is not None and not math.isfinite(self.planar_z):
            raise ConfigError(f"planar_z must be a finite number, got {self.planar_z}")


def profile_path(name_or_path: str | Path) -> Path:
    """``spacemouse`` -> the shipped ``teleop/spacemouse.yaml``; a path (a suffix or a slash) as is."""
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    profiles = shipped_dir("teleop")
    path = profiles / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in profiles.glob("*.yaml"))
        raise ConfigError(f"unknown teleop profile {text!r}: no {path}; profiles: {', '.join(known)}")
    return path


def load_profile(source: str | Path | Mapping[str, Any]) -> TeleopProfile:
    """Load a ``TeleopProfile`` from a profile name, a YAML path, or a mapping."""
    if isinstance(source, Mapping):
        return load_dataclass(TeleopProfile, source, "teleop profile")
    path = profile_path(source)
    return load_dataclass(TeleopProfile, read_yaml(path), str(path))
