"""``SimGripper``: the simulated gripper in-process, for the simulated rigs (the twin of any gripper driver).

It runs the same ``WidthModel`` as the URCap socket twin on a ``Clock`` (``hardware.robot.clock``), so it
advances in real time in the runtime and in simulated time in lockstep, and it refuses what the real
gripper refuses (motion before activation, motion while faulted).
"""

from __future__ import annotations

from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.interface import (
    Gripper,
    GripperConnectionError,
    GripperFaultError,
    GripperNotActivatedError,
    GripperState,
)
from robot_stack.hardware.gripper.robotiq import fault_words
from robot_stack.hardware.gripper.width_model import WidthModel
from robot_stack.hardware.robot.clock import Clock


class SimGripper(Gripper):
    """A simulated gripper of ``config.model``, advancing on ``clock`` (activation waits on it)."""

    def __init__(self, config: GripperConfig, clock: Clock):
        self.config = config
        self.model = WidthModel(config.spec, config.sim.object_width, config.sim.activation_time)
        self._clock = clock
        self._last: float | None = None

    @property
    def max_width(self) -> float:
        return self.config.spec.stroke

    def connect(self) -> None:
        self._last = self._clock.now()

    def disconnect(self) -> None:
        self._last = None

    def activate(self, timeout: float = 5.0) -> None:
        self._sync()
        self.model.activate()
        if self.model.activating:
            self._clock.wait_until(self._clock.now() + self.model.activation_time)
            self._sync()

    def move(self, width: float, speed: float, force: float) -> None:
        self._sync()
        if self.model.fault:
            raise GripperFaultError(f"gripper fault: {fault_words(self.model.fault)} (fault 0x{self.model.fault:02X})")
        if not self.model.activated:
            raise GripperNotActivatedError("the gripper is not activated: call activate() (the rig does at start)")
        self.model.command(width, min(speed, self.config.speed_limit), min(force, self.config.force_limit))

    def stop(self) -> None:
        self._sync()
        self.model.stop()

    def get_state(self) -> GripperState:
        self._sync()
        m = self.model
        return GripperState(width=m.width, velocity=m.velocity, object_detected=m.object_contact,
                            activated=m.activated, fault=fault_words(m.fault))

    def _sync(self) -> None:
        if self._last is None:
            raise GripperConnectionError("the simulated gripper is not connected (call connect())")
        t = self._clock.now()
        self.model.advance(t - self._last)
        self._last = t
