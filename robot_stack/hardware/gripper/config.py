"""``GripperConfig``: the ``gripper:`` section of a rig YAML, validated at load time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

from robot_stack.config import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """A gripper model's mechanical ranges (from the maker's spec sheet)."""

    stroke: float  # m, fully open width
    speed_range: tuple[float, float]  # m/s, slowest..fastest finger speed
    force_range: tuple[float, float]  # N, weakest..strongest grip


MODELS: dict[str, ModelSpec] = {
    "2f85": ModelSpec(0.085, (0.020, 0.150), (20.0, 235.0)),  # Robotiq 2F-85
    "2f140": ModelSpec(0.140, (0.030, 0.250), (10.0, 125.0)),  # Robotiq 2F-140
    "wsg50": ModelSpec(0.110, (0.005, 0.420), (5.0, 80.0)),  # Weiss WSG 50 (110 mm stroke)
}

# Which models each real driver drives, the first being its default; and its default TCP port.
DRIVER_MODELS: dict[str, tuple[str, ...]] = {"robotiq": ("2f85", "2f140"), "wsg": ("wsg50",),
                                             "sim": ("2f85", "2f140", "wsg50")}
DEFAULT_PORTS: dict[str, int] = {"robotiq": 63352, "wsg": 1000, "sim": 63352}


@dataclass(frozen=True)
class SimGripperConfig:
    """The simulated twins' world (ignored by the real driver)."""

    object_width: Optional[float] = None  # m; an object this wide sits between the fingers (None: no object)
    activation_time: float = 0.5  # s from ACT to activated

    def __post_init__(self) -> None:
        if self.object_width is not None and not (math.isfinite(self.object_width) and self.object_width > 0):
            raise ConfigError(f"gripper.sim.object_width must be a positive width in m, got {self.object_width}")
        if not 0.0 <= self.activation_time <= 10.0:
            raise ConfigError(f"gripper.sim.activation_time must be in [0, 10] s, got {self.activation_time}")


@dataclass(frozen=True)
class GripperConfig:
    """The ``gripper:`` section of a rig file (see hardware_configs/sim_ur5_gripper.yaml)."""

    driver: Literal["robotiq", "wsg", "sim"] = "sim"
    model: Optional[Literal["2f85", "2f140", "wsg50"]] = None  # default: the driver's first (2f85, wsg50)
    # robotiq: the UR controller's address (the URCap's socket runs on the robot); wsg: the gripper's own
    host: str = ""
    port: Optional[int] = None  # default: the URCap's 63352, the WSG's 1000
    speed: float = 0.1  # m/s, default finger speed of commands
    force: float = 50.0  # N, default grip force of commands
    max_speed: Optional[float] = None  # m/s; commands are clamped to it (default: the model's fastest)
    max_force: Optional[float] = None  # N; commands are clamped to it (default: the model's strongest)
    rate: float = 25.0  # Hz, the gripper process's loop (each Robotiq cycle is 4-5 socket round trips)
    connect_timeout: float = 2.0  # s, to reach the socket and for each reply
    activation_timeout: float = 5.0  # s
    sim: SimGripperConfig = field(default_factory=SimGripperConfig)

    def __post_init__(self) -> None:
        # frozen: the driver's defaults are filled in once, here, so every reader sees concrete values
        if self.model is None:
            object.__setattr__(self, "model", DRIVER_MODELS[self.driver][0])
        if self.port is None:
            object.__setattr__(self, "port", DEFAULT_PORTS[self.driver])
        if self.model not in DRIVER_MODELS[self.driver]:
            raise ConfigError(f"gripper.model {self.model!r} is not driven by driver {self.driver!r} "
                              f"(its models: {', '.join(DRIVER_MODELS[self.driver])})")
        spec = self.spec
        if self.driver == "robotiq" and not self.host:
            raise ConfigError("gripper.host is required for driver 'robotiq' (the robot's IP: the URCap serves the gripper)")
        if self.driver == "wsg" and not self.host:
            raise ConfigError("gripper.host is required for driver 'wsg' (the WSG's own IP address)")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"gripper.port must be a TCP port, got {self.port}")
        for name, value, (lo, hi) in (("max_speed", self.max_speed, spec.speed_range),
                                      ("max_force", self.max_force, spec.force_range)):
            if value is not None and not lo <= value <= hi:
                raise ConfigError(f"gripper.{name} must be within the {self.model}'s range [{lo:g}, {hi:g}], got {value}")
        if not 0 < self.speed <= self.speed_limit:
            raise ConfigError(f"gripper.speed must be in (0, {self.speed_limit:g}] m/s, got {self.speed}")
        if not 0 < self.force <= self.force_limit:
            raise ConfigError(f"gripper.force must be in (0, {self.force_limit:g}] N, got {self.force}")
        if self.sim.object_width is not None and self.sim.object_width >= spec.stroke:
            raise ConfigError(f"gripper.sim.object_width {self.sim.object_width} m does not fit in the "
                              f"{self.model}'s {spec.stroke} m stroke")
        if not 1.0 <= self.rate <= 200.0:
            raise ConfigError(f"gripper.rate must be in [1, 200] Hz, got {self.rate}")
        if not 0.05 <= self.connect_timeout <= 60:
            raise ConfigError(f"gripper.connect_timeout must be in [0.05, 60] s, got {self.connect_timeout}")
        if not 0.1 <= self.activation_timeout <= 60:
            raise ConfigError(f"gripper.activation_timeout must be in [0.1, 60] s, got {self.activation_timeout}")

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.model]

    @property
    def speed_limit(self) -> float:
        return self.max_speed if self.max_speed is not None else self.spec.speed_range[1]

    @property
    def force_limit(self) -> float:
        return self.max_force if self.max_force is not None else self.spec.force_range[1]
