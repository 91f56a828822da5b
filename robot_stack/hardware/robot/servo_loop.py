"""``ServoLoop``: one servoL cycle at a time toward a timestamped pose trajectory, with the safety rules.

This is the controller's logic without the process around it, so it runs identically in the
``RobotController`` child (real time) and in-process in tests (``SimClock``, faster than real time).

Each ``cycle()``: read the clock (``loop_time``), check the watchdog, sample the trajectory at
``loop_time`` and send it with servoL (unless holding), read the robot state, and return the state record.
``wait_next()`` then sleeps until the next period boundary.

Safety rules (documented here because they are the contract):

* Targets are **rejected, not clipped**: a waypoint that is not a finite 6-vector, whose position is outside
  the workspace box, whose time is not finite, or that has no IK solution within the joint limits (nearest to
  the current joints) is dropped with a logged reason and counted in ``n_rejected``; the trajectory goes on
  as if it had never been sent. Clipping would silently execute a pose nobody asked for.
* Speed: waypoints are time-stretched to ``max_pos_speed``/``max_rot_speed`` (see ``interpolator.py``),
  stretched ones are counted in ``n_stretched``; past waypoints are dropped and counted in ``n_dropped``.
  The plan alone does not bound the *measured* speed: servoL moves the arm at about (target - actual) /
  tau (tau = lookahead_time * 300 / gain), so when the arm lags further than it does at full speed (a late
  cycle, a start from rest) it would race to catch up. So the target sent never leads the actual pose by
  more than ``max_pos_speed * tau`` / ``max_rot_speed * tau`` (it is pulled back along the way, counted in
  ``n_lead_limited``): the arm falls a little behind the plan instead of exceeding the limits.
* Watchdog: when no command arrived for ``command_timeout`` while the trajectory still moves, or when
  ``hold()`` is called (stop command, dead peer process), the loop calls ``servo_stop`` and stops sending
  servoL: the arm decelerates and holds. The next valid motion command resumes from the actual pose,
  unless the hold is latched (dead peer), in which case motion commands are rejected.
* Arm-side watchdog (RTDE): the driver enables ur_rtde's watchdog (``arm_watchdog_timeout``); every servoL
  feeds it, and cycles that send none (holding) kick it. If this process dies or freezes, the robot stops its
  control program by itself and the arm decelerates; nothing on this side has to survive for that.
* State time: a record's ``timestamp`` is when the state was *measured*: the robot's own timestamp of it,
  mapped onto the runtime clock (``measured_time``), not when the loop got round to reading it. Velocities
  computed from consecutive records are then right even when reads jitter; ``loop_time`` keeps the cycle's
  own time.
* Protective stop: raises ``ProtectiveStopError`` (the process fails and the supervisor stops the rig);
  recovering needs a human at the pendant.
"""

from __future__ import annotations

import collections
import logging
from typing import Sequence

import numpy as np

from robot_stack.hardware.robot.clock import Clock
from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.robot.interface import ProtectiveStopError, RobotDriver, RobotError
from robot_stack.hardware.robot.interpolator import PoseTrajectoryInterpolator, pose_distance
from robot_stack.runtime import interpolate_poses

log = logging.getLogger(__name__)

# Stretching below this many seconds is float noise from the speed computation, not a real stretch.
_STRETCH_EPS = 1e-6
# Log the first few rejections individually, then one in this many, so a NaN stream cannot flood the log.
_LOG_EVERY = 100
# ur_rtde's default servoL gain: the servo's time constant is modelled as lookahead_time * this / gain.
_REFERENCE_GAIN = 300.0
# The robot-to-runtime clock offset is the smallest (read time - robot time) seen over this window: reads are
# late by a varying amount but never early, and a window (not all time) follows slow drift between clocks.
_OFFSET_WINDOW_S = 5.0
_RESTAMP_S = 1e-6


class ServoLoop:
    """The controller's servo loop logic over a ``RobotDriver`` and a ``Clock``."""

    def __init__(self, driver: RobotDriver, config: RobotConfig, clock: Clock):
        self.driver = driver
        self.config = config
        self.clock = clock
        self.kin = config.kinematics()
        self.period = config.period
        self.n_rejected = 0
        self.n_dropped = 0
        self.n_stretched = 0
        self.n_overruns = 0
        self.n_lead_limited = 0
        self.holding = False
        self.hold_reason = ""
        self._latched = False
        self._traj: PoseTrajectoryInterpolator | None = None
        self._last_waypoint_time = 0.0
        self._last_command_time = 0.0
        self._next_deadline = 0.0
        self._commanded = np.zeros(6)
        self._offsets: collections.deque[tuple[float, float]] = collections.deque()  # (read time, offset)
        self._last_robot_time = -np.inf
        self._last_stamp = -np.inf

    def start(self) -> None:
        """Begin holding the current pose; call once after the driver connected."""
        t = self.clock.now()
        self._reset_trajectory(t)
        self._last_command_time = t
        self._next_deadline = t

    def _reset_trajectory(self, t: float) -> None:
        pose = self.driver.get_actual_tcp_pose()
        self._traj = PoseTrajectoryInterpolator([t], [pose])
        self._last_waypoint_time = t
        self._commanded = pose

    @property
    def trajectory(self) -> PoseTrajectoryInterpolator:
        """The current commanded trajectory."""
        assert self._traj is not None, "ServoLoop.start() was not called"
        return self._traj

    # -- commands ------------------------------------------------------------------------------------------
    def schedule_waypoint(self, pose: Sequence[float], target_time: float) -> bool:
        """Add a timestamped waypoint (see ``interpolator.py`` for the rule); False if rejected or dropped."""
        t = self.clock.now()
        pose = self._validate(pose, target_time, "waypoint")
        if pose is None:
            return False
        if target_time <= t:  # checked before resuming: a stale waypoint must not end a hold
            self.n_dropped += 1
            log.debug("waypoint for t=%.4f dropped: %.4f s in the past", target_time, t - target_time)
            return False
        self._command_received()
        traj = self.trajectory.schedule_waypoint(
            pose, target_time, self.config.max_pos_speed, self.config.max_rot_speed, t, self._last_waypoint_time
        )
        self._install(traj, target_time)
        return True

    def servo_l(self, pose: Sequence[float], duration: float) -> bool:
        """Go to ``pose`` in ``duration`` s from now (or slower, within the speed limits), replacing the plan."""
        t = self.clock.now()
        if not 0.0 <= duration < float("inf"):
            self.reject(f"servoL duration must be finite and >= 0, got {duration}")
            return False
        pose = self._validate(pose, t + duration, "servoL target")
        if pose is None:
            return False
        self._command_received()
        traj = self.trajectory.drive_to_waypoint(
            pose, t + duration, t, self.config.max_pos_speed, self.config.max_rot_speed
        )
        self._install(traj, t + duration)
        return True

    def hold(self, reason: str, latch: bool = False) -> None:
        """Decelerate (servoStop) and hold; ``latch`` keeps holding and rejects motion commands for good."""
        if latch and not self._latched:
            self._latched = True
            self.hold_reason = reason
            log.error("holding the arm for good: %s", reason)
        if self.holding:
            return
        if not latch:
            log.warning("holding the arm: %s", reason)
        self.holding = True
        self.hold_reason = reason
        self.driver.servo_stop(self.config.stop_deceleration)

    def _validate(self, pose: Sequence[float], t: float, what: str) -> np.ndarray | None:
        """The pose of a valid motion command, or None (counted and logged) if it must be rejected."""
        pose = np.asarray(pose, dtype=np.float64)
        if self._latched:
            return self.reject(f"{what} ignored: {self.hold_reason}")
        if pose.shape != (6,) or not np.all(np.isfinite(pose)):
            return self.reject(f"{what} {pose.tolist()} is not a finite 6-vector")
        if not np.isfinite(t):
            return self.reject(f"{what} time {t} is not finite")
        if not self.config.workspace.contains(pose[:3]):
            ws = self.config.workspace
            return self.reject(
                f"{what} position {pose[:3].round(4).tolist()} is outside the workspace "
                f"min={list(ws.min)} max={list(ws.max)}"
            )
        if self.kin.ik(pose, self.driver.get_actual_q()) is None:
            return self.reject(f"{what} {pose.round(4).tolist()} has no IK solution within the joint limits")
        return pose

    def _command_received(self) -> None:
        """Feed the watchdog; a (non-latched) hold ends here, restarting the plan from the actual pose."""
        self._last_command_time = self.clock.now()
        if self.holding:
            log.info("resuming from hold (%s) on a new motion command", self.hold_reason)
            self.holding = False
            self.hold_reason = ""
            self._reset_trajectory(self.clock.now())

    def reject(self, reason: str) -> None:
        """Count and log (rate-limited) a rejected command."""
        self.n_rejected += 1
        if self.n_rejected <= 5 or self.n_rejected % _LOG_EVERY == 0:
            log.warning("rejected command #%d: %s", self.n_rejected, reason)
        return None

    def _install(self, traj: PoseTrajectoryInterpolator, requested_time: float) -> None:
        self._traj = traj
        self._last_waypoint_time = traj.end_time
        if traj.end_time > requested_time + _STRETCH_EPS:
            self.n_stretched += 1
            log.debug("waypoint stretched by %.3f s to respect the speed limits", traj.end_time - requested_time)

    # -- the cycle -----------------------------------------------------------------------------------------
    def cycle(self) -> dict[str, np.ndarray | float | bool | int]:
        """Run one servo cycle and return the state record (fields of ``controller.STATE_SPEC``)."""
        t = self.clock.now()
        driver = self.driver
        if driver.is_protective_stopped():
            raise self._protective_stop_error()
        if (
            not self.holding
            and t - self._last_command_time > self.config.command_timeout
            and t < self._last_waypoint_time
        ):
            self.hold(f"no command for {t - self._last_command_time:.3f} s (command_timeout "
                      f"{self.config.command_timeout} s) while the trajectory was still moving")
        # One read of the measured pose per cycle: it bounds the target and is the record's pose.
        actual, robot_time = driver.get_measured_pose()
        # A cycle that reads the same package again (RTDE sends at the servo rate; a read can catch one twice)
        # is published 1 us after the previous record: consumers interpolate over strictly increasing times.
        measured = max(self.measured_time(robot_time, self.clock.now()), self._last_stamp + _RESTAMP_S)
        self._last_stamp = measured
        if not self.holding:
            self._commanded = self._bounded_lead(self.trajectory(t), actual)
            ok = driver.servo_l(
                self._commanded, 0.0, 0.0, self.period, self.config.lookahead_time, self.config.gain
            )
            if not ok:
                if driver.is_protective_stopped():
                    raise self._protective_stop_error()
                raise RobotError(
                    "the robot did not accept servoL (control script not running?): check the pendant for a "
                    "stopped program or a popup, then restart"
                )
        else:
            driver.kick_watchdog()  # holding sends no servoL: keep the arm-side watchdog fed while we live
        if self.holding:
            self._commanded = actual
        record = {
            "actual_tcp_pose": actual,
            "actual_tcp_speed": driver.get_actual_tcp_speed(),
            "actual_q": driver.get_actual_q(),
            "actual_qd": driver.get_actual_qd(),
            "target_tcp_pose": driver.get_target_tcp_pose(),
            "commanded_pose": self._commanded,
            "robot_timestamp": robot_time,
            "loop_time": t,
            "timestamp": measured,
            "holding": self.holding,
            "n_rejected": self.n_rejected,
            "n_dropped": self.n_dropped,
            "n_stretched": self.n_stretched,
            "n_overruns": self.n_overruns,
        }
        return record

    def measured_time(self, robot_time: float, read_time: float) -> float:
        """Runtime-clock time of a state the robot stamped ``robot_time``, read at ``read_time``."""
        offsets = self._offsets
        if robot_time < self._last_robot_time:  # the robot's clock restarted: what we knew no longer holds
            offsets.clear()
        self._last_robot_time = robot_time
        offset = read_time - robot_time
        while offsets and offsets[-1][1] >= offset:  # monotonic queue: its front is the window's minimum
            offsets.pop()
        offsets.append((read_time, offset))
        while offsets[0][0] < read_time - _OFFSET_WINDOW_S:
            offsets.popleft()
        return robot_time + offsets[0][1]

    def _bounded_lead(self, target: np.ndarray, actual: np.ndarray) -> np.ndarray:
        """``target``, pulled back toward ``actual`` so that servoL cannot drive faster than the limits."""
        tau = self.config.lookahead_time * _REFERENCE_GAIN / self.config.gain
        pos, rot = pose_distance(actual, target)
        scale = min(1.0, self.config.max_pos_speed * tau / pos if pos > 0 else 1.0,
                    self.config.max_rot_speed * tau / rot if rot > 0 else 1.0)
        if scale >= 1.0:
            return target
        self.n_lead_limited += 1
        return interpolate_poses(np.array([0.0, 1.0]), np.stack([actual, target]), np.array([scale]))[0]

    def _protective_stop_error(self) -> ProtectiveStopError:
        reason = self.driver.protective_stop_reason
        return ProtectiveStopError(
            "the robot went into protective stop" + (f" ({reason})" if reason else "") + ": check the pendant for "
            "the cause, move the arm clear, unlock the protective stop, then restart"
        )

    def wait_next(self) -> None:
        """Sleep until the next period boundary; after an overrun of a full period, skip ahead (counted)."""
        self._next_deadline += self.period
        t = self.clock.now()
        if t > self._next_deadline + self.period:
            self.n_overruns += 1
            self._next_deadline = t  # re-phase instead of bursting to catch up
        self.clock.wait_until(self._next_deadline)

    def shutdown(self) -> None:
        """servoStop, stopScript, disconnect — each attempted even if an earlier one fails."""
        errors = []
        for name, action in (
            ("servo_stop", lambda: self.driver.servo_stop(self.config.stop_deceleration)),
            ("stop_script", self.driver.stop_script),
            ("disconnect", self.driver.disconnect),
        ):
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - keep going: the next step may still stop the arm
                errors.append(f"{name}: {exc}")
        if errors:
            raise RobotError("shutting down the arm failed: " + "; ".join(errors))
