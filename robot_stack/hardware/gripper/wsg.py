"""``WSGGripper``: the Weiss WSG 50 over its binary TCP command interface (the gripper's own Ethernet port).

Packets (little-endian): preamble ``AA AA AA``, a command id byte, a uint16 payload size, the payload, and a
CRC-16 over everything before it (CCITT polynomial, initial value 0xFFFF, the table applied LSB-first as the
WSG command set reference does; a frame with its checksum appended checks to 0). A reply repeats the command
id and starts its payload with a uint16 status code. Motion commands answer twice: ``E_CMD_PENDING`` at once,
then the outcome (``E_SUCCESS``, ``E_AXIS_BLOCKED`` when the fingers stopped on something,
``E_CMD_ABORTED`` after a stop) when the motion ends; this driver takes those outcomes as they come in
between its own questions.

Commands used: homing (0x20, the WSG's activation), pre-position (0x21: width, speed; absolute, clamping on
block, so closing onto an object squeezes it with the force limit), stop (0x22), acknowledge fast stop
(0x24), set force limit (0x32), system state (0x40), grasping state (0x41), opening width (0x43) and speed
(0x44). Widths go over the wire in mm and mm/s, as the protocol has them.
"""

from __future__ import annotations

import collections
import socket
import struct
import time

from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.interface import (
    GripperConnectionError,
    GripperError,
    GripperFaultError,
    GripperNotActivatedError,
    GripperState,
)
from robot_stack.hardware.gripper.socket_gripper import SocketGripper

PREAMBLE = b"\xaa\xaa\xaa"
HOMING, PREPOSITION, STOP, FAST_STOP, ACK_FAST_STOP = 0x20, 0x21, 0x22, 0x23, 0x24
SET_FORCE_LIMIT = 0x32
SYSTEM_STATE, GRASPING_STATE, OPENING_WIDTH, SPEED = 0x40, 0x41, 0x43, 0x44
MOTIONS = (HOMING, PREPOSITION)  # the commands that answer again when the motion ends

# Status codes of the command set reference, by value.
STATUS_NAMES = (
    "E_SUCCESS", "E_NOT_AVAILABLE", "E_NO_SENSOR", "E_NOT_INITIALIZED", "E_ALREADY_RUNNING",
    "E_FEATURE_NOT_SUPPORTED", "E_INCONSISTENT_DATA", "E_TIMEOUT", "E_READ_ERROR", "E_WRITE_ERROR",
    "E_INSUFFICIENT_RESOURCES", "E_CHECKSUM_ERROR", "E_NO_PARAM_EXPECTED", "E_NOT_ENOUGH_PARAMS",
    "E_CMD_UNKNOWN", "E_CMD_FORMAT_ERROR", "E_ACCESS_DENIED", "E_ALREADY_OPEN", "E_CMD_FAILED",
    "E_CMD_ABORTED", "E_INVALID_HANDLE", "E_NOT_FOUND", "E_NOT_OPEN", "E_IO_ERROR", "E_INVALID_PARAMETER",
    "E_INDEX_OUT_OF_BOUNDS", "E_CMD_PENDING", "E_OVERRUN", "E_RANGE_ERROR", "E_AXIS_BLOCKED", "E_FILE_EXISTS",
)
E_SUCCESS, E_NOT_INITIALIZED, E_CHECKSUM_ERROR = 0, 3, 11
E_NOT_ENOUGH_PARAMS, E_CMD_UNKNOWN, E_CMD_FORMAT_ERROR, E_ACCESS_DENIED = 13, 14, 15, 16
E_CMD_ABORTED, E_INVALID_PARAMETER, E_CMD_PENDING, E_RANGE_ERROR, E_AXIS_BLOCKED = 19, 24, 26, 28, 29

# System state flags (bit -> meaning); the fault ones in words.
SF_REFERENCED, SF_MOVING, SF_FAST_STOP = 1 << 0, 1 << 1, 1 << 12
FAULT_FLAGS: dict[int, str] = {
    1 << 12: "fast stop engaged (acknowledge it; activate() does)",
    1 << 14: "temperature fault: the gripper is too hot",
    1 << 15: "power fault: check the supply voltage",
    1 << 16: "overcurrent fault",
    1 << 17: "finger fault: check the fingers' connection",
    1 << 18: "command failure",
}
# Grasping states (0x41) that mean the fingers hold something.
GS_HOLDING = 4


def status_name(code: int) -> str:
    """``E_...`` for a status code."""
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else f"status {code}"


def fault_flags_words(flags: int) -> str:
    """The faults a system-state bit vector reports, in words ("" when none)."""
    return "; ".join(words for bit, words in FAULT_FLAGS.items() if flags & bit)


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """The WSG packet checksum of ``data`` (continuing from ``crc``)."""
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def encode_packet(command: int, payload: bytes = b"") -> bytes:
    """One packet: preamble, id, size, payload, checksum."""
    frame = PREAMBLE + struct.pack("<BH", command, len(payload)) + payload
    return frame + struct.pack("<H", crc16(frame))


class PacketReader:
    """Splits a byte stream into packets ``(command, payload, checksum_ok)``; bytes before a preamble are
    skipped, so a stream that starts mid-packet or carries garbage resynchronises (garbage that itself looks
    like a packet header is taken as one)."""

    MAX_PAYLOAD = 4096  # larger sizes are taken as garbage: the stream resynchronises on the next preamble

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes, bool]]:
        """Add received bytes; return the packets they complete."""
        self._buf += data
        packets = []
        while True:
            start = self._buf.find(PREAMBLE)
            if start < 0:
                self._buf = self._buf[-2:]  # a preamble may be split over two reads
                return packets
            # a run of more than three AA bytes: the packet starts at the last three (no command id is AA)
            while len(self._buf) > start + 3 and self._buf[start + 3] == 0xAA:
                start += 1
            self._buf = self._buf[start:]
            if len(self._buf) < 6:
                return packets
            command, size = struct.unpack_from("<BH", self._buf, 3)
            if size > self.MAX_PAYLOAD:
                self._buf = self._buf[1:]
                continue
            if len(self._buf) < 8 + size:
                return packets
            frame, self._buf = self._buf[: 8 + size], self._buf[8 + size:]
            packets.append((command, frame[6:6 + size], crc16(frame) == 0))


def _read_request() -> bytes:
    """The payload of a state read: no automatic updates (flags 0, period 0)."""
    return struct.pack("<BH", 0, 0)


class WSGGripper(SocketGripper):
    """The real driver for a WSG 50 (``config.host``: the gripper's IP; command interface on TCP, port 1000
    by default, chosen in its web interface)."""

    device = "WSG gripper"
    unreachable_hint = ("is it powered, on this network, and its command interface set to TCP on this port "
                        "(its web interface: Settings > Command Interface)?")

    def __init__(self, config: GripperConfig):
        super().__init__(config)
        self._reader = PacketReader()
        self._inbox: collections.deque[tuple[int, bytes, bool]] = collections.deque()
        self._force: float | None = None  # the force limit last set
        self._last_motion: int | None = None  # status of the last finished motion (E_AXIS_BLOCKED: an object)
        self._pending_motion: int | None = None  # the motion command whose outcome is still to come
        self._closing = False

    def _probe(self) -> None:
        self._system_state()  # something that is not a WSG does not answer in its protocol

    def _forget(self) -> None:
        self._reader = PacketReader()
        self._inbox.clear()
        self._pending_motion = None

    def activate(self, timeout: float = 5.0) -> None:
        flags = self._system_state()
        if flags & SF_FAST_STOP:
            self._command(ACK_FAST_STOP, b"ack")
            flags = self._system_state()
        faults = fault_flags_words(flags)
        if faults:
            raise GripperFaultError(f"gripper fault: {faults}")
        if not flags & SF_REFERENCED:
            self._finish_motion()
            status = self._command(HOMING, b"\x00")  # its default direction
            if status == E_CMD_PENDING:
                self._wait_motion(timeout, "homing")
            elif status != E_SUCCESS:
                raise GripperFaultError(f"{self._where}: homing refused: {status_name(status)}")
        self._set_force(self.config.force)

    def move(self, width: float, speed: float, force: float) -> None:
        flags = self._system_state()
        faults = fault_flags_words(flags)
        if faults:
            raise GripperFaultError(f"gripper fault: {faults}")
        if not flags & SF_REFERENCED:
            raise GripperNotActivatedError("the WSG is not homed: call activate() (the rig does at start)")
        self._set_force(force)
        speed = min(max(speed, self.spec.speed_range[0]), self.config.speed_limit)
        width = min(max(width, 0.0), self.spec.stroke)
        self._finish_motion()
        current = self._read_float(OPENING_WIDTH) / 1e3
        self._closing = width < current
        self._last_motion = None
        status = self._command(PREPOSITION, struct.pack("<Bff", 0, width * 1e3, speed * 1e3))
        if status not in (E_SUCCESS, E_CMD_PENDING):
            raise GripperError(f"{self._where} refused a move to {width * 1e3:.1f} mm: {status_name(status)}")

    def stop(self) -> None:
        self._command(STOP)

    def _finish_motion(self) -> None:
        """Stop the motion in flight, if any, and take its outcome: the standard command set runs one motion at
        a time, so a new target while moving is a stop and a new pre-position."""
        if self._pending_motion is not None:
            self._command(STOP)
            self._wait_motion(self.config.connect_timeout, "stopping")

    def get_state(self) -> GripperState:
        flags = self._system_state()
        width = self._read_float(OPENING_WIDTH) / 1e3
        speed = self._read_float(SPEED) / 1e3
        holding = self._reply(GRASPING_STATE, _read_request())[:1] == bytes([GS_HOLDING])
        blocked = self._last_motion == E_AXIS_BLOCKED and self._closing
        return GripperState(width=width, velocity=speed, object_detected=holding or blocked,
                            activated=bool(flags & SF_REFERENCED), fault=fault_flags_words(flags))

    # --- protocol -------------------------------------------------------------------------------------

    def _system_state(self) -> int:
        payload = self._reply(SYSTEM_STATE, _read_request())
        if len(payload) < 4:
            raise GripperError(f"{self._where} sent a short system state ({payload!r})")
        return struct.unpack_from("<I", payload)[0]

    def _read_float(self, command: int) -> float:
        payload = self._reply(command, _read_request())
        if len(payload) < 4:
            raise GripperError(f"{self._where} sent a short reply to command 0x{command:02X} ({payload!r})")
        return struct.unpack_from("<f", payload)[0]

    def _set_force(self, force: float) -> None:
        force = min(max(force, self.spec.force_range[0]), self.config.force_limit)
        if force != self._force:
            self._reply(SET_FORCE_LIMIT, struct.pack("<f", force))
            self._force = force

    def _reply(self, command: int, payload: bytes = b"") -> bytes:
        """Send ``command`` and return its reply's parameters; ``GripperError`` unless it succeeded."""
        status, params = self._exchange(command, payload)
        if status != E_SUCCESS:
            raise GripperError(f"{self._where} answered command 0x{command:02X} with {status_name(status)}")
        return params

    def _command(self, command: int, payload: bytes = b"") -> int:
        """Send ``command``; its status (a motion's: E_CMD_PENDING while it runs)."""
        return self._exchange(command, payload)[0]

    def _wait_motion(self, timeout: float, what: str) -> int:
        """Until the motion in flight ends; its outcome status."""
        deadline = time.monotonic() + timeout
        while self._pending_motion is not None:
            if time.monotonic() > deadline:
                raise GripperError(f"{self._where}: {what} did not finish within {timeout:g} s")
            self._exchange(SYSTEM_STATE, _read_request())  # the outcome arrives in between replies
            time.sleep(0.01)
        assert self._last_motion is not None
        if what == "homing" and self._last_motion != E_SUCCESS:
            raise GripperFaultError(f"{self._where}: homing failed: {status_name(self._last_motion)}")
        return self._last_motion

    def _exchange(self, command: int, payload: bytes) -> tuple[int, bytes]:
        """Send one packet and return (status, parameters) of its reply, taking the outcome of the motion in
        flight when it arrives first. Only one motion is ever in flight (``move`` stops the previous one), so
        a motion command's reply is never confused with the previous motion's outcome."""
        if self._sock is None:
            raise GripperConnectionError(f"{self._where}: not connected (call connect())")
        try:
            self._sock.sendall(encode_packet(command, payload))
            while True:
                if not self._inbox:
                    self._inbox.extend(self._reader.feed(self._recv()))
                while self._inbox:
                    got, body, ok = self._inbox.popleft()  # packets after the reply wait for the next exchange
                    if not ok:
                        raise GripperError(f"{self._where} sent a packet with a bad checksum")
                    if len(body) < 2:
                        raise GripperError(f"{self._where} sent a reply without a status code")
                    status = struct.unpack_from("<H", body)[0]
                    if got == self._pending_motion and status != E_CMD_PENDING:
                        self._last_motion, self._pending_motion = status, None  # the motion ended
                    elif got == command:
                        if command in MOTIONS and status == E_CMD_PENDING:
                            self._pending_motion = command
                        elif command in MOTIONS:
                            self._last_motion = status  # done at once (already there, or refused)
                        return status, body[2:]
        except (OSError, socket.timeout) as exc:
            self.disconnect()
            raise GripperConnectionError(f"{self._where} stopped answering ({exc}); the gripper is not under "
                                         "control") from None

    def _recv(self) -> bytes:
        assert self._sock is not None
        chunk = self._sock.recv(4096)
        if not chunk:
            raise ConnectionResetError("connection closed by the gripper")
        return chunk
