"""``TeleopMapper``: teleop device states -> TCP target poses at the control rate, in the robot base frame.

Each control step the device axes are shaped (deadzone with a continuous rescale, axis mapping, signs),
scaled to a twist (``max_pos_speed`` m/s, ``max_rot_speed`` rad/s at full deflection; these bound the norm
of the linear and angular velocity, so a diagonal push is no faster than a straight one), and integrated
over the control period into the target pose, which is then clamped into the robot's workspace box (the
arm slides along a wall instead of its commands being rejected). Modes:

* ``6dof``: translation and rotation (angular velocity in the base frame).
* ``planar``: xy only; z stays at the planar height and the orientation at the episode-start one (Push-T).

The gripper command is a closure in [0, 1] (0 open, 1 closed). Buttons act on press (rising edge):
``gripper_toggle`` closes an open(ing) gripper and opens a closed one, ``gripper_open`` / ``gripper_close`` go
all the way; ``record_toggle`` and ``discard_last`` are reported as events for the recording loop. While a
``gripper_closing`` / ``gripper_opening`` button is held the closure moves continuously, by the profile's
``gripper_speed`` strokes per second. A non-finite or stale state (older than the
profile's ``stale_after``: the device process stalled) is treated as no input and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial.transform import Rotation

from robot_stack.config import ConfigError
from robot_stack.hardware.robot.config import Workspace
from robot_stack.hardware.teleop.device import N_AXES, N_BUTTONS, TeleopState
from robot_stack.hardware.teleop.profile import HELD_ACTIONS, TeleopProfile
from robot_stack.runtime import now


@dataclass(frozen=True)
class TeleopCommand:
    """The mapper's output for one control step."""

    target: np.ndarray  # (6,) TCP target pose [x, y, z, rx, ry, rz], base frame
    gripper: float  # closure: 0 open .. 1 closed
    events: tuple[str, ...]  # button actions pressed this step (record_toggle, discard_last, gripper_toggle, ...)

    @property
    def gripper_closed(self) -> bool:
        """The gripper is commanded at least half closed."""
        return self.gripper >= 0.5


class TeleopMapper:
    """Integrates teleop states into a workspace-bounded TCP target; call ``reset`` before the first ``update``."""

    def __init__(
        self,
        profile: TeleopProfile,
        workspace: Workspace,
        dt: float,
        mode: Literal["planar", "6dof"] = "6dof",
        planar_z: float | None = None,
    ):
        if not dt > 0:
            raise ConfigError(f"control period must be > 0, got {dt}")
        if mode not in ("planar", "6dof"):
            raise ConfigError(f"teleop mode must be 'planar' or '6dof', got {mode!r}")
        self.profile = profile
        self.workspace = workspace
        self.dt = float(dt)
        self.mode = mode
        self.planar_z = planar_z
        if planar_z is not None and not workspace.min[2] <= planar_z <= workspace.max[2]:
            raise ConfigError(f"planar_z {planar_z} is outside the workspace z range [{workspace.min[2]}, {workspace.max[2]}]")
        self._lo = np.asarray(workspace.min, dtype=np.float64)
        self._hi = np.asarray(workspace.max, dtype=np.float64)
        self._speeds = np.array([profile.max_pos_speed] * 3 + [profile.max_rot_speed] * 3)
        self._map = np.asarray(profile.axis_map)
        self._sign = np.asarray(profile.axis_sign, dtype=np.float64)
        self.target: np.ndarray | None = None
        self.gripper = 0.0  # closure, 0 open .. 1 closed
        self.n_stale = 0  # steps whose device state was too old
        self.n_invalid = 0  # steps whose device state had non-finite axes
        self._buttons = np.zeros(N_BUTTONS, dtype=bool)

    def reset(self, pose: np.ndarray, gripper: float = 0.0) -> np.ndarray:
        """Start from ``pose`` (normally the actual TCP pose); in planar mode z goes to the planar height."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (6,) or not np.all(np.isfinite(pose)):
            raise ValueError(f"reset pose must be 6 finite values, got {pose}")
        target = pose.copy()
        if self.mode == "planar" and self.planar_z is not None:
            target[2] = self.planar_z
        target[:3] = np.clip(target[:3], self._lo, self._hi)
        self.target = target
        self.gripper = float(np.clip(gripper, 0.0, 1.0))
        self._buttons = np.zeros(N_BUTTONS, dtype=bool)
        return target.copy()

    def shape_axes(self, axes: np.ndarray) -> np.ndarray:
        """Device axes -> robot-axis deflections in [-1, 1]: deadzone (rescaled), mapping, signs."""
        raw = np.clip(np.asarray(axes, dtype=np.float64), -1.0, 1.0)
        dz = self.profile.deadzone
        live = np.where(np.abs(raw) > dz, np.sign(raw) * (np.abs(raw) - dz) / (1.0 - dz), 0.0)
        return live[self._map] * self._sign

    def update(self, state: TeleopState, t: float | None = None) -> TeleopCommand:
        """Advance the target by one control period of ``state`` (read at runtime-clock time ``t``)."""
        if self.target is None:
            raise RuntimeError("TeleopMapper.update before reset(pose)")
        t = now() if t is None else t
        axes = np.asarray(state.axes, dtype=np.float64)
        buttons = np.asarray(state.buttons, dtype=bool)
        fresh = True
        if not np.all(np.isfinite(axes)):
            self.n_invalid += 1
            axes = np.zeros(N_AXES)
        elif t - state.timestamp > self.profile.stale_after:
            self.n_stale += 1
            axes = np.zeros(N_AXES)
            buttons = self._buttons  # no new presses from a stale reading
            fresh = False
        deflection = self.shape_axes(axes)
        if self.mode == "planar":
            deflection[2:] = 0.0  # z and rotation are fixed in planar mode
        twist = _limit_norms(deflection) * self._speeds
        target = self.target.copy()
        target[:3] += twist[:3] * self.dt
        if self.mode == "6dof":
            rotation = Rotation.from_rotvec(twist[3:] * self.dt) * Rotation.from_rotvec(target[3:])
            target[3:] = rotation.as_rotvec()
        target[:3] = np.clip(target[:3], self._lo, self._hi)
        self.target = target
        events = self._press(buttons)
        if fresh:  # a held button acts only while the device is heard from
            self._hold(buttons)
        return TeleopCommand(target.copy(), self.gripper, events)

    def axes_toward(self, goal: np.ndarray) -> np.ndarray:
        """Device axes that move the target to ``goal`` in one step (speed-limited): the inverse of ``update``.

        ``goal`` may give xy (2,), a position (3,) or a pose (6,); missing parts keep the current target's.
        Used by ``ScriptedTeleop``, so scripted demonstrations take the same mapping path as a human's.
        """
        if self.target is None:
            raise RuntimeError("TeleopMapper.axes_toward before reset(pose)")
        goal = np.asarray(goal, dtype=np.float64).ravel()
        if goal.shape[0] not in (2, 3, 6) or not np.all(np.isfinite(goal)):
            raise ValueError(f"goal must be 2, 3 or 6 finite values, got {goal}")
        full = self.target.copy()
        full[: goal.shape[0]] = goal
        deflection = np.zeros(N_AXES)
        deflection[:3] = (full[:3] - self.target[:3]) / (self.dt * self.profile.max_pos_speed)
        rot = Rotation.from_rotvec(full[3:]) * Rotation.from_rotvec(self.target[3:]).inv()
        deflection[3:] = rot.as_rotvec() / (self.dt * self.profile.max_rot_speed)
        if self.mode == "planar":
            deflection[2:] = 0.0
        deflection = _limit_norms(deflection)  # saturate at full speed, keeping the direction
        dz = self.profile.deadzone
        shaped = np.where(deflection != 0, np.sign(deflection) * (dz + np.abs(deflection) * (1.0 - dz)), 0.0)
        axes = np.zeros(N_AXES)
        axes[self._map] = shaped * self._sign
        return axes

    def _press(self, buttons: np.ndarray) -> tuple[str, ...]:
        """Actions of the buttons pressed since the last step (rising edges)."""
        pressed = buttons & ~self._buttons
        self._buttons = buttons.copy()
        events = tuple(self.profile.buttons[int(i)] for i in np.flatnonzero(pressed) if int(i) in self.profile.buttons)
        for event in events:
            if event == "gripper_toggle":
                self.gripper = 1.0 if self.gripper < 0.5 else 0.0
            elif event in ("gripper_open", "gripper_close"):
                self.gripper = 1.0 if event == "gripper_close" else 0.0
        return events

    def _hold(self, buttons: np.ndarray) -> None:
        """Move the closure while a gripper_closing / gripper_opening button is held (a fresh reading)."""
        held = {self.profile.buttons[int(i)] for i in np.flatnonzero(buttons) if int(i) in self.profile.buttons}
        direction = (HELD_ACTIONS[0] in held) - (HELD_ACTIONS[1] in held)  # both held: no motion
        if direction:
            self.gripper = float(np.clip(self.gripper + direction * self.profile.gripper_speed * self.dt, 0.0, 1.0))


def _limit_norms(deflection: np.ndarray) -> np.ndarray:
    """Scale the translation and rotation parts of a deflection down to norm 1 where they exceed it."""
    out = deflection.copy()
    for part in (slice(0, 3), slice(3, 6)):
        norm = float(np.linalg.norm(out[part]))
        if norm > 1.0:
            out[part] /= norm
    return out
