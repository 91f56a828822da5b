"""``SocketGripper``: the TCP connection both real gripper drivers keep (one socket, a timeout per reply, one
clear line when the gripper cannot be reached)."""

from __future__ import annotations

import socket

from robot_stack.hardware.gripper.config import GripperConfig
from robot_stack.hardware.gripper.interface import Gripper, GripperConnectionError


class SocketGripper(Gripper):
    """A ``Gripper`` behind one TCP connection to ``config.host:config.port``. Subclasses name the device
    (``device``), say what to check when it is unreachable (``unreachable_hint``), and ask one question in
    ``_probe`` to tell that it really is that device."""

    device = "gripper"
    unreachable_hint = "is it on and reachable?"

    def __init__(self, config: GripperConfig):
        self.config = config
        self.spec = config.spec
        self._sock: socket.socket | None = None

    @property
    def max_width(self) -> float:
        return self.spec.stroke

    @property
    def _where(self) -> str:
        return f"{self.device} at {self.config.host}:{self.config.port}"

    def connect(self) -> None:
        if self._sock is not None:
            return
        try:
            self._sock = socket.create_connection((self.config.host, self.config.port), timeout=self.config.connect_timeout)
        except OSError as exc:
            raise GripperConnectionError(f"{self._where} unreachable ({exc.strerror or exc}): {self.unreachable_hint}"
                                         ) from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._probe()

    def disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._forget()

    def _probe(self) -> None:
        """One question right after connecting (raises if the other side does not answer it)."""

    def _forget(self) -> None:
        """Drop per-connection protocol state after a disconnect."""
