"""``Gripper``: the small interface a gripper driver implements (the real Robotiq driver and the twins).

Units are SI, as for the arm: finger opening ``width`` in m (0 = closed), speeds in m/s, forces in N.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


class GripperError(RuntimeError):
    """The gripper cannot be driven; the message says what to check."""


class GripperConnectionError(GripperError):
    """The gripper (or the socket in front of it) is unreachable, or stopped answering."""


class GripperNotActivatedError(GripperError):
    """A motion was asked of a gripper that is not activated (``activate()`` first)."""


class GripperFaultError(GripperError):
    """The gripper reports a fault; the message says which, in words."""


@dataclass(frozen=True)
class GripperState:
    """One reading of the gripper."""

    width: float  # m, measured finger opening
    velocity: float  # m/s, d(width)/dt (negative while closing)
    object_detected: bool  # the fingers stopped on an object before reaching the requested width
    activated: bool
    fault: str = ""  # empty when there is none, else what the fault means

    @property
    def ok(self) -> bool:
        return self.activated and not self.fault


class Gripper(abc.ABC):
    """Connection to one gripper. Not thread-safe; one owner process."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection; raise ``GripperConnectionError`` when the gripper cannot be reached."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Close the connection (idempotent)."""

    @abc.abstractmethod
    def activate(self, timeout: float = 5.0) -> None:
        """Activate (and on grippers that need it, calibrate) the gripper; a no-op when it already is.
        Raises ``GripperFaultError`` if activation fails or ``GripperError`` if it takes over ``timeout`` s."""

    @abc.abstractmethod
    def move(self, width: float, speed: float, force: float) -> None:
        """Start moving the fingers to ``width`` m at ``speed`` m/s, squeezing with at most ``force`` N
        (each clamped to the gripper's range). Returns at once; ``get_state`` tells the progress."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the fingers where they are."""

    @abc.abstractmethod
    def get_state(self) -> GripperState:
        """Read the gripper's state; raises ``GripperFaultError`` never (the fault is in the state)."""

    @property
    @abc.abstractmethod
    def max_width(self) -> float:
        """The fully open width (m)."""

    def open(self, speed: float, force: float) -> None:
        """Open fully."""
        self.move(self.max_width, speed, force)

    def close(self, speed: float, force: float) -> None:
        """Close until the fingers meet or stop on an object."""
        self.move(0.0, speed, force)

    def __enter__(self) -> "Gripper":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
