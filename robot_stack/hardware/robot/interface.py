"""``RobotDriver``: the small interface the controller uses, implemented by the real RTDE driver and the sim twin.

Method names follow ur_rtde's ``RTDEControlInterface``/``RTDEReceiveInterface`` in snake_case, with the same
units: poses ``[x, y, z, rx, ry, rz]`` in the base frame (m, rotation vector), joints in rad, speeds in
m/s / rad/s, decelerations in m/s^2. Loop pacing is not part of the driver: the controller paces itself on
a ``Clock`` (see ``clock.py``), which is equivalent to ur_rtde's ``initPeriod``/``waitPeriod`` and lets the
simulation run faster than real time.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np


class RobotError(RuntimeError):
    """The arm cannot be driven; the message says what to check."""


class RobotConnectionError(RobotError):
    """The robot controller is unreachable or refused the connection."""


class ProtectiveStopError(RobotError):
    """The robot is (or went) into protective or emergency stop."""


class RemoteControlError(RobotError):
    """An e-series robot is in local mode: ur_rtde needs Remote Control enabled on the pendant."""


class RobotDriver(abc.ABC):
    """Connection to one UR arm (real or simulated). Not thread-safe; one owner process."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection (and start the control script); raise a ``RobotError`` subclass on failure."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Close the connection (idempotent)."""

    @abc.abstractmethod
    def servo_l(
        self, pose: Sequence[float], speed: float, accel: float, dt: float, lookahead_time: float, gain: float
    ) -> bool:
        """Servo the TCP toward ``pose`` (one servoL command, valid for ``dt`` s); False if not accepted."""

    @abc.abstractmethod
    def servo_stop(self, decel: float) -> None:
        """Leave servo mode, decelerating the tool at ``decel`` m/s^2."""

    @abc.abstractmethod
    def stop_l(self, decel: float) -> None:
        """Decelerate the tool to rest at ``decel`` m/s^2 (linear in tool space)."""

    @abc.abstractmethod
    def stop_script(self) -> None:
        """Terminate the control script on the robot controller."""

    @abc.abstractmethod
    def get_actual_tcp_pose(self) -> np.ndarray:
        """Measured TCP pose (6,)."""

    @abc.abstractmethod
    def get_actual_q(self) -> np.ndarray:
        """Measured joint positions (6,) in rad."""

    @abc.abstractmethod
    def get_actual_qd(self) -> np.ndarray:
        """Measured joint velocities (6,) in rad/s."""

    @abc.abstractmethod
    def get_actual_tcp_speed(self) -> np.ndarray:
        """Measured TCP twist (6,): linear m/s, angular rad/s, base frame."""

    @abc.abstractmethod
    def get_target_tcp_pose(self) -> np.ndarray:
        """The robot controller's current target TCP pose (6,)."""

    @abc.abstractmethod
    def get_timestamp(self) -> float:
        """Robot controller time in seconds (since the controller started)."""

    @abc.abstractmethod
    def is_protective_stopped(self) -> bool:
        """True while the robot is in protective stop (or emergency stop)."""

    def get_measured_pose(self) -> tuple[np.ndarray, float]:
        """The measured TCP pose and the robot time it was measured at, from the same state update."""
        return self.get_actual_tcp_pose(), self.get_timestamp()

    def kick_watchdog(self) -> None:
        """Tell the robot the controller is alive in a cycle that sends no motion command (drivers with an
        arm-side watchdog; every command feeds it too). A no-op where there is none."""

    @property
    def protective_stop_reason(self) -> str:
        """Why the robot stopped, when the driver knows (the simulation does); else empty."""
        return ""

    def __enter__(self) -> "RobotDriver":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
