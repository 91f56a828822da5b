"""``LoopbackArm``: what the loopback controller needs from the simulated arm behind it.

``robot_stack.hardware.robot.sim_ur5.SimUR5`` implements it as is. The loopback controller owns time: it
calls ``step(period)`` once per control cycle, so the arm must not advance on its own clock. ``connect`` /
``stop_script`` bracket the life of the control program, as on the real driver interface.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from robot_stack.hardware.robot.kinematics import UR5Kinematics


@runtime_checkable
class LoopbackArm(Protocol):
    """A simulated UR arm driven one control cycle at a time (units as in ``RobotDriver``)."""

    kin: UR5Kinematics  # its kinematics (TCP offset and joint limits): FK/IK/limit queries are answered with it

    def step(self, dt: float) -> None:
        """Advance the arm by ``dt`` seconds of controller time."""
        ...

    def connect(self) -> None:
        """The control program started: servo commands are accepted from now on."""
        ...

    def stop_script(self) -> None:
        """The control program ended: decelerate to rest and refuse servo commands."""
        ...

    def servo_l(
        self, pose: Sequence[float], speed: float, accel: float, dt: float, lookahead_time: float, gain: float
    ) -> bool:
        """One servoL setpoint; False if refused (the arm may have protective-stopped)."""
        ...

    def servo_j(
        self, q: Sequence[float], speed: float, accel: float, dt: float, lookahead_time: float, gain: float
    ) -> bool:
        """One servoJ setpoint (joint positions); False if refused."""
        ...

    def speed_j(self, qd: Sequence[float], accel: float) -> bool:
        """Follow joint velocities ``qd``, changing at ``accel`` rad/s^2 at most; False if refused."""
        ...

    def stop_j(self, decel: float) -> None:
        """Decelerate the joints to rest at ``decel`` rad/s^2."""
        ...

    def servo_stop(self, decel: float) -> None:
        """Leave servo mode, decelerating at ``decel`` m/s^2."""
        ...

    def stop_l(self, decel: float) -> None:
        """Decelerate the tool to rest at ``decel`` m/s^2."""
        ...

    def get_actual_q(self) -> np.ndarray: ...

    def get_actual_qd(self) -> np.ndarray:
        """Joint velocities; exactly zero once the arm has come to rest."""
        ...

    def get_actual_tcp_pose(self) -> np.ndarray: ...

    def get_actual_tcp_speed(self) -> np.ndarray: ...

    def get_target_tcp_pose(self) -> np.ndarray: ...

    def get_target_q(self) -> np.ndarray:
        """The commanded joint positions (the actual ones when nothing is commanded)."""
        ...

    def get_target_qd(self) -> np.ndarray:
        """The commanded joint velocities (the actual ones when nothing is commanded)."""
        ...

    def get_timestamp(self) -> float:
        """Controller time in seconds since the arm started."""
        ...

    def is_protective_stopped(self) -> bool: ...

    def trigger_protective_stop(self, reason: str = "triggered") -> None: ...

    def unlock_protective_stop(self) -> None: ...
