"""``replay_episode``: send a recorded episode's actions to the robot with their original timing, and measure
how closely the robot reproduces the recorded TCP trajectory.

Timing mirrors collection exactly (see ``collection.py``): step ``i`` is replayed at ``t0 + (timestamp[i] -
timestamp[0])`` by scheduling ``action[i]`` (its first six values, the TCP pose) for ``action_delay_steps``
periods later (the dataset's timing convention: 2 for robot_stack's recorders, 0 for the original's). Before that the arm is brought to the episode's first recorded pose at a gentle speed, so the
replay starts where the recording did. Tracking error compares the recorded ``robot_eef_pose[i]`` with the
replayed actual pose at the same relative time (interpolated from the robot's state stream).

On a rig with a gripper, an episode with 7-D actions (pose + gripper width, see ``collection.py``) also
sends each width to the gripper at its pose's time, and the report adds the width tracking error against
the recorded ``gripper_width``.

A recording may start while the arm is moving (teleop runs between episodes) but the replay starts at rest,
so the first ``settle`` seconds differ by construction; the mean/p95/max errors are computed after them
(``start_error_max`` reports the start separately).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from robot_stack.hardware.gripper.controller import GripperClient
from robot_stack.hardware.robot.controller import RobotClient
from robot_stack.runtime import RecordStream, interpolate_poses, now, precise_wait

log = logging.getLogger(__name__)

_APPROACH_SPEED = 0.05  # m/s to the start pose
_APPROACH_ROT_SPEED = 0.3  # rad/s
_ARRIVED = 0.002  # m
_SETTLE_S = 0.3


class ReplayError(RuntimeError):
    """The episode cannot be replayed (missing keys, robot did not reach the start pose)."""


@dataclass(frozen=True)
class ReplayReport:
    """Tracking error of a replay: recorded ``robot_eef_pose`` vs the replayed actual TCP pose."""

    steps: int
    duration: float
    settle: float  # s at the start excluded from the error statistics
    position_error_mean: float  # m, after the settle time
    position_error_p95: float  # m, after the settle time
    position_error_max: float  # m, after the settle time
    rotation_error_max: float  # rad, after the settle time
    start_error_max: float  # m, during the settle time
    late_sends: int  # steps sent more than half a period late (CPU contention)
    rejected: int  # commands the controller rejected during the replay (outside workspace, ...)
    position_errors: np.ndarray  # (steps,) m
    width_error_mean: float | None = None  # m, gripper width after the settle time (gripper episodes only)
    width_error_max: float | None = None

    def summary(self) -> str:
        """One human-readable line."""
        width = "" if self.width_error_max is None else (
            f"; gripper width mean {self.width_error_mean * 1e3:.2f} mm, max {self.width_error_max * 1e3:.2f} mm")
        return (f"replayed {self.steps} steps ({self.duration:.1f} s). Tracking error after the first "
                f"{self.settle:.1f} s: position mean {self.position_error_mean * 1e3:.2f} mm, p95 "
                f"{self.position_error_p95 * 1e3:.2f} mm, max {self.position_error_max * 1e3:.2f} mm; rotation max "
                f"{np.degrees(self.rotation_error_max):.2f} deg{width} (start from rest: max "
                f"{self.start_error_max * 1e3:.2f} mm). {self.late_sends} late sends, {self.rejected} rejected commands")


def replay_episode(robot: RobotClient, episode: Mapping[str, np.ndarray], action_delay_steps: int,
                   settle: float = 0.6, approach_timeout: float = 20.0,
                   gripper: GripperClient | None = None) -> ReplayReport:
    """Replay ``episode`` (``timestamp``, ``action``, ``robot_eef_pose``) on ``robot`` and report tracking error;
    ``action_delay_steps`` is the dataset's (``EpisodeDataset.timing_convention``). ``gripper``: the rig's, for
    episodes with a gripper width in the action's 7th column (and ``gripper_width`` recorded)."""
    missing = [k for k in ("timestamp", "action", "robot_eef_pose") if k not in episode]
    if missing:
        raise ReplayError(f"the episode has no {', '.join(missing)}; it cannot be replayed")
    ts = np.asarray(episode["timestamp"], dtype=np.float64)
    actions = np.asarray(episode["action"], dtype=np.float64)
    recorded = np.asarray(episode["robot_eef_pose"], dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] < 6:
        raise ReplayError(f"replay needs 6-D pose actions; this episode's actions have shape {actions.shape}")
    if len(ts) < 2 or np.any(np.diff(ts) <= 0):
        raise ReplayError("the episode needs at least 2 steps with increasing timestamps")
    if ts[-1] - ts[0] <= settle:
        raise ReplayError(f"the episode lasts {ts[-1] - ts[0]:.2f} s, not longer than the {settle} s settle time")
    has_width = actions.shape[1] == 7 and "gripper_width" in episode
    if has_width and gripper is None:
        raise ReplayError("the episode commands a gripper (7-D actions with gripper_width): replay it on a rig with "
                          "a gripper: section")
    widths = None
    if has_width and gripper is not None:
        widths = actions[:, 6]
        if not np.all(np.isfinite(widths)) or widths.min() < 0 or widths.max() > gripper.max_width + 1e-9:
            raise ReplayError(f"the episode's gripper widths span [{widths.min():.4f}, {widths.max():.4f}] m; this "
                              f"rig's gripper opens to {gripper.max_width:.4f} m")
    dt = float(np.median(np.diff(ts)))
    move_to(robot, recorded[0], approach_timeout)

    rejected_before = int(robot.get_state()["n_rejected"])
    t0 = now() + dt
    stream = RecordStream(robot.state, t0 - dt, ("actual_tcp_pose", "n_rejected"))
    fingers = RecordStream(gripper.state, t0 - dt, ("width",)) if widths is not None else None
    late = 0
    for i in range(len(ts)):
        t_send = t0 + (ts[i] - ts[0])
        precise_wait(t_send)
        if now() - t_send > dt / 2:
            late += 1
        robot.schedule_waypoint(actions[i, :6], t_send + action_delay_steps * dt)
        if fingers is not None:
            gripper.schedule_waypoint(float(widths[i]), t_send + action_delay_steps * dt)
            fingers.poll()
        stream.poll()
    precise_wait(t0 + (ts[-1] - ts[0]) + action_delay_steps * dt + _SETTLE_S)
    states = stream.poll()
    if len(states["timestamp"]) < 2 or states["timestamp"][-1] < t0 + (ts[-1] - ts[0]):
        raise ReplayError("the robot published no states for part of the replay")
    replayed = interpolate_poses(states["timestamp"], states["actual_tcp_pose"], t0 + (ts - ts[0]))
    pos_err = np.linalg.norm(replayed[:, :3] - recorded[:, :3], axis=1)
    rot_err = (Rotation.from_rotvec(replayed[:, 3:]) * Rotation.from_rotvec(recorded[:, 3:]).inv()).magnitude()
    settled = ts - ts[0] >= settle
    width_errors = None
    if fingers is not None:
        measured = fingers.poll()
        if len(measured["timestamp"]) < 2:
            raise ReplayError("the gripper published no states during the replay")
        replayed_width = np.interp(t0 + (ts - ts[0]), measured["timestamp"], measured["width"])
        width_errors = np.abs(replayed_width - np.asarray(episode["gripper_width"], dtype=np.float64)[:, 0])[settled]
    return ReplayReport(
        steps=len(ts), duration=float(ts[-1] - ts[0]), settle=settle,
        position_error_mean=float(pos_err[settled].mean()),
        position_error_p95=float(np.percentile(pos_err[settled], 95)),
        position_error_max=float(pos_err[settled].max()), rotation_error_max=float(rot_err[settled].max()),
        start_error_max=float(pos_err[~settled].max()), late_sends=late,
        rejected=int(states["n_rejected"][-1]) - rejected_before, position_errors=pos_err,
        width_error_mean=None if width_errors is None else float(width_errors.mean()),
        width_error_max=None if width_errors is None else float(width_errors.max()),
    )


def move_to(robot: RobotClient, pose: np.ndarray, timeout: float = 20.0, period: float = 0.05) -> None:
    """Bring the TCP to ``pose`` slowly along a straight line, streaming waypoints (the controller's watchdog
    holds the arm if commands stop); raise ``ReplayError`` if it is not there within ``timeout``."""
    start = robot.get_state()["actual_tcp_pose"]
    distance = float(np.linalg.norm(pose[:3] - start[:3]))
    angle = (Rotation.from_rotvec(pose[3:]) * Rotation.from_rotvec(start[3:]).inv()).magnitude()
    duration = max(distance / _APPROACH_SPEED, angle / _APPROACH_ROT_SPEED, 0.2)
    t_start = now()
    ends, line = np.array([t_start, t_start + duration]), np.stack([start, pose])
    deadline = t_start + duration + timeout
    while now() < deadline:
        t = now()
        robot.schedule_waypoint(interpolate_poses(ends, line, t + 2 * period)[0], t + 2 * period)
        actual = robot.get_state()["actual_tcp_pose"]
        if t > t_start + duration and np.linalg.norm(actual[:3] - pose[:3]) < _ARRIVED:
            return
        precise_wait(t + period)
    raise ReplayError(f"the robot did not reach the episode's start pose {np.round(pose, 4).tolist()} "
                      f"within {duration + timeout:.1f} s (is it in protective stop?)")

