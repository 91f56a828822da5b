"""``TeleopDevice``: the small interface every teleoperation input implements (SpaceMouse, keyboard, scripted).

A device reports a ``TeleopState``: six axes in [-1, 1] — translation x, y, z then rotation about x, y, z,
in the device's own frame — plus up to ``N_BUTTONS`` buttons, stamped with the runtime clock. What the
axes *mean* for the robot (deadzone, axis mapping and signs, speeds, button actions) is the job of the
profile and ``TeleopMapper``, so every device feeds the same mapping code.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_stack.runtime import now

N_AXES = 6
N_BUTTONS = 16
# Ring-buffer record of a teleop state (TeleopProcess publishes these).
TELEOP_STATE_SPEC: dict[str, tuple[tuple[int, ...], Any]] = {
    "axes": ((N_AXES,), np.float64),
    "buttons": ((N_BUTTONS,), np.bool_),
    "timestamp": ((), np.float64),
}


class TeleopDeviceError(RuntimeError):
    """The teleop device cannot be opened or read; the message says what to check."""


@dataclass
class TeleopState:
    """One reading of a teleop device: ``axes`` (6,) in [-1, 1], ``buttons`` (16,) bool, runtime-clock time."""

    axes: np.ndarray = field(default_factory=lambda: np.zeros(N_AXES))
    buttons: np.ndarray = field(default_factory=lambda: np.zeros(N_BUTTONS, dtype=bool))
    timestamp: float = field(default_factory=now)

    def __post_init__(self) -> None:
        self.axes = np.asarray(self.axes, dtype=np.float64).reshape(N_AXES)
        buttons = np.zeros(N_BUTTONS, dtype=bool)
        given = np.asarray(self.buttons, dtype=bool).ravel()[:N_BUTTONS]
        buttons[: len(given)] = given
        self.buttons = buttons

    def as_record(self) -> dict[str, Any]:
        """The ring-buffer record (``TELEOP_STATE_SPEC``)."""
        return {"axes": self.axes, "buttons": self.buttons, "timestamp": self.timestamp}

    @classmethod
    def from_record(cls, record: dict[str, np.ndarray]) -> "TeleopState":
        """Inverse of ``as_record``."""
        return cls(record["axes"], record["buttons"], float(record["timestamp"]))


class TeleopDevice(abc.ABC):
    """A teleoperation input. ``open`` before reading, ``close`` when done (also via ``with``)."""

    def open(self) -> None:
        """Connect to the device; raise ``TeleopDeviceError`` with a hint if it is not available."""

    def close(self) -> None:
        """Release the device (idempotent)."""

    @abc.abstractmethod
    def read(self) -> TeleopState:
        """The current state (non-blocking)."""

    def __enter__(self) -> "TeleopDevice":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
