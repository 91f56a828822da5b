"""``Registers``: the controller's general-purpose RTDE registers (int, double and bit; input and output)."""

from __future__ import annotations

import math
import time
from typing import Any

from robot_stack.hardware.robot.rtde_loopback.variables import N_REGISTERS, Register

_MASK32 = 0xFFFFFFFF


class Registers:
    """Register values; input registers are written by RTDE clients, output registers by the program."""

    def __init__(self) -> None:
        self.input_int = [0] * N_REGISTERS
        self.input_double = [0.0] * N_REGISTERS
        self.output_int = [0] * N_REGISTERS
        self.output_double = [0.0] * N_REGISTERS
        self.input_bits = 0  # bit i = bit register i (0..127)
        self.output_bits = 0
        # time.monotonic() of the last client write of each input int register (for the RTDE watchdog)
        self.input_int_written_at = [-math.inf] * N_REGISTERS

    def read(self, reg: Register) -> Any:
        """Current value of ``reg``."""
        if reg.kind == "bit":
            bits = self.input_bits if reg.direction == "input" else self.output_bits
            return bool((bits >> reg.index) & 1)
        values = getattr(self, f"{reg.direction}_{reg.kind}")
        return values[reg.index]

    def write_input(self, reg: Register, value: Any) -> None:
        """Store a client's write to input register ``reg``."""
        if reg.kind == "bit":
            mask = 1 << reg.index
            self.input_bits = (self.input_bits | mask) if value else (self.input_bits & ~mask)
        elif reg.kind == "int":
            self.input_int[reg.index] = int(value)
            self.input_int_written_at[reg.index] = time.monotonic()
        else:
            self.input_double[reg.index] = float(value)

    def bit_word(self, direction: str, word: int) -> int:
        """Bits ``32*word .. 32*word+31`` of the input or output bit registers, as a UINT32."""
        bits = self.input_bits if direction == "input" else self.output_bits
        return (bits >> (32 * word)) & _MASK32

    def write_input_bit_word(self, word: int, value: int) -> None:
        """Store a client's write of input bit registers ``32*word .. 32*word+31``."""
        shift = 32 * word
        self.input_bits = (self.input_bits & ~(_MASK32 << shift)) | ((int(value) & _MASK32) << shift)
