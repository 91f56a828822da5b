"""``RobotConfig``: the ``robot:`` section of a rig YAML, validated at load time.

Every limit the controller enforces comes from here (workspace box, speeds, joint limits, watchdog
timeout), so a bad value is caught when the rig file is loaded, with a message naming the key, rather than
when the arm is already moving.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.hardware.robot.kinematics import UR5Kinematics
from robot_stack.resources import rig_path

Vec3 = tuple[float, float, float]
Vec6 = tuple[float, float, float, float, float, float]

# ur_rtde's documented ranges for servoL.
LOOKAHEAD_RANGE = (0.03, 0.2)
GAIN_RANGE = (100.0, 2000.0)
RTDE_FREQUENCIES = (125.0, 500.0)  # CB3 runs RTDE at 125 Hz, e-series at 500 Hz
# Sanity ceilings, not the robot's physical limits: a config asking for more is almost surely a typo.
MAX_TCP_SPEED = 1.0  # m/s
MAX_TCP_ROT_SPEED = math.pi  # rad/s
UR5_MAX_PAYLOAD = 5.0  # kg
UR5_MAX_JOINT_SPEED = math.pi  # rad/s (180 deg/s on every UR5 joint)
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _finite(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite numbers, got {list(values)}")
    return arr


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned box (robot base frame, meters) the TCP position must stay in."""

    min: Vec3
    max: Vec3

    def __post_init__(self) -> None:
        lo, hi = _finite(self.min, "workspace.min"), _finite(self.max, "workspace.max")
        bad = [axis for axis, a, b in zip("xyz", lo, hi) if a >= b]
        if bad:
            raise ConfigError(f"workspace.min must be below workspace.max on every axis; not on {', '.join(bad)}")

    def contains(self, position: Any) -> bool:
        """True if the 3-vector ``position`` is inside the box (boundary included)."""
        p = np.asarray(position, dtype=np.float64)
        return bool(np.all(p >= np.asarray(self.min)) and np.all(p <= np.asarray(self.max)))


@dataclass(frozen=True)
class JointLimits:
    """Per-joint position limits in radians (the UR5 allows +-2*pi on every joint)."""

    min: Vec6 = (-2 * math.pi,) * 6
    max: Vec6 = (2 * math.pi,) * 6

    def __post_init__(self) -> None:
        lo, hi = _finite(self.min, "joint_limits.min"), _finite(self.max, "joint_limits.max")
        bad = [str(i) for i in range(6) if lo[i] >= hi[i]]
        if bad:
            raise ConfigError(f"joint_limits.min must be below joint_limits.max; not for joint(s) {', '.join(bad)}")
        if np.any(lo < -2 * math.pi - 1e-3) or np.any(hi > 2 * math.pi + 1e-3):
            raise ConfigError("joint_limits must lie within [-2*pi, 2*pi] (the UR5's mechanical range)")


@dataclass(frozen=True)
class SimArmConfig:
    """Parameters of the simulated UR5 (ignored by the real driver)."""

    max_joint_speed: Vec6 = (UR5_MAX_JOINT_SPEED,) * 6  # rad/s
    max_joint_accel: Vec6 = (10.0,) * 6  # rad/s^2
    physics_dt: float = 0.002  # s, integration step
    sensor_noise_std: float = 0.0  # rad, Gaussian noise on measured joint positions
    # A servo target this far (rad, any joint) from the actual joints trips a protective stop, as a
    # jump in the servo stream makes the real arm exceed its joint speed limit.
    max_tracking_error: float = 0.35

    def __post_init__(self) -> None:
        speed = _finite(self.max_joint_speed, "sim.max_joint_speed")
        accel = _finite(self.max_joint_accel, "sim.max_joint_accel")
        if np.any(speed <= 0) or np.any(speed > UR5_MAX_JOINT_SPEED + 1e-3):
            raise ConfigError(f"sim.max_joint_speed must be in (0, {UR5_MAX_JOINT_SPEED:.4f}] rad/s per joint")
        if np.any(accel <= 0):
            raise ConfigError("sim.max_joint_accel must be positive")
        if not 1e-4 <= self.physics_dt <= 0.01:
            raise ConfigError(f"sim.physics_dt must be in [0.0001, 0.01] s, got {self.physics_dt}")
        if not 0.0 <= self.sensor_noise_std <= 0.01:
            raise ConfigError(f"sim.sensor_noise_std must be in [0, 0.01] rad, got {self.sensor_noise_std}")
        if not 0.0 < self.max_tracking_error <= math.pi:
            raise ConfigError(f"sim.max_tracking_error must be in (0, pi] rad, got {self.max_tracking_error}")


@dataclass(frozen=True)
class RobotConfig:
    """The ``robot:`` section of a rig file (see hardware_configs/sim_ur5.yaml for an annotated example)."""

    workspace: Workspace
    home_joints: Vec6  # rad; the sim starts here, and its TCP must lie inside the workspace
    driver: Literal["sim", "rtde"] = "sim"
    robot_ip: str = ""
    frequency: float = 125.0  # Hz servo loop; RTDE: 125 (CB3) or 500 (e-series)
    lookahead_time: float = 0.1  # s, servoL smoothing
    gain: float = 300.0  # servoL proportional gain
    max_pos_speed: float = 0.25  # m/s, TCP translation limit enforced by the trajectory scheduler
    max_rot_speed: float = 0.6  # rad/s, TCP rotation limit
    joint_limits: JointLimits = field(default_factory=JointLimits)
    tcp_offset: Vec6 = (0.0,) * 6  # flange -> TCP pose, as set with setTcp
    command_timeout: float = 0.5  # s without commands while a trajectory is active -> decelerate and hold
    # RTDE: the robot itself stops the control program (and so the arm) when the controller process has not
    # written to it for this long (ur_rtde setWatchdog), e.g. because it was killed. Several servo periods.
    arm_watchdog_timeout: float = 0.1
    stop_deceleration: float = 1.0  # m/s^2 tool deceleration for servoStop/stopL
    payload_mass: float | None = None  # kg; None keeps the payload configured on the pendant
    payload_cog: Vec3 = (0.0, 0.0, 0.0)  # m, from the flange
    connect_timeout: float = 2.0  # s, per step of the dashboard/RTDE probe before ur_rtde connects
    sim: SimArmConfig = field(default_factory=SimArmConfig)

    def __post_init__(self) -> None:
        if self.driver == "rtde":
            self._check_rtde()
        elif not 1.0 <= self.frequency <= 1000.0:
            raise ConfigError(f"frequency must be in [1, 1000] Hz for the sim driver, got {self.frequency}")
        for name, value, (lo, hi) in (
            ("lookahead_time", self.lookahead_time, LOOKAHEAD_RANGE),
            ("gain", self.gain, GAIN_RANGE),
            ("max_pos_speed", self.max_pos_speed, (1e-6, MAX_TCP_SPEED)),
            ("max_rot_speed", self.max_rot_speed, (1e-6, MAX_TCP_ROT_SPEED)),
        ):
            if not lo <= value <= hi:
                raise ConfigError(f"{name} must be in [{lo:g}, {hi:g}], got {value}")
        if not 2.0 / self.frequency < self.command_timeout <= 10.0:
            raise ConfigError(
                f"command_timeout must be in ({2.0 / self.frequency:g}, 10] s (longer than two servo periods), "
                f"got {self.command_timeout}"
            )
        if not 3.0 / self.frequency <= self.arm_watchdog_timeout <= 1.0:
            raise ConfigError(
                f"arm_watchdog_timeout must be in [{3.0 / self.frequency:g}, 1] s (at least three servo periods), "
                f"got {self.arm_watchdog_timeout}"
            )
        if not self.stop_deceleration > 0:
            raise ConfigError(f"stop_deceleration must be positive, got {self.stop_deceleration}")
        if not 0.05 <= self.connect_timeout <= 60:
            raise ConfigError(f"connect_timeout must be in [0.05, 60] s, got {self.connect_timeout}")
        if self.payload_mass is not None and not 0.0 <= self.payload_mass <= UR5_MAX_PAYLOAD:
            raise ConfigError(f"payload_mass must be in [0, {UR5_MAX_PAYLOAD}] kg, got {self.payload_mass}")
        _finite(self.payload_cog, "payload_cog")
        tcp = _finite(self.tcp_offset, "tcp_offset")
        if np.linalg.norm(tcp[:3]) > 0.5:
            raise ConfigError(f"tcp_offset translation {tcp[:3].tolist()} is over 0.5 m; is it in meters?")
        self._check_home()

    def _check_rtde(self) -> None:
        if not self.robot_ip:
            raise ConfigError(
                "robot_ip is required for driver 'rtde' (the robot's IP, see the pendant's network settings)"
            )
        try:
            ipaddress.ip_address(self.robot_ip)
        except ValueError:
            if not _HOSTNAME.match(self.robot_ip):
                raise ConfigError(f"robot_ip {self.robot_ip!r} is neither an IP address nor a host name") from None
        if float(self.frequency) not in RTDE_FREQUENCIES:
            raise ConfigError(
                f"frequency must be 125 (CB3) or 500 (e-series) Hz for driver 'rtde', got {self.frequency}"
            )

    def _check_home(self) -> None:
        home = _finite(self.home_joints, "home_joints")
        if not self.kinematics().within_limits(home):
            raise ConfigError(f"home_joints {home.round(4).tolist()} are outside joint_limits")
        tcp = self.kinematics().fk(home)[:3]
        if not self.workspace.contains(tcp):
            raise ConfigError(
                f"the home pose's TCP position {tcp.round(4).tolist()} (FK of home_joints with tcp_offset) is "
                f"outside the workspace box min={list(self.workspace.min)} max={list(self.workspace.max)}"
            )

    @property
    def period(self) -> float:
        """Servo loop period in seconds."""
        return 1.0 / self.frequency

    def kinematics(self) -> UR5Kinematics:
        """UR5 kinematics with this rig's TCP offset and joint limits."""
        return UR5Kinematics(self.tcp_offset, (self.joint_limits.min, self.joint_limits.max))

    def replace(self, **changes: Any) -> "RobotConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def load_robot_config(source: str | Path | Mapping[str, Any]) -> RobotConfig:
    """Load a ``RobotConfig`` from a rig YAML path or shipped rig name, a rig mapping (with a ``robot:`` key)
    or the section itself."""
    if isinstance(source, (str, Path)):
        source = rig_path(source)
        data: Mapping[str, Any] = read_yaml(source)
        if "robot" not in data:
            raise ConfigError(f"{source}: no 'robot:' section")
        return load_dataclass(RobotConfig, data["robot"], where="robot")
    if not isinstance(source, Mapping):
        raise ConfigError(f"robot config: expected a path or a mapping, got {type(source).__name__}")
    section = source["robot"] if "robot" in source else source
    return load_dataclass(RobotConfig, section, where="robot")
