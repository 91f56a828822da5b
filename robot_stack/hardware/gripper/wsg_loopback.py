"""``WSGLoopback``: a WSG 50 command-interface twin on loopback, so the real ``WSGGripper`` runs in CI.

It speaks the binary protocol of ``wsg.py`` from a ``WidthModel`` advanced in real time. Homing (0x20) is the
model's activation: until it has finished, motion commands answer ``E_NOT_INITIALIZED``. Homing and
pre-position (0x21) answer ``E_CMD_PENDING`` and, when the fingers stop, send their outcome: ``E_SUCCESS``
at the target, ``E_AXIS_BLOCKED`` on an object, ``E_CMD_ABORTED`` after a stop (0x22); a pre-position
while one runs answers ``E_ALREADY_RUNNING``. Fast stop (0x23) latches until acknowledged with 0x24 and the
payload ``ack``, refusing motions with ``E_ACCESS_DENIED`` meanwhile. Reads (0x40 system state, 0x41
grasping state, 0x43 width, 0x44 speed, 0x45 force) answer at once. ``inject_fault(flag)`` raises a
system-state fault flag for tests.

What the real gripper answers to the unusual (a pre-position while one runs, motions before homing) is this
twin's reading of the reference manual's status codes; the driver does not depend on it beyond treating any
status but success as a refusal. Malformed input never stops the server: a bad checksum answers
``E_CHECKSUM_ERROR``, an unknown command ``E_CMD_UNKNOWN``, a wrong payload size ``E_CMD_FORMAT_ERROR``,
and bytes outside packets are skipped.

Serve a rig's gripper by hand: ``python -m robot_stack.hardware.gripper.wsg_loopback RIG [--port P]``.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import threading
import time

from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.loopback import LoopbackServer, serve_rig_gripper
from robot_stack.hardware.gripper.width_model import WidthModel
from robot_stack.hardware.gripper.wsg import (
    ACK_FAST_STOP,
    E_ACCESS_DENIED,
    E_AXIS_BLOCKED,
    E_CHECKSUM_ERROR,
    E_CMD_ABORTED,
    E_CMD_FORMAT_ERROR,
    E_CMD_PENDING,
    E_CMD_UNKNOWN,
    E_NOT_INITIALIZED,
    E_RANGE_ERROR,
    E_SUCCESS,
    FAST_STOP,
    GRASPING_STATE,
    HOMING,
    OPENING_WIDTH,
    PREPOSITION,
    SET_FORCE_LIMIT,
    SF_FAST_STOP,
    SF_MOVING,
    SF_REFERENCED,
    SPEED,
    STOP,
    SYSTEM_STATE,
    PacketReader,
    encode_packet,
)

GET_FORCE = 0x45
E_ALREADY_RUNNING = 4
GS_IDLE, GS_POSITIONING = 0, 6
_POLL_S = 0.005  # how often a connection checks for finished motions
_READS = (SYSTEM_STATE, GRASPING_STATE, OPENING_WIDTH, SPEED, GET_FORCE)


class WSGLoopback(LoopbackServer):
    """A threaded TCP server on ``host:port`` (port 0: any free port, see ``.port``) speaking the WSG
    command interface for one simulated gripper. Use as a context manager, or ``start()`` / ``close()``."""

    name = "wsg-loopback"

    def __init__(self, config: GripperConfig, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.spec = config.spec
        self.model = WidthModel(self.spec, config.sim.object_width, config.sim.activation_time)
        self.fault_flags = 0
        self.force_limit = self.spec.force_range[1]
        self.requests = 0
        self._motion: int | None = None  # the motion command running (HOMING / PREPOSITION)
        self._aborted = False
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def inject_fault(self, flag: int) -> None:
        """Raise system-state fault ``flag`` (e.g. ``1 << 16``, overcurrent) and stop the fingers."""
        with self._lock:
            self._advance()
            self.fault_flags |= flag
            self.model.stop()

    def handle_packet(self, command: int, payload: bytes, checksum_ok: bool = True) -> bytes:
        """One request -> its immediate reply (public for tests of malformed input)."""
        with self._lock:
            self.requests += 1
            self._advance()
            if not checksum_ok:
                return _reply(command, E_CHECKSUM_ERROR)
            handler = {HOMING: self._homing, PREPOSITION: self._preposition, STOP: self._stop,
                       FAST_STOP: self._fast_stop, ACK_FAST_STOP: self._ack_fast_stop,
                       SET_FORCE_LIMIT: self._set_force}.get(command)
            if handler is not None:
                return handler(payload)
            if command in _READS:
                return self._read(command, payload)
            return _reply(command, E_CMD_UNKNOWN)

    def finished_motion(self) -> bytes | None:
        """The outcome packet of a motion that ended since the last call, if one did."""
        with self._lock:
            self._advance()
            m = self.model
            if self._motion is None or m.moving or m.activating:
                return None
            command, self._motion = self._motion, None
            if self._aborted:
                status = E_CMD_ABORTED
            elif command == HOMING:
                status = E_SUCCESS if m.activated else E_CMD_ABORTED
            else:
                status = E_AXIS_BLOCKED if m.object_contact else E_SUCCESS
            return _reply(command, status)

    # --- commands -----------------------------------------------------------------------------------

    def _homing(self, payload: bytes) -> bytes:
        if len(payload) != 1:
            return _reply(HOMING, E_CMD_FORMAT_ERROR)
        if self.fault_flags or self._motion is not None:
            return _reply(HOMING, E_ACCESS_DENIED if self.fault_flags else E_ALREADY_RUNNING)
        self.model.reset()
        self.model.activate()
        self._motion, self._aborted = HOMING, False
        return _reply(HOMING, E_CMD_PENDING)

    def _preposition(self, payload: bytes) -> bytes:
        if len(payload) != 9:
            return _reply(PREPOSITION, E_CMD_FORMAT_ERROR)
        flags, width_mm, speed_mm = struct.unpack("<Bff", payload)
        if self.fault_flags:
            return _reply(PREPOSITION, E_ACCESS_DENIED)
        if not self.model.activated:
            return _reply(PREPOSITION, E_NOT_INITIALIZED)
        if self._motion is not None:
            return _reply(PREPOSITION, E_ALREADY_RUNNING)
        if flags & 1 or not 0 <= width_mm <= self.spec.stroke * 1e3 or not speed_mm > 0:
            return _reply(PREPOSITION, E_RANGE_ERROR)  # relative motion is not modelled
        self.model.command(width_mm / 1e3, speed_mm / 1e3, self.force_limit)
        self._motion, self._aborted = PREPOSITION, False
        return _reply(PREPOSITION, E_CMD_PENDING)

    def _stop(self, payload: bytes) -> bytes:
        if payload:
            return _reply(STOP, E_CMD_FORMAT_ERROR)
        if self._motion is not None:
            self._aborted = True
        self.model.stop()
        return _reply(STOP, E_SUCCESS)

    def _fast_stop(self, payload: bytes) -> bytes:
        self._aborted = self._motion is not None
        self.model.stop()
        self.fault_flags |= SF_FAST_STOP
        return _reply(FAST_STOP, E_SUCCESS)

    def _ack_fast_stop(self, payload: bytes) -> bytes:
        if payload != b"ack":
            return _reply(ACK_FAST_STOP, E_CMD_FORMAT_ERROR)
        self.fault_flags &= ~SF_FAST_STOP
        return _reply(ACK_FAST_STOP, E_SUCCESS)

    def _set_force(self, payload: bytes) -> bytes:
        if len(payload) != 4:
            return _reply(SET_FORCE_LIMIT, E_CMD_FORMAT_ERROR)
        (force,) = struct.unpack("<f", payload)
        lo, hi = self.spec.force_range
        if not lo <= force <= hi:
            return _reply(SET_FORCE_LIMIT, E_RANGE_ERROR)
        self.force_limit = force
        return _reply(SET_FORCE_LIMIT, E_SUCCESS)

    def _read(self, command: int, payload: bytes) -> bytes:
        if len(payload) != 3:
            return _reply(command, E_CMD_FORMAT_ERROR)
        m = self.model
        if command == SYSTEM_STATE:
            flags = self.fault_flags | (SF_REFERENCED if m.activated else 0) | (SF_MOVING if m.moving else 0)
            return _reply(command, E_SUCCESS, struct.pack("<I", flags))
        if command == GRASPING_STATE:
            return _reply(command, E_SUCCESS, bytes([GS_POSITIONING if m.moving else GS_IDLE]))
        value = {OPENING_WIDTH: m.width * 1e3, SPEED: m.velocity * 1e3,
                 GET_FORCE: self.force_limit if m.object_contact else 0.0}[command]
        return _reply(command, E_SUCCESS, struct.pack("<f", value))

    def _advance(self) -> None:
        now = time.monotonic()
        self.model.advance(now - self._last)
        self._last = now

    def serve(self, conn: socket.socket) -> None:
        """One client: answer its packets, and push motion outcomes as they happen."""
        reader = PacketReader()
        while True:
            try:
                readable, _, _ = select.select([conn], [], [], _POLL_S)
                out = b""
                if readable:
                    data = conn.recv(4096)
                    if not data:
                        return
                    for command, payload, ok in reader.feed(data):
                        out += self.handle_packet(command, payload, ok)
                finished = self.finished_motion()
                if finished is not None:
                    out += finished
                if out:
                    conn.sendall(out)
            except OSError:
                return


def _reply(command: int, status: int, params: bytes = b"") -> bytes:
    return encode_packet(command, struct.pack("<H", status) + params)


def main(argv: list[str] | None = None) -> int:
    return serve_rig_gripper(argv, __doc__.split("\n\n")[0], "WSG twin", lambda config, port: WSGLoopback(config, port=port))


if __name__ == "__main__":
    sys.exit(main())
