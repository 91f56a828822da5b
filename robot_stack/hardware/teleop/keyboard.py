"""``KeyboardTeleop``: drive the arm with keys typed into a window (the collect preview), no SpaceMouse needed.

Windows like OpenCV's report key presses and auto-repeats but no releases, so a key counts as held for the
profile's ``key_hold`` seconds after its last event; holding a key keeps it held through auto-repeat. Keys
arrive through ``feed`` (from ``cv2.waitKey`` or any other source), which keeps the class display-free and
testable.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from robot_stack.hardware.teleop.device import N_AXES, N_BUTTONS, TeleopDevice, TeleopState
from robot_stack.hardware.teleop.profile import TeleopProfile
from robot_stack.runtime import now


class KeyboardTeleop(TeleopDevice):
    """Axes and buttons from the keys of a keyboard ``TeleopProfile`` (``keys``, ``button_keys``, ``key_hold``)."""

    def __init__(self, profile: TeleopProfile, clock: Callable[[], float] = now):
        self.profile = profile
        self.clock = clock
        self._last_event: dict[str, float] = {}

    def handles(self, key: str) -> bool:
        """True if ``key`` is one of this profile's motion or button keys."""
        return key in self.profile.keys or key in self.profile.button_keys

    def feed(self, key: int | str, t: float | None = None) -> bool:
        """Register a key press/auto-repeat (a character or a ``cv2.waitKey`` code); False if not ours."""
        if isinstance(key, int):
            if key < 0:
                return False
            key = chr(key & 0xFF)
        if not self.handles(key):
            return False
        self._last_event[key] = self.clock() if t is None else t
        return True

    def read(self) -> TeleopState:
        t = self.clock()
        held = {k for k, t_key in self._last_event.items() if t - t_key <= self.profile.key_hold}
        axes = np.zeros(N_AXES)
        for key in held & self.profile.keys.keys():
            axis, value = self.profile.keys[key]
            axes[axis] += value
        buttons = np.zeros(N_BUTTONS, dtype=bool)
        for key in held & self.profile.button_keys.keys():
            buttons[self.profile.button_keys[key]] = True
        return TeleopState(np.clip(axes, -1.0, 1.0), buttons, t)
