"""``RobotiqURCapGripper``: Robotiq 2F-85 / 2F-140 through the Robotiq URCap's socket on the UR controller.

With the Robotiq Grippers URCap installed, the UR controller serves the gripper on TCP port 63352 with an
ASCII protocol: ``SET <VAR> <value> [<VAR> <value> ...]\\n`` answers ``ack``; ``GET <VAR>\\n`` answers
``<VAR> <value>``. The variables used here are the gripper's registers: ACT (activate), GTO (go to the
requested position), POS (requested position on SET, measured on GET; 0 = open, 255 = closed), SPE and FOR
(speed and force, 0-255), OBJ (object detection), STA (activation status) and FLT (fault code). This driver
keeps one connection open and asks one question at a time.
"""

from __future__ import annotations

import re
import socket
import time

from robot_stack.hardware.gripper.config import GripperConfig, ModelSpec
from robot_stack.hardware.gripper.interface import (
    GripperConnectionError,
    GripperError,
    GripperFaultError,
    GripperNotActivatedError,
    GripperState,
)
from robot_stack.hardware.gripper.socket_gripper import SocketGripper

REGISTER_MAX = 255
STA_RESET, STA_ACTIVATING, STA_ACTIVATED = 0, 1, 3
OBJ_MOVING, OBJ_CONTACT_OPENING, OBJ_CONTACT_CLOSING, OBJ_AT_TARGET = 0, 1, 2, 3

# gFLT codes, in the words of the 2F-85/140 instruction manual (register gFLT).
FAULTS: dict[int, str] = {
    0x05: "action delayed: the activation must complete before the action",
    0x07: "the activation bit must be set before the action",
    0x08: "maximum operating temperature exceeded (let the gripper cool down)",
    0x09: "no communication with the gripper for at least 1 s",
    0x0A: "under the minimum operating voltage",
    0x0B: "automatic release in progress",
    0x0C: "internal processor fault",
    0x0D: "activation fault: check that nothing obstructs the fingers",
    0x0E: "overcurrent triggered",
    0x0F: "automatic release completed",
}


def fault_words(code: int) -> str:
    """What a gFLT code means ("" for 0)."""
    if code == 0:
        return ""
    return FAULTS.get(code, f"unknown fault code 0x{code:02X}")


def width_to_position(width: float, spec: ModelSpec) -> int:
    """Finger width (m) -> POS register (0 = fully open, 255 = closed), linear over the stroke."""
    fraction = 1.0 - min(max(width / spec.stroke, 0.0), 1.0)
    return round(fraction * REGISTER_MAX)


def position_to_width(position: int, spec: ModelSpec) -> float:
    """POS register -> finger width (m)."""
    return (1.0 - min(max(position, 0), REGISTER_MAX) / REGISTER_MAX) * spec.stroke


def to_register(value: float, lo: float, hi: float) -> int:
    """A speed or force within the model's [lo, hi] -> its 0-255 register, linear, clamped."""
    return round(min(max((value - lo) / (hi - lo), 0.0), 1.0) * REGISTER_MAX)


def from_register(register: int, lo: float, hi: float) -> float:
    """The inverse of ``to_register``."""
    return lo + min(max(register, 0), REGISTER_MAX) / REGISTER_MAX * (hi - lo)


_GET_REPLY = re.compile(rb"^([A-Z]{3}) (-?\d+)$")


class RobotiqURCapGripper(SocketGripper):
    """The real driver. ``config.host`` is the UR controller; the URCap must be installed and the gripper
    connected to the robot (wrist or USB adapter)."""

    device = "Robotiq URCap socket"
    unreachable_hint = ("is the robot on, the Robotiq Grippers URCap installed and the gripper connected?")

    def __init__(self, config: GripperConfig):
        super().__init__(config)
        self._last: tuple[float, float] | None = None  # (time, width) of the previous reading

    def _probe(self) -> None:
        self._get("STA")  # a URCap that is not serving the gripper does not answer

    def activate(self, timeout: float = 5.0) -> None:
        if self._get("FLT"):  # a fault is cleared by a reset (ACT 0) before activating again
            self._set(ACT=0)
        elif self._get("STA") == STA_ACTIVATED:
            return
        self._set(ACT=1)
        deadline = time.monotonic() + timeout
        while True:
            status, fault = self._get("STA"), self._get("FLT")
            if status == STA_ACTIVATED:
                return
            if fault and fault != 0x05:  # 0x05 only says activation is still running
                raise GripperFaultError(f"gripper activation failed: {fault_words(fault)} (fault 0x{fault:02X})")
            if time.monotonic() > deadline:
                raise GripperError(f"gripper not activated after {timeout:g} s (status {status}); check its cable and "
                                   "the URCap's gripper dashboard on the pendant")
            time.sleep(0.05)

    def move(self, width: float, speed: float, force: float) -> None:
        status, fault = self._get("STA"), self._get("FLT")
        if fault:
            raise GripperFaultError(f"gripper fault: {fault_words(fault)} (fault 0x{fault:02X})")
        if status != STA_ACTIVATED:
            raise GripperNotActivatedError("the gripper is not activated: call activate() (the rig does at start)")
        speed = min(speed, self.config.speed_limit)
        force = min(force, self.config.force_limit)
        self._set(POS=width_to_position(width, self.spec), SPE=to_register(speed, *self.spec.speed_range),
                  FOR=to_register(force, *self.spec.force_range), GTO=1)

    def stop(self) -> None:
        self._set(GTO=0)

    def get_state(self) -> GripperState:
        now = time.monotonic()
        width = position_to_width(self._get("POS"), self.spec)
        obj, status, fault = self._get("OBJ"), self._get("STA"), self._get("FLT")
        # The URCap exposes no velocity: difference consecutive readings.
        velocity = 0.0
        if self._last is not None and now > self._last[0]:
            velocity = (width - self._last[1]) / (now - self._last[0])
        self._last = (now, width)
        return GripperState(width=width, velocity=velocity,
                            object_detected=obj in (OBJ_CONTACT_OPENING, OBJ_CONTACT_CLOSING),
                            activated=status == STA_ACTIVATED, fault=fault_words(fault))

    def _set(self, **registers: int) -> None:
        line = "SET " + " ".join(f"{name} {int(value)}" for name, value in registers.items())
        reply = self._ask(line, lambda buf: buf.strip() == b"ack" or b"\n" in buf)
        if reply != b"ack":
            raise GripperError(f"{self._where} refused {line!r}: answered {reply!r}")

    def _get(self, name: str) -> int:
        reply = self._ask(f"GET {name}", lambda buf: bool(_GET_REPLY.match(buf.strip())) or b"\n" in buf)
        match = _GET_REPLY.match(reply)
        if match is None or match.group(1).decode() != name:
            raise GripperError(f"{self._where} answered {reply!r} to 'GET {name}'")
        return int(match.group(2))

    def _ask(self, line: str, complete) -> bytes:
        if self._sock is None:
            raise GripperConnectionError(f"{self._where}: not connected (call connect())")
        try:
            self._sock.sendall(line.encode("ascii") + b"\n")
            buf = b""
            # The URCap answers each request with one short message, "ack" without a line end: a reply
            # is complete once it parses (or a line end arrives).
            while not complete(buf):
                chunk = self._sock.recv(1024)
                if not chunk:
                    raise ConnectionResetError("connection closed by the robot")
                buf += chunk
        except (OSError, socket.timeout) as exc:
            self.disconnect()
            raise GripperConnectionError(f"{self._where} stopped answering ({exc}); the gripper is not under "
                                         "control") from None
        return buf.strip()
