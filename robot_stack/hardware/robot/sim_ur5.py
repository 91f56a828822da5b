"""``SimUR5``: a simulated UR5 implementing ``RobotDriver``, for tests and simulated rigs.

Tracking model of servoL (joint space, integrated every ``sim.physics_dt`` seconds):

* the servo target pose is turned into joints by IK (solution nearest to the previous target);
* each joint follows its target with a first-order velocity reference, ``qd_ref = error / tau``, where
  ``tau = lookahead_time * 300 / gain`` (300 being ur_rtde's default gain), capped by the joint speed limit
  and by the speed from which the joint can still stop within the remaining error (no overshoot);
* the velocity moves toward ``qd_ref`` no faster than the joint acceleration limit.

So the actual pose lags a moving command by about ``speed * tau`` and a step is followed with a
trapezoidal-ish profile, like the real arm. ``servo_j`` is the same servo without the IK step; ``speed_j``
makes the joint velocities follow a commanded velocity, changing no faster than the requested acceleration
(capped by the joint limits). ``get_target_q``/``get_target_qd`` report the commanded joint state. A protective stop (the arm decelerates at the acceleration
limit and ignores commands until ``unlock_protective_stop``) is raised by: a target without an IK solution
inside the joint limits, a target more than ``sim.max_tracking_error`` rad from the actual joints (a jump
in the servo stream), a non-finite target, or a joint leaving its limits.

Time: ``step(dt)`` advances the simulation explicitly (what an in-process RTDE loopback server does at its
frequency). Given a ``clock``, every driver call first advances the simulation to ``clock.now()``, so the
arm lives on the controller's clock — real time with ``RuntimeClock``, or as fast as the loop runs with
``SimClock``. Everything is deterministic given the seed and the sequence of calls and times.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np

from robot_stack.hardware.robot.clock import Clock
from robot_stack.hardware.robot.config import RobotConfig
from robot_stack.hardware.robot.interface import RobotDriver

log = logging.getLogger(__name__)

_REFERENCE_GAIN = 300.0


class SimUR5(RobotDriver):
    """Simulated UR5 arm (see module docstring for the model)."""

    def __init__(self, config: RobotConfig, seed: int = 0, clock: Clock | None = None):
        self.config = config
        self.kin = config.kinematics()
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        sim = config.sim
        self._vmax = np.asarray(sim.max_joint_speed, dtype=np.float64)
        self._amax = np.asarray(sim.max_joint_accel, dtype=np.float64)
        self._h = sim.physics_dt
        self._noise = sim.sensor_noise_std
        self.q = np.asarray(config.home_joints, dtype=np.float64).copy()
        self.qd = np.zeros(6)
        self.time = 0.0  # robot controller time, s
        self._mode = "idle"  # idle | servo | speed | stopping
        self._q_target = self.q.copy()
        self._q_target_list = self._q_target.tolist()
        self._qd_target_list = [0.0] * 6  # speed mode: commanded joint velocities
        self._speed_accel_list = [0.0] * 6  # speed mode: per-joint acceleration toward them
        self._amax_list, self._vmax_list = self._amax.tolist(), self._vmax.tolist()
        self._q_min_list, self._q_max_list = self.kin.q_min.tolist(), self.kin.q_max.tolist()
        self._target_pose: np.ndarray | None = None
        self._tau = config.lookahead_time
        self._stop_decel = self._amax.copy()
        self._pstop_reason = ""
        self._script_running = False
        self._synced_at: float | None = None
        self._measured: tuple[np.ndarray, np.ndarray] | None = None  # cached (q_measured, tcp_pose)

    # -- simulation ----------------------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds (fixed sub-steps of ``sim.physics_dt``)."""
        if dt < 0:
            raise ValueError(f"step: dt must be >= 0, got {dt}")
        # Sub-steps run on Python floats: on 6-vectors numpy's per-call overhead dominates the arithmetic.
        q, qd = self.q.tolist(), self.qd.tolist()
        remaining = dt
        while remaining > 1e-12:
            h = min(self._h, remaining)
            self._substep(q, qd, h)
            remaining -= h
        self.q, self.qd = np.array(q), np.array(qd)
        self.time += dt
        self._measured = None

    def _substep(self, q: list[float], qd: list[float], h: float) -> None:
        """One integration step of ``q``, ``qd`` (in place)."""
        amax, vmax = self._amax_list, self._vmax_list
        if self._mode == "servo" and not self._pstop_reason:
            tau, target = self._tau, self._q_target_list
            for j in range(6):
                err = target[j] - q[j]
                size = abs(err)
                mag = min(size / tau, math.sqrt(2.0 * amax[j] * size), vmax[j])
                ref = mag if err > 0.0 else -mag if err < 0.0 else 0.0
                limit = amax[j] * h
                change = ref - qd[j]
                qd[j] += limit if change > limit else -limit if change < -limit else change
                q[j] += qd[j] * h
        elif self._mode == "speed" and not self._pstop_reason:
            target, accel = self._qd_target_list, self._speed_accel_list
            for j in range(6):
                limit = accel[j] * h
                change = target[j] - qd[j]
                qd[j] += limit if change > limit else -limit if change < -limit else change
                q[j] += qd[j] * h
        else:
            # decelerating: along the path after servoStop/stopL, as hard as possible otherwise
            stopping = self._mode == "stopping" and not self._pstop_reason
            decel = self._stop_decel.tolist() if stopping else amax
            for j in range(6):
                limit = decel[j] * h
                change = -qd[j]
                qd[j] += limit if change > limit else -limit if change < -limit else change
                q[j] += qd[j] * h
        if self._mode == "stopping" and not any(qd):
            self._mode = "idle"
        lo, hi = self._q_min_list, self._q_max_list
        for j in range(6):
            if not lo[j] <= q[j] <= hi[j]:
                q[j] = min(max(q[j], lo[j]), hi[j])
                qd[j] = 0.0
                self._protective_stop(f"joint {j} reached its position limit")

    def _sync(self) -> None:
        if self._clock is None:
            return
        t = self._clock.now()
        if self._synced_at is None:
            self._synced_at = t
        elif t > self._synced_at:
            self.step(t - self._synced_at)
            self._synced_at = t

    def _protective_stop(self, reason: str) -> None:
        if not self._pstop_reason:
            log.warning("simulated UR5 protective stop: %s", reason)
            self._pstop_reason = reason
        self._mode = "idle"

    def trigger_protective_stop(self, reason: str = "triggered") -> None:
        """Put the arm into protective stop (like ur_rtde's ``triggerProtectiveStop``)."""
        self._sync()
        self._protective_stop(reason)

    def unlock_protective_stop(self) -> None:
        """Clear a protective stop (like the dashboard's ``unlockProtectiveStop``)."""
        self._sync()
        self._pstop_reason = ""

    def _measure(self) -> tuple[np.ndarray, np.ndarray]:
        self._sync()
        if self._measured is None:
            q = self.q + self._rng.normal(0.0, self._noise, 6) if self._noise > 0 else self.q.copy()
            self._measured = (q, self.kin.fk(q))
        return self._measured

    # -- RobotDriver ---------------------------------------------------------------------------------------
    def connect(self) -> None:
        self._sync()
        self._script_running = True

    def disconnect(self) -> None:
        self._script_running = False

    def servo_l(
        self, pose: Sequence[float], speed: float, accel: float, dt: float, lookahead_time: float, gain: float
    ) -> bool:
        target = self._accepted(pose, "servoL")
        if target is None:
            return False
        reference = self._q_target if self._mode == "servo" else self.q
        q_cmd = self.kin.ik(target, reference)
        if q_cmd is None:
            self._protective_stop(f"servoL target {target.round(4).tolist()} has no IK solution within the joint limits")
            return False
        return self._servo_to(q_cmd, target, lookahead_time, gain, "servoL")

    def servo_j(
        self, q: Sequence[float], speed: float, accel: float, dt: float, lookahead_time: float, gain: float
    ) -> bool:
        """One servoJ setpoint (joint positions, rad); False if refused (the arm may have protective-stopped)."""
        q_cmd = self._accepted(q, "servoJ")
        if q_cmd is None:
            return False
        if not self.kin.within_limits(q_cmd):
            self._protective_stop(f"servoJ target {q_cmd.round(4).tolist()} is outside the joint limits")
            return False
        return self._servo_to(q_cmd, self.kin.fk(q_cmd), lookahead_time, gain, "servoJ")

    def _accepted(self, values: Sequence[float], what: str) -> np.ndarray | None:
        """``values`` as a 6-vector if the arm takes commands now and it is finite (else protective stop)."""
        self._sync()
        if self._pstop_reason or not self._script_running:
            return None
        target = np.array(values, dtype=np.float64)
        if target.shape != (6,) or not np.all(np.isfinite(target)):
            self._protective_stop(f"{what} target is not a finite 6-vector: {target}")
            return None
        return target

    def _servo_to(self, q_cmd: np.ndarray, pose: np.ndarray, lookahead_time: float, gain: float, what: str) -> bool:
        jump = float(np.max(np.abs(q_cmd - self.q)))
        if jump > self.config.sim.max_tracking_error:
            self._protective_stop(f"{what} target is {jump:.3f} rad from the actual joints (joint speed limit)")
            return False
        self._mode = "servo"
        self._q_target = q_cmd
        self._q_target_list = q_cmd.tolist()
        self._target_pose = pose
        self._tau = max(lookahead_time * _REFERENCE_GAIN / gain, 2.0 * self._h)
        return True

    def speed_j(self, qd: Sequence[float], accel: float) -> bool:
        """Make the joint velocities follow ``qd`` (rad/s, capped by the joint speed limits), changing at
        ``accel`` rad/s^2 at most (and the joint acceleration limits); all joints arrive together."""
        target = self._accepted(qd, "speedJ")
        if target is None:
            return False
        if not (math.isfinite(accel) and accel > 0):
            self._protective_stop(f"speedJ acceleration {accel} is not finite and positive")
            return False
        target = np.clip(target, -self._vmax, self._vmax)
        change = np.abs(target - self.qd)
        t_change = max(float(np.max(change)) / accel, float(np.max(change / self._amax)), self._h)
        self._mode = "speed"
        self._qd_target_list = target.tolist()
        self._speed_accel_list = (change / t_change + 1e-9).tolist()
        self._target_pose = None
        return True

    def servo_stop(self, decel: float) -> None:
        self._sync()
        self._begin_stop(decel)

    def stop_l(self, decel: float) -> None:
        self._sync()
        self._begin_stop(decel)

    def stop_j(self, decel: float) -> None:
        """Decelerate to rest with the fastest joint slowing at ``decel`` rad/s^2 (all joints together)."""
        self._sync()
        self._begin_stop(decel, joint_space=True)

    def _begin_stop(self, decel: float, joint_space: bool = False) -> None:
        if decel <= 0:
            raise ValueError(f"deceleration must be positive, got {decel}")
        # Decelerate all joints proportionally so the tool stops along its path in |v| / decel seconds
        # (stopJ: the fastest joint in |qd| / decel).
        if joint_space:
            t_stop = max(float(np.max(np.abs(self.qd))) / decel, self._h)
        else:
            v_tool = float(np.linalg.norm(self.kin.tcp_speed(self.q, self.qd)[:3]))
            t_stop = max(v_tool / decel, self._h)
        self._stop_decel = np.minimum(np.abs(self.qd) / t_stop, self._amax) + 1e-9
        self._mode = "stopping" if np.any(self.qd) else "idle"
        self._target_pose = None

    def stop_script(self) -> None:
        self._sync()
        self._begin_stop(float(np.max(self._amax)))
        self._script_running = False

    def get_actual_tcp_pose(self) -> np.ndarray:
        return self._measure()[1].copy()

    def get_actual_q(self) -> np.ndarray:
        return self._measure()[0].copy()

    def get_actual_qd(self) -> np.ndarray:
        self._sync()
        return self.qd.copy()

    def get_actual_tcp_speed(self) -> np.ndarray:
        self._sync()
        return self.kin.tcp_speed(self.q, self.qd)

    def get_target_q(self) -> np.ndarray:
        """The commanded joint positions: the servo target while servoing, else the actual joints."""
        self._sync()
        return self._q_target.copy() if self._mode == "servo" else self.q.copy()

    def get_target_qd(self) -> np.ndarray:
        """The commanded joint velocities: the speed target in speed mode, else the actual velocities."""
        self._sync()
        return np.array(self._qd_target_list) if self._mode == "speed" else self.qd.copy()

    def get_target_tcp_pose(self) -> np.ndarray:
        if self._target_pose is None:
            return self.get_actual_tcp_pose()
        self._sync()
        return self._target_pose.copy()

    def get_timestamp(self) -> float:
        self._sync()
        return self.time

    def is_protective_stopped(self) -> bool:
        self._sync()
        return bool(self._pstop_reason)

    @property
    def protective_stop_reason(self) -> str:
        return self._pstop_reason
