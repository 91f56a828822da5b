"""Synthetic teleop devices (importable in spawned children)."""

from __future__ import annotations

import numpy as np

from robot_stack.hardware.teleop import TeleopDevice, TeleopState
from robot_stack.runtime import now


class CountingDevice(TeleopDevice):
    """Axis 0 counts reads (scaled into [-1, 1]); button 3 is pressed on every 2nd read."""

    def __init__(self) -> None:
        self.n = 0
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def read(self) -> TeleopState:
        assert self.opened, "read before open"
        self.n += 1
        buttons = np.zeros(4, dtype=bool)
        buttons[3] = self.n % 2 == 0
        return TeleopState([(self.n % 1000) / 1000.0, 0, 0, 0, 0, -0.5], buttons, now())
