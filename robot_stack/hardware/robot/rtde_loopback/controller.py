"""``LoopbackController``: the UR controller behind the loopback server, advanced one control cycle at a time.

Each ``tick()`` runs the emulated control program (``ControlScript``), steps the arm by one period and takes
a snapshot of every RTDE output variable, so all clients see the same consistent cycle. RTDE sessions write
client inputs with ``apply_inputs``; the dashboard and script servers start/stop the program and clear
protective stops. Everything that touches the arm holds ``lock``: the server calls in from several threads.

What is simulated: joint and TCP state (from the arm), its target pose and joints, protective stops, the
emergency stop and powering back on (robot mode POWER_OFF -> IDLE -> RUNNING through the dashboard's
"power on" and "brake release"), the control program's state and registers, the digital/analog output image and the speed slider fraction. Quantities
the arm model does not have (currents, torques, voltages, temperatures, forces, accelerometer) are reported
as the fixed nominal values in ``NOMINAL`` — clients that need them get plausible constants, not data.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from robot_stack.hardware.robot.rtde_loopback.arm import LoopbackArm
from robot_stack.hardware.robot.rtde_loopback.control_script import ControlScript
from robot_stack.hardware.robot.rtde_loopback.registers import Registers
from robot_stack.hardware.robot.rtde_loopback.variables import (
    OUTPUT_TYPES,
    input_type,
    parse_register,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControllerVersion:
    """URControl software version reported over RTDE; major 3 = CB3 (125 Hz), 5 = e-series (500 Hz)."""

    major: int
    minor: int
    bugfix: int
    build: int

    def __post_init__(self) -> None:
        if self.major not in (3, 5):
            raise ValueError(f"controller major version must be 3 (CB3) or 5 (e-series), got {self.major}")

    @property
    def frequency(self) -> float:
        """Control (and maximum RTDE output) frequency in Hz."""
        return 500.0 if self.major >= 5 else 125.0

    @property
    def text(self) -> str:
        return f"{self.major}.{self.minor}.{self.bugfix}.{self.build}"


CB3 = ControllerVersion(3, 15, 7, 106331)
# 5.23: ur_rtde 1.6 enables its newest calls (getJacobian) from this version on
E_SERIES = ControllerVersion(5, 23, 0, 12345)

# Enumerations of the RTDE guide.
ROBOT_MODE_POWER_OFF = 3
ROBOT_MODE_IDLE = 5
ROBOT_MODE_RUNNING = 7
ROBOT_MODE_NAMES = {ROBOT_MODE_POWER_OFF: "POWER_OFF", ROBOT_MODE_IDLE: "IDLE", ROBOT_MODE_RUNNING: "RUNNING"}
JOINT_MODE_RUNNING = 253
SAFETY_MODE_NORMAL = 1
SAFETY_MODE_PROTECTIVE_STOP = 3
SAFETY_MODE_ROBOT_EMERGENCY_STOP = 7
RUNTIME_STOPPED = 1
RUNTIME_PLAYING = 2
STATUS_POWER_ON = 1 << 0
STATUS_PROGRAM_RUNNING = 1 << 1
SAFETY_BIT_NORMAL = 1 << 0
SAFETY_BIT_PROTECTIVE_STOPPED = 1 << 2
SAFETY_BIT_ROBOT_EMERGENCY_STOPPED = 1 << 6
SAFETY_BIT_EMERGENCY_STOPPED = 1 << 7

# Outputs the arm model does not simulate: fixed nominal values (see module docstring).
NOMINAL: dict[str, Any] = {
    "target_qdd": (0.0,) * 6,
    "target_current": (0.0,) * 6,
    "target_moment": (0.0,) * 6,
    "actual_current": (0.0,) * 6,
    "actual_current_as_torque": (0.0,) * 6,
    "joint_control_output": (0.0,) * 6,
    "actual_TCP_force": (0.0,) * 6,
    "ft_raw_wrench": (0.0,) * 6,
    "actual_digital_input_bits": 0,
    "joint_temperatures": (25.0,) * 6,
    "actual_tool_accelerometer": (0.0, 0.0, 0.0),
    "actual_momentum": 0.0,
    "actual_main_voltage": 48.0,
    "actual_robot_voltage": 48.0,
    "actual_robot_current": 0.0,
    "actual_joint_voltage": (48.0,) * 6,
    "standard_analog_input0": 0.0,
    "standard_analog_input1": 0.0,
    "payload_inertia": (0.0,) * 6,
    "joint_mode": (JOINT_MODE_RUNNING,) * 6,
}

# Bit positions of each digital output group in actual_digital_output_bits.
_DIGITAL_GROUPS = {"standard": 0, "configurable": 8, "tool": 16}


class LoopbackController:
    """Arm + emulated control program + registers + I/O image, as one UR controller."""

    def __init__(
        self, arm: LoopbackArm, version: ControllerVersion = CB3, tcp_offset: Sequence[float] = (0.0,) * 6
    ):
        """``tcp_offset`` is the arm's flange-to-TCP pose (what its kinematics use), reported to clients."""
        if not isinstance(arm, LoopbackArm):
            raise TypeError(f"{type(arm).__name__} does not implement LoopbackArm (see rtde_loopback/arm.py)")
        self.arm = arm
        self.version = version
        self.period = 1.0 / version.frequency
        self.lock = threading.RLock()
        self.registers = Registers()
        self.script = ControlScript(arm, self.registers, self.period, tcp_offset)
        self.ticks = 0
        self._digital_outputs = 0
        self._analog_outputs = [0.0, 0.0]
        self._speed_fraction = 1.0
        self.robot_mode = ROBOT_MODE_RUNNING
        self.emergency_stopped = False  # the emergency stop is pressed
        self._input_owners: dict[str, object] = {}
        self._frame: dict[str, Any] = {}
        with self.lock:
            self._frame = self._snapshot(execution_time_ms=0.0)

    # -- control cycle -------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One control cycle: run the program, step the arm, snapshot the outputs."""
        with self.lock:
            started = time.perf_counter()
            self.script.tick()
            self.arm.step(self.period)
            self.ticks += 1
            self._frame = self._snapshot(execution_time_ms=(time.perf_counter() - started) * 1e3)

    @property
    def frame(self) -> dict[str, Any]:
        """The outputs of the last cycle (a fresh dict each cycle; do not modify)."""
        return self._frame

    def _snapshot(self, execution_time_ms: float) -> dict[str, Any]:
        arm = self.arm
        q = arm.get_actual_q().tolist()
        qd = arm.get_actual_qd().tolist()
        tcp_speed = arm.get_actual_tcp_speed().tolist()
        pstop = arm.is_protective_stopped()
        running = self.script.running
        if self.emergency_stopped:
            safety_mode = SAFETY_MODE_ROBOT_EMERGENCY_STOP
            safety_bits = SAFETY_BIT_ROBOT_EMERGENCY_STOPPED | SAFETY_BIT_EMERGENCY_STOPPED
        elif pstop:
            safety_mode, safety_bits = SAFETY_MODE_PROTECTIVE_STOP, SAFETY_BIT_PROTECTIVE_STOPPED
        else:
            safety_mode, safety_bits = SAFETY_MODE_NORMAL, SAFETY_BIT_NORMAL
        powered = STATUS_POWER_ON if self.robot_mode != ROBOT_MODE_POWER_OFF else 0
        regs = self.registers
        frame = dict(NOMINAL)
        frame.update(
            timestamp=float(arm.get_timestamp()),
            target_q=arm.get_target_q().tolist(),
            target_qd=arm.get_target_qd().tolist(),
            actual_q=q,
            actual_qd=qd,
            actual_TCP_pose=arm.get_actual_tcp_pose().tolist(),
            actual_TCP_speed=tcp_speed,
            target_TCP_pose=arm.get_target_tcp_pose().tolist(),
            target_TCP_speed=tcp_speed,
            actual_execution_time=execution_time_ms,
            safety_mode=safety_mode,
            safety_status=safety_mode,
            speed_scaling=1.0,  # the slider fraction is reported below but not applied to the arm
            target_speed_fraction=self._speed_fraction,
            actual_digital_output_bits=self._digital_outputs,
            runtime_state=RUNTIME_PLAYING if running else RUNTIME_STOPPED,
            robot_mode=self.robot_mode,
            robot_status_bits=powered | (STATUS_PROGRAM_RUNNING if running else 0),
            safety_status_bits=safety_bits,
            standard_analog_output0=self._analog_outputs[0],
            standard_analog_output1=self._analog_outputs[1],
            payload=self.script.payload_mass,
            payload_cog=self.script.payload_cog,
            output_bit_registers0_to_31=regs.bit_word("output", 0),
            output_bit_registers32_to_63=regs.bit_word("output", 1),
            input_bit_registers0_to_31=regs.bit_word("input", 0),
            input_bit_registers32_to_63=regs.bit_word("input", 1),
        )
        return frame

    # -- RTDE outputs and inputs ---------------------------------------------------------------------------
    def output_getter(self, name: str) -> Callable[[], Any] | None:
        """A function returning output ``name`` for the last cycle, or None if the variable does not exist."""
        if name in OUTPUT_TYPES:
            return lambda: self._frame[name]
        reg = parse_register(name)
        if reg is None:
            return None
        return lambda: self.registers.read(reg)

    def claim_inputs(self, owner: object, names: Sequence[str]) -> list[str]:
        """Reserve input variables for ``owner``; per name its RTDE type, ``NOT_FOUND`` or ``IN_USE``.

        Like the controller, one client at a time may write an input; nothing is reserved if any name fails.
        """
        with self.lock:
            types = []
            for name in names:
                rtde_type = input_type(name)
                holder = self._input_owners.get(name)
                if rtde_type is None:
                    types.append("NOT_FOUND")
                elif holder is not None and holder is not owner:
                    types.append("IN_USE")
                else:
                    types.append(rtde_type)
            if not any(t in ("NOT_FOUND", "IN_USE") for t in types):
                for name in names:
                    self._input_owners[name] = owner
            return types

    def release_inputs(self, owner: object) -> None:
        """Free every input variable reserved by ``owner`` (its connection closed)."""
        with self.lock:
            for name in [n for n, o in self._input_owners.items() if o is owner]:
                del self._input_owners[name]

    def apply_inputs(self, names: Sequence[str], values: Sequence[Any]) -> None:
        """Apply one DATA_PACKAGE of a client's input recipe."""
        data = dict(zip(names, values))
        with self.lock:
            for name, value in data.items():
                reg = parse_register(name)
                if reg is not None:
                    self.registers.write_input(reg, value)
                elif name == "input_bit_registers0_to_31":
                    self.registers.write_input_bit_word(0, value)
                elif name == "input_bit_registers32_to_63":
                    self.registers.write_input_bit_word(1, value)
            for group, shift in _DIGITAL_GROUPS.items():
                mask = data.get(f"{group}_digital_output_mask", 0) << shift
                value = data.get(f"{group}_digital_output", 0) << shift
                self._digital_outputs = (self._digital_outputs & ~mask) | (value & mask)
            analog_mask = data.get("standard_analog_output_mask", 0)
            for i in (0, 1):
                if analog_mask & (1 << i) and f"standard_analog_output_{i}" in data:
                    self._analog_outputs[i] = float(data[f"standard_analog_output_{i}"])
            if data.get("speed_slider_mask", 0) & 1 and "speed_slider_fraction" in data:
                self._speed_fraction = float(np.clip(data["speed_slider_fraction"], 0.0, 1.0))

    # -- program and safety (script port, dashboard) -------------------------------------------------------
    def load_program(self, source: str) -> bool:
        """Run a URScript program received on the script port; False if it cannot run (logged)."""
        with self.lock:
            if self.robot_mode != ROBOT_MODE_RUNNING:
                log.warning("rtde loopback: program not started: the robot is %s%s (power it on and release the "
                            "brakes from the dashboard)", ROBOT_MODE_NAMES[self.robot_mode],
                            ", emergency stop pressed" if self.emergency_stopped else "")
                return False
            return self.script.load(source)

    def emergency_stop(self) -> None:
        """The emergency stop is pressed: the program ends, the arm stops at once and is powered off."""
        with self.lock:
            self.emergency_stopped = True
            self.script.stop("emergency stop")
            self.arm.stop_script()
            self.robot_mode = ROBOT_MODE_POWER_OFF

    def release_emergency_stop(self) -> None:
        """The emergency stop is released; the arm stays powered off until ``power_on``."""
        with self.lock:
            self.emergency_stopped = False

    def power_on(self) -> bool:
        """The dashboard's "power on": POWER_OFF -> IDLE (refused while the emergency stop is pressed)."""
        with self.lock:
            if self.emergency_stopped:
                return False
            if self.robot_mode == ROBOT_MODE_POWER_OFF:
                self.robot_mode = ROBOT_MODE_IDLE
            return True

    def brake_release(self) -> bool:
        """The dashboard's "brake release": IDLE -> RUNNING."""
        with self.lock:
            if self.robot_mode == ROBOT_MODE_IDLE:
                self.robot_mode = ROBOT_MODE_RUNNING
            return self.robot_mode == ROBOT_MODE_RUNNING

    def stop_program(self, reason: str) -> None:
        with self.lock:
            self.script.stop(reason)

    @property
    def program_running(self) -> bool:
        return self.script.running

    def unlock_protective_stop(self) -> None:
        with self.lock:
            self.arm.unlock_protective_stop()

    def is_protective_stopped(self) -> bool:
        with self.lock:
            return self.arm.is_protective_stopped()
