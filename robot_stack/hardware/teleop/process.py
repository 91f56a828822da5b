"""``TeleopProcess``: a teleop device polled in its own process, its state published to a ring buffer.

The device is built in the child by ``device_factory`` (a picklable callable, e.g. ``SpaceMouseDevice`` or
``functools.partial(SpaceMouseDevice, name=...)``), polled at ``rate_hz`` — above the SpaceMouse's own
report rate, so every report is seen — and each reading is put into ``state`` (``TELEOP_STATE_SPEC``).
Readers in any process call ``read()``; a stalled device shows up as an old timestamp, which
``TeleopMapper`` treats as no input.
"""

from __future__ import annotations

from typing import Callable

from robot_stack.hardware.teleop.device import TELEOP_STATE_SPEC, TeleopDevice, TeleopState
from robot_stack.runtime import DeviceProcess, SharedMemoryRingBuffer, StaleDataError, now, precise_wait


class TeleopProcess(DeviceProcess):
    """Runs a ``TeleopDevice`` in a child process; ``read()`` returns its latest state from any process."""

    def __init__(self, device_factory: Callable[[], TeleopDevice], name: str = "teleop",
                 rate_hz: float = 200.0, capacity: int = 256):
        super().__init__(name=name)
        if not 1.0 <= rate_hz <= 2000.0:
            raise ValueError(f"rate_hz must be in [1, 2000], got {rate_hz}")
        self.device_factory = device_factory
        self.period = 1.0 / rate_hz
        self.state = self.own(SharedMemoryRingBuffer.create(TELEOP_STATE_SPEC, capacity))
        self._device: TeleopDevice | None = None
        self._next = 0.0

    # -- parent side (any process) -------------------------------------------------------------------------
    def read(self) -> TeleopState:
        """Latest published state; a zero state stamped 0 (i.e. stale) before the first one."""
        try:
            return TeleopState.from_record(self.state.get())
        except StaleDataError:
            return TeleopState(timestamp=0.0)

    # -- child side ----------------------------------------------------------------------------------------
    def setup(self) -> None:
        self._device = self.device_factory()
        self._device.open()
        self.state.put(self._device.read().as_record())
        self._next = now() + self.period

    def step(self) -> None:
        assert self._device is not None
        precise_wait(self._next)
        self._next = max(self._next + self.period, now())  # after an overrun, do not burst to catch up
        self.state.put(self._device.read().as_record())

    def teardown(self) -> None:
        if self._device is not None:
            self._device.close()
