"""``URCapLoopback``: a Robotiq URCap socket twin on loopback, so the real ``RobotiqURCapGripper`` runs in CI.

It serves the URCap's ASCII protocol (``SET``/``GET`` of the gripper registers, see ``robotiq.py``) from a
``WidthModel``, advanced in real time on every request, with the register semantics of the 2F grippers:
ACT 1 starts activation (STA 1, then 3), ACT 0 resets (and clears faults); with GTO 1 the fingers go to
the requested POS at SPE with FOR, and a new POS while GTO is 1 starts a new motion; GTO before activation
raises fault 0x07, as the real firmware does. OBJ reads 0 while moving, 2 when stopped on an object while
closing, 3 at the requested position. ``inject_fault(code)`` makes the gripper fault for tests.

A malformed request is answered with ``?`` (what the real URCap answers is not documented; the driver treats
any answer but ``ack`` as a refusal) and never stops the server.

Serve a rig's gripper by hand: ``python -m robot_stack.hardware.gripper.urcap_loopback RIG [--port P]``.
"""

from __future__ import annotations

import sys
import threading
import time

from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.loopback import LoopbackServer, serve_rig_gripper
from robot_stack.hardware.gripper.robotiq import (
    OBJ_AT_TARGET,
    OBJ_CONTACT_CLOSING,
    OBJ_MOVING,
    STA_ACTIVATED,
    STA_ACTIVATING,
    STA_RESET,
    from_register,
    position_to_width,
    width_to_position,
)
from robot_stack.hardware.gripper.width_model import WidthModel

_WRITABLE = ("ACT", "GTO", "POS", "SPE", "FOR")
_READABLE = _WRITABLE + ("PRE", "OBJ", "STA", "FLT")
_FAULT_NOT_ACTIVATED = 0x07


class URCapLoopback(LoopbackServer):
    """A threaded TCP server on ``host:port`` (port 0: any free port, see ``.port``) speaking the URCap
    protocol for one simulated gripper. Use as a context manager, or ``start()`` / ``close()``."""

    name = "urcap-loopback"

    def __init__(self, config: GripperConfig, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        spec = config.spec
        self.spec = spec
        self.model = WidthModel(spec, config.sim.object_width, config.sim.activation_time)
        self.registers = {"ACT": 0, "GTO": 0, "POS": width_to_position(spec.stroke, spec), "SPE": 255, "FOR": 255}
        self.requests = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def serve(self, conn) -> None:
        try:
            for raw in conn.makefile("rb"):
                conn.sendall(self.handle_line(raw.decode("ascii", errors="replace").strip()))
        except OSError:  # the client went away
            return

    def inject_fault(self, code: int) -> None:
        """Make the gripper report fault ``code`` (and stop), as a real one does on e.g. overcurrent."""
        with self._lock:
            self._advance()
            self.model.fault = code
            self.model.stop()

    def handle_line(self, line: str) -> bytes:
        """One request -> its reply (public for tests of malformed input)."""
        with self._lock:
            self.requests += 1
            self._advance()
            words = line.split()
            if len(words) == 2 and words[0] == "GET" and words[1] in _READABLE:
                return f"{words[1]} {self._read(words[1])}\n".encode()
            if len(words) >= 3 and words[0] == "SET" and len(words) % 2 == 1:
                pairs = list(zip(words[1::2], words[2::2]))
                if all(name in _WRITABLE and value.isdigit() and int(value) <= 255 for name, value in pairs):
                    self._write({name: int(value) for name, value in pairs})
                    return b"ack"
            return b"?\n"

    def _advance(self) -> None:
        now = time.monotonic()
        self.model.advance(now - self._last)
        self._last = now

    def _read(self, name: str) -> int:
        m = self.model
        if name == "POS":
            return width_to_position(m.width, self.spec)
        if name == "PRE":
            return self.registers["POS"]
        if name == "STA":
            return STA_ACTIVATED if m.activated else STA_ACTIVATING if m.activating else STA_RESET
        if name == "FLT":
            return m.fault
        if name == "OBJ":
            if m.moving:
                return OBJ_MOVING
            return OBJ_CONTACT_CLOSING if m.object_contact else OBJ_AT_TARGET
        return self.registers[name]

    def _write(self, values: dict[str, int]) -> None:
        m = self.model
        self.registers.update(values)
        if values.get("ACT") == 0:
            m.reset()
        elif values.get("ACT") == 1:
            m.activate()
        if "GTO" in values and values["GTO"] == 0:
            m.stop()
            return
        if self.registers["GTO"] == 1 and any(k in values for k in ("GTO", "POS", "SPE", "FOR")):
            if not m.activated:
                m.fault = _FAULT_NOT_ACTIVATED
                return
            r = self.registers
            m.command(position_to_width(r["POS"], self.spec), from_register(r["SPE"], *self.spec.speed_range),
                      from_register(r["FOR"], *self.spec.force_range))


def main(argv: list[str] | None = None) -> int:
    return serve_rig_gripper(argv, __doc__.split("\n\n")[0], "Robotiq URCap twin",
                             lambda config, port: URCapLoopback(config, port=port))


if __name__ == "__main__":
    sys.exit(main())
