"""``GripperController``: the device process that owns a gripper, ``GripperLoop`` (its logic) and ``GripperClient``.

Like the arm, the gripper is commanded with timestamped waypoints (``schedule_waypoint(width, t)``: have
the fingers at ``width`` at runtime-clock time ``t``); the loop interpolates the width in time between
them at ``config.rate`` and sends the gripper a new target when it moved by more than the gripper resolves.
A waypoint whose time has already passed when it arrives is dropped and counted, never executed late; a
new waypoint replaces the plan after its time (as the arm's ``schedule_waypoint`` does). Non-finite or
out-of-stroke widths are rejected and counted. The process publishes one state record per cycle; a
gripper fault or a lost connection stops the process with the reason, so the supervisor stops the rig.

State ring buffer (``GRIPPER_STATE_SPEC``):

================  ========  ===================================================================
field             type      meaning
================  ========  ===================================================================
width             f8        measured finger opening (m)
velocity          f8        d(width)/dt (m/s)
commanded_width   f8        the interpolated target this cycle (m)
object_detected   bool      the fingers stopped on an object
activated         bool      the gripper is activated
timestamp         f8        runtime clock when the state was read
n_dropped         i8        cumulative waypoints dropped because their time had passed
n_rejected        i8        cumulative waypoints rejected (NaN/inf, outside [0, stroke])
================  ========  ===================================================================
"""

from __future__ import annotations

import bisect
import logging
import math
from typing import Any, Callable

import numpy as np

from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.interface import Gripper, GripperFaultError
from robot_stack.hardware.robot.clock import Clock, RuntimeClock
from robot_stack.runtime import DeviceProcess, SharedMemoryQueue, SharedMemoryRingBuffer, precise_wait

log = logging.getLogger(__name__)

GRIPPER_STATE_SPEC: dict[str, tuple[tuple[int, ...], Any]] = {
    "width": ((), np.float64),
    "velocity": ((), np.float64),
    "commanded_width": ((), np.float64),
    "object_detected": ((), np.bool_),
    "activated": ((), np.bool_),
    "timestamp": ((), np.float64),
    "n_dropped": ((), np.int64),
    "n_rejected": ((), np.int64),
}
CMD_SCHEDULE_WAYPOINT, CMD_STOP = 1, 2
GRIPPER_COMMAND_SPEC = {"kind": ((), np.int64), "width": ((), np.float64), "time": ((), np.float64)}

GripperFactory = Callable[[GripperConfig, Clock], Gripper]


def make_gripper(config: GripperConfig, clock: Clock) -> Gripper:
    """The gripper a config asks for: ``SimGripper`` on ``clock`` for ``sim``, the URCap driver for ``robotiq``,
    the WSG driver for ``wsg``."""
    if config.driver == "sim":
        from robot_stack.hardware.gripper.sim import SimGripper

        return SimGripper(config, clock)
    if config.driver == "wsg":
        from robot_stack.hardware.gripper.wsg import WSGGripper

        return WSGGripper(config)
    from robot_stack.hardware.gripper.robotiq import RobotiqURCapGripper

    return RobotiqURCapGripper(config)


class GripperLoop:
    """Time-interpolated width waypoints onto one ``Gripper`` (no process, no shared memory: testable)."""

    def __init__(self, gripper: Gripper, config: GripperConfig, clock: Clock):
        self.gripper = gripper
        self.config = config
        self.clock = clock
        # A new target is sent once the plan moved by more than the gripper resolves (a POS register step).
        self.deadband = config.spec.stroke / 255
        self._times: list[float] = []
        self._widths: list[float] = []
        self._origin: tuple[float, float] | None = None  # (time, width) the plan starts from
        self._sent: float | None = None
        self._measured = config.spec.stroke  # the last width read from the gripper
        self._stopped = False
        self.n_dropped = 0
        self.n_rejected = 0

    def start(self) -> dict[str, Any]:
        """Connect and activate the gripper; returns its first state record."""
        self.gripper.connect()
        self.gripper.activate(self.config.activation_timeout)
        return self.cycle()

    def schedule_waypoint(self, width: float, t: float) -> None:
        """Have the fingers at ``width`` at time ``t``; dropped if ``t`` has passed, rejected if invalid."""
        if not math.isfinite(width) or not math.isfinite(t) or not 0.0 <= width <= self.config.spec.stroke + 1e-9:
            self.n_rejected += 1
            log.warning("gripper waypoint rejected: width %r at %r (must be finite and in [0, %g] m)", width, t,
                        self.config.spec.stroke)
            return
        now = self.clock.now()
        if t < now:
            self.n_dropped += 1
            return
        start = self._plan(now)
        if start is None:
            start = self._measured
        keep = bisect.bisect_left(self._times, t)  # the new waypoint replaces the plan after its time
        if keep == 0:
            self._origin = (now, start)
        del self._times[keep:], self._widths[keep:]
        self._times.append(t)
        self._widths.append(width)
        self._stopped = False

    def stop(self) -> None:
        """Drop the plan and stop the fingers where they are."""
        self._times.clear()
        self._widths.clear()
        self._origin = None
        self._stopped = True
        self.gripper.stop()

    def cycle(self) -> dict[str, Any]:
        """Send the plan's width for now (if it moved) and read the gripper; returns the state record."""
        now = self.clock.now()
        target = self._plan(now)
        while len(self._times) > 1 and self._times[1] <= now:  # passed segments are not needed again
            self._origin = (self._times.pop(0), self._widths.pop(0))
        if target is not None and not self._stopped and (self._sent is None or abs(target - self._sent) > self.deadband):
            self.gripper.move(target, self.config.speed, self.config.force)
            self._sent = target
        state = self.gripper.get_state()
        self._measured = state.width
        if state.fault:
            raise GripperFaultError(f"gripper fault: {state.fault}")
        return {"width": state.width, "velocity": state.velocity,
                "commanded_width": target if target is not None else state.width,
                "object_detected": state.object_detected, "activated": state.activated,
                "timestamp": now, "n_dropped": self.n_dropped, "n_rejected": self.n_rejected}

    def _plan(self, t: float) -> float | None:
        """The planned width at ``t`` (the last sent one when there is no plan; None before any)."""
        if not self._times:
            return self._sent
        if self._origin is None or t >= self._times[-1]:
            return self._widths[-1] if t >= self._times[-1] else self._widths[0]
        times = [self._origin[0], *self._times]
        widths = [self._origin[1], *self._widths]
        return float(np.interp(t, times, widths))


class GripperClient:
    """Handle to a ``GripperController``'s command queue and state buffer; picklable, usable from any process."""

    def __init__(self, commands: SharedMemoryQueue, state: SharedMemoryRingBuffer, max_width: float):
        self.commands = commands
        self.state = state
        self.max_width = max_width  # m, fully open

    def schedule_waypoint(self, width: float, target_time: float) -> None:
        """Have the fingers at ``width`` m at runtime-clock time ``target_time``."""
        self.commands.put({"kind": CMD_SCHEDULE_WAYPOINT, "width": float(width), "time": float(target_time)})

    def stop_motion(self) -> None:
        """Stop the fingers where they are and drop the plan."""
        self.commands.put({"kind": CMD_STOP, "width": 0.0, "time": 0.0})

    def get_state(self) -> dict[str, np.ndarray]:
        """Latest state record; raises ``StaleDataError`` before the first cycle."""
        return self.state.get()


class GripperController(DeviceProcess):
    """Process owning the gripper: ``GripperLoop`` at ``config.rate``. ``gripper_factory`` must be a picklable
    top-level callable ``(config, clock) -> Gripper``; the default follows ``config.driver``."""

    def __init__(self, config: GripperConfig, name: str = "gripper", command_capacity: int = 256,
                 gripper_factory: GripperFactory = make_gripper):
        super().__init__(name=name)
        self.config = config
        self.period = 1.0 / config.rate
        self.gripper_factory = gripper_factory
        self.state = self.own(SharedMemoryRingBuffer.create(GRIPPER_STATE_SPEC, max(64, int(4 * config.rate))))
        self.commands = self.own(SharedMemoryQueue.create(GRIPPER_COMMAND_SPEC, command_capacity))
        self.client = GripperClient(self.commands, self.state, config.spec.stroke)
        self._loop: GripperLoop | None = None

    def setup(self) -> None:
        clock = RuntimeClock()
        self._loop = GripperLoop(self.gripper_factory(self.config, clock), self.config, clock)
        self.state.put(self._loop.start())
        self._next = clock.now() + self.period

    def step(self) -> None:
        loop = self._loop
        assert loop is not None
        batch = self.commands.get_all()
        for kind, width, t in zip(batch["kind"], batch["width"], batch["time"]):
            if kind == CMD_SCHEDULE_WAYPOINT:
                loop.schedule_waypoint(float(width), float(t))
            elif kind == CMD_STOP:
                loop.stop()
            else:
                loop.n_rejected += 1
        self.state.put(loop.cycle())
        precise_wait(self._next)
        self._next = max(self._next + self.period, loop.clock.now())  # after an overrun, do not burst

    def teardown(self) -> None:
        if self._loop is not None:
            try:
                self._loop.gripper.stop()
            finally:
                self._loop.gripper.disconnect()
