"""``PoseTrajectoryInterpolator``: a timestamped TCP trajectory the servo loop samples every cycle.

A trajectory is a list of knots ``(time, pose)``; between knots the position moves linearly and the rotation
by slerp (``robot_stack.runtime.interpolate_poses``); before the first / after the last knot the pose is held.
Trajectories are immutable: editing operations return a new interpolator.

Scheduling rule (``schedule_waypoint``), in the style of the Diffusion Policy real-robot controller:

1. A waypoint whose time is not after ``curr_time`` is in the past: it is dropped (the trajectory is
   returned unchanged; the caller counts it).
2. The new segment starts at ``end = max(curr_time, last_waypoint_time)`` — it is appended after the already
   scheduled waypoints — unless the new waypoint's time is at or before ``last_waypoint_time``: then it
   *replaces* everything scheduled after ``curr_time`` (a fresh action chunk supersedes the rest of the
   previous one) and the segment starts now, from the pose currently being commanded. Without a
   ``last_waypoint_time`` the segment starts at ``curr_time`` too (the original's behaviour).
3. Knots before ``curr_time`` are trimmed (the pose at ``curr_time`` becomes the first knot).
4. Time-stretching: if reaching the waypoint at its time would need more than ``max_pos_speed`` (m/s) or
   ``max_rot_speed`` (rad/s) from the pose at ``end``, its time is pushed later to the earliest time that
   respects both limits; the path is unchanged, only slower. Since every segment is built this way and
   trimming only splits segments, no segment of a trajectory ever exceeds the speed limits.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from robot_stack.hardware.robot.kinematics import rotation_angle_between
from robot_stack.runtime import interpolate_poses


def pose_distance(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(translation distance in m, rotation angle in rad) between two poses."""
    ax, ay, az, *ra = np.asarray(a, dtype=np.float64).tolist()
    bx, by, bz, *rb = np.asarray(b, dtype=np.float64).tolist()
    return math.sqrt((bx - ax) ** 2 + (by - ay) ** 2 + (bz - az) ** 2), rotation_angle_between(ra, rb)


def min_duration(a: Sequence[float], b: Sequence[float], max_pos_speed: float, max_rot_speed: float) -> float:
    """Shortest time to move from pose ``a`` to ``b`` without exceeding either speed limit."""
    pos, rot = pose_distance(a, b)
    return max(pos / max_pos_speed, rot / max_rot_speed)


class PoseTrajectoryInterpolator:
    """Piecewise linear (position) / slerp (rotation) pose trajectory over strictly increasing times."""

    def __init__(self, times: Sequence[float], poses: Sequence[Sequence[float]]):
        times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        poses = np.atleast_2d(np.asarray(poses, dtype=np.float64))
        if times.ndim != 1 or len(times) == 0 or poses.shape != (len(times), 6):
            raise ValueError(f"expected N times and (N, 6) poses, got {times.shape} and {poses.shape}")
        if np.any(np.diff(times) <= 0):
            raise ValueError("trajectory times must be strictly increasing")
        if not (np.all(np.isfinite(times)) and np.all(np.isfinite(poses))):
            raise ValueError("trajectory times and poses must be finite")
        self._times = times
        self._poses = poses

    @property
    def times(self) -> np.ndarray:
        """Knot times (copy)."""
        return self._times.copy()

    @property
    def poses(self) -> np.ndarray:
        """Knot poses (N, 6) (copy)."""
        return self._poses.copy()

    @property
    def end_time(self) -> float:
        """Time of the last knot; the pose is held after it."""
        return float(self._times[-1])

    def __call__(self, t: float | Sequence[float]) -> np.ndarray:
        """Pose at time ``t`` (shape (6,)), or poses (M, 6) for an array of times; clamped at the ends."""
        if np.ndim(t) == 0:
            return self._at(float(t))
        return interpolate_poses(self._times, self._poses, np.asarray(t, dtype=np.float64))

    def _at(self, t: float) -> np.ndarray:
        # The servo loop samples one time per cycle: this avoids interpolate_poses' array set-up for it.
        times, poses = self._times, self._poses
        i = int(np.searchsorted(times, t, side="right"))
        if i == 0:
            return poses[0].copy()
        if i == len(times):
            return poses[-1].copy()
        p0, p1 = poses[i - 1], poses[i]
        if np.array_equal(p0[3:], p1[3:]):  # one orientation over the segment (planar pushing): no slerp
            a = (t - times[i - 1]) / (times[i] - times[i - 1])
            return np.concatenate([p0[:3] + a * (p1[:3] - p0[:3]), p0[3:]])
        return interpolate_poses(times[i - 1:i + 1], poses[i - 1:i + 1], np.array([t]))[0]

    def trim(self, start_time: float, end_time: float) -> "PoseTrajectoryInterpolator":
        """The part of the trajectory between ``start_time`` and ``end_time`` (knots added at both ends)."""
        if end_time < start_time:
            raise ValueError(f"trim: end_time {end_time} is before start_time {start_time}")
        inner = self._times[(self._times > start_time) & (self._times < end_time)]
        times = np.concatenate([[start_time], inner, [end_time]]) if end_time > start_time else np.array([start_time])
        return PoseTrajectoryInterpolator(times, self(times))

    def drive_to_waypoint(
        self, pose: Sequence[float], time: float, curr_time: float, max_pos_speed: float, max_rot_speed: float
    ) -> "PoseTrajectoryInterpolator":
        """Discard the future of the trajectory and move from the pose at ``curr_time`` to ``pose``.

        Arrives at ``time``, or later if the speed limits require it (same stretching rule as above).
        """
        start = self(curr_time)
        duration = max(time - curr_time, min_duration(start, pose, max_pos_speed, max_rot_speed))
        if duration <= 0.0:
            return self.trim(curr_time, curr_time)
        return PoseTrajectoryInterpolator([curr_time, curr_time + duration], [start, np.asarray(pose, np.float64)])

    def schedule_waypoint(
        self,
        pose: Sequence[float],
        time: float,
        max_pos_speed: float,
        max_rot_speed: float,
        curr_time: float,
        last_waypoint_time: float | None = None,
    ) -> "PoseTrajectoryInterpolator":
        """Append a timestamped waypoint following the module's scheduling rule.

        ``last_waypoint_time`` is the time of the last waypoint scheduled so far; None: the new segment starts at
        ``curr_time``, replacing whatever was planned after it (as the original's interpolator does).
        Returns ``self`` unchanged when ``time <= curr_time`` (a past waypoint is dropped); otherwise the new
        trajectory, whose ``end_time`` is the waypoint's time after any stretching.
        """
        if max_pos_speed <= 0 or max_rot_speed <= 0:
            raise ValueError("max_pos_speed and max_rot_speed must be positive")
        if time <= curr_time:
            return self
        if last_waypoint_time is None:
            end = curr_time
        else:
            end = curr_time if time <= last_waypoint_time else max(curr_time, last_waypoint_time)
        start = min(max(curr_time, float(self._times[0])), end)
        trimmed = self.trim(start, end)
        end_pose = trimmed(end)
        duration = max(time - end, min_duration(end_pose, pose, max_pos_speed, max_rot_speed))
        if not math.isfinite(duration) or duration <= 0.0:
            raise ValueError(f"schedule_waypoint: cannot schedule a waypoint at {time} after {end}")
        return PoseTrajectoryInterpolator(
            np.append(trimmed._times, end + duration), np.vstack([trimmed._poses, np.asarray(pose, np.float64)])
        )
