"""``SpaceMouseDevice``: a 3Dconnexion SpaceMouse read with pyspacemouse (HID over hidraw)."""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_stack.hardware.teleop.device import TeleopDevice, TeleopDeviceError, TeleopState
from robot_stack.runtime import now

_HINT = (
    "Check that the SpaceMouse is plugged in (`lsusb | grep -i -e 3dconnexion -e 256f -e 046d`), that the "
    "hidapi library is installed (`sudo apt install libhidapi-hidraw0`), and that your user may read its "
    "/dev/hidraw* node: add a udev rule such as\n"
    '  KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0666"\n'
    '  KERNEL=="hidraw*", ATTRS{idVendor}=="046d", MODE="0666"\n'
    "to /etc/udev/rules.d/99-spacemouse.rules, run `sudo udevadm control --reload-rules && sudo udevadm "
    "trigger`, and re-plug it. Stop spacenavd if it holds the device. Or use --teleop keyboard."
)


class SpaceMouseDevice(TeleopDevice):
    """SpaceMouse axes (HID_Z_UP convention: +x right, +y away from you, +z up) and buttons.

    ``name``: a pyspacemouse device name (``SpaceMouse Compact``, ...); ``None`` opens the first one found.
    Reads are non-blocking: ``read`` drains the pending HID reports and returns the latest state.
    """

    def __init__(self, name: str | None = None, max_reports_per_read: int = 32):
        self.name = name
        self.max_reports_per_read = max_reports_per_read
        self._device: Any = None
        self._last_t = float("nan")

    def open(self) -> None:
        import pyspacemouse  # imported here: it loads the hidapi C library at import time

        what = f"SpaceMouse {self.name!r}" if self.name else "a SpaceMouse"
        try:
            self._device = pyspacemouse.open(
                device=self.name, nonblocking=True, axis_convention=pyspacemouse.AxisConvention.HID_Z_UP
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise TeleopDeviceError(f"cannot open {what} ({exc}).\n{_HINT}") from None
        if self._device is None:  # older pyspacemouse returned None instead of raising
            raise TeleopDeviceError(f"no {what} found.\n{_HINT}")

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    def read(self) -> TeleopState:
        if self._device is None:
            raise TeleopDeviceError("SpaceMouseDevice.read before open()")
        state = self._device.read()
        for _ in range(self.max_reports_per_read - 1):  # one HID report per read: drain the backlog
            if state.t == self._last_t:
                break
            self._last_t = state.t
            state = self._device.read()
        axes = np.array([state.x, state.y, state.z, state.roll, state.pitch, state.yaw], dtype=np.float64)
        return TeleopState(np.clip(axes, -1.0, 1.0), np.asarray(list(state.buttons), dtype=bool), now())

