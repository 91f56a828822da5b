"""The RTDE variables the loopback controller serves, with their RTDE types (names as in the RTDE guide).

Only variables the loopback can give a value for are listed; asking for any other one gets ``NOT_FOUND``,
exactly as a controller answers for a variable its software version lacks. General-purpose registers are
described by ``Register`` rather than listed one by one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

N_REGISTERS = 48  # int and double registers 0..47 (0..23 lower range, 24..47 upper range)
BIT_REGISTERS = range(64, 128)  # single-bit registers; bits 0..63 come as the two UINT32 words below

OUTPUT_TYPES: dict[str, str] = {
    "timestamp": "DOUBLE",
    "target_q": "VECTOR6D",
    "target_qd": "VECTOR6D",
    "target_qdd": "VECTOR6D",
    "target_current": "VECTOR6D",
    "target_moment": "VECTOR6D",
    "actual_q": "VECTOR6D",
    "actual_qd": "VECTOR6D",
    "actual_current": "VECTOR6D",
    "actual_current_as_torque": "VECTOR6D",  # PolyScope 5.23+; ur_rtde's receive interface asks for it there
    "joint_control_output": "VECTOR6D",
    "actual_TCP_pose": "VECTOR6D",
    "actual_TCP_speed": "VECTOR6D",
    "actual_TCP_force": "VECTOR6D",
    "ft_raw_wrench": "VECTOR6D",
    "target_TCP_pose": "VECTOR6D",
    "target_TCP_speed": "VECTOR6D",
    "actual_digital_input_bits": "UINT64",
    "joint_temperatures": "VECTOR6D",
    "actual_execution_time": "DOUBLE",
    "robot_mode": "INT32",
    "joint_mode": "VECTOR6INT32",
    "safety_mode": "INT32",
    "safety_status": "INT32",
    "actual_tool_accelerometer": "VECTOR3D",
    "speed_scaling": "DOUBLE",
    "target_speed_fraction": "DOUBLE",
    "actual_momentum": "DOUBLE",
    "actual_main_voltage": "DOUBLE",
    "actual_robot_voltage": "DOUBLE",
    "actual_robot_current": "DOUBLE",
    "actual_joint_voltage": "VECTOR6D",
    "actual_digital_output_bits": "UINT64",
    "runtime_state": "UINT32",
    "robot_status_bits": "UINT32",
    "safety_status_bits": "UINT32",
    "standard_analog_input0": "DOUBLE",
    "standard_analog_input1": "DOUBLE",
    "standard_analog_output0": "DOUBLE",
    "standard_analog_output1": "DOUBLE",
    "payload": "DOUBLE",
    "payload_cog": "VECTOR3D",
    "payload_inertia": "VECTOR6D",
    "output_bit_registers0_to_31": "UINT32",
    "output_bit_registers32_to_63": "UINT32",
    "input_bit_registers0_to_31": "UINT32",
    "input_bit_registers32_to_63": "UINT32",
}

# Inputs a client may write. Registers aside, they drive the loopback's I/O image (digital/analog outputs,
# speed slider), which the outputs above report back; external_force_torque is accepted and ignored.
INPUT_TYPES: dict[str, str] = {
    "speed_slider_mask": "UINT32",
    "speed_slider_fraction": "DOUBLE",
    "standard_digital_output_mask": "UINT8",
    "standard_digital_output": "UINT8",
    "configurable_digital_output_mask": "UINT8",
    "configurable_digital_output": "UINT8",
    "tool_digital_output_mask": "UINT8",
    "tool_digital_output": "UINT8",
    "standard_analog_output_mask": "UINT8",
    "standard_analog_output_type": "UINT8",
    "standard_analog_output_0": "DOUBLE",
    "standard_analog_output_1": "DOUBLE",
    "input_bit_registers0_to_31": "UINT32",
    "input_bit_registers32_to_63": "UINT32",
    "external_force_torque": "VECTOR6D",
}

_REGISTER = re.compile(r"^(input|output)_(int|double|bit)_register_(\d{1,3})$")
_REGISTER_TYPES = {"int": "INT32", "double": "DOUBLE", "bit": "BOOL"}


@dataclass(frozen=True)
class Register:
    """A general-purpose register named ``<direction>_<kind>_register_<index>``."""

    direction: str  # "input" (written by clients) or "output" (written by the robot program)
    kind: str  # "int", "double" or "bit"
    index: int

    @property
    def rtde_type(self) -> str:
        return _REGISTER_TYPES[self.kind]


def parse_register(name: str) -> Register | None:
    """The register ``name`` denotes, or None if it is not a valid register name."""
    m = _REGISTER.match(name)
    if m is None:
        return None
    reg = Register(m.group(1), m.group(2), int(m.group(3)))
    valid = reg.index in BIT_REGISTERS if reg.kind == "bit" else reg.index < N_REGISTERS
    return reg if valid else None


def output_type(name: str) -> str | None:
    """RTDE type of output variable ``name`` (registers of both directions are readable), else None."""
    if name in OUTPUT_TYPES:
        return OUTPUT_TYPES[name]
    reg = parse_register(name)
    return reg.rtde_type if reg is not None else None


def input_type(name: str) -> str | None:
    """RTDE type of input variable ``name`` (only input registers are writable), else None."""
    if name in INPUT_TYPES:
        return INPUT_TYPES[name]
    reg = parse_register(name)
    return reg.rtde_type if reg is not None and reg.direction == "input" else None
