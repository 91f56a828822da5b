"""Helpers shared by the gripper driver tests."""

import time

import pytest

from robot_stack.config import load_dataclass
from robot_stack.hardware.gripper.config import GripperConfig


def _settle(driver, timeout=5.0):
    """Poll until the fingers stop; returns the last state and the velocities seen on the way."""
    deadline = time.monotonic() + timeout
    velocities = []
    while time.monotonic() < deadline:
        state = driver.get_state()
        velocities.append(state.velocity)
        if len(velocities) > 3 and abs(state.velocity) < 1e-9 and abs(velocities[-2]) < 1e-9:
            return state, velocities
        time.sleep(0.02)
    raise AssertionError(f"the fingers did not stop within {timeout} s")


@pytest.fixture
def settle():
    """``settle(driver, timeout=5.0) -> (state, velocities)``: poll a gripper driver until its fingers stop."""
    return _settle


@pytest.fixture
def twin_and_driver():
    """``make(twin_class, driver_class, section) -> (twin, connected driver)``: a protocol twin serving the
    ``gripper:`` ``section`` on a free port and the real driver connected to it; both closed at the end."""
    opened = []

    def make(twin_class, driver_class, section):
        config = load_dataclass(GripperConfig, section, "gripper")
        twin = twin_class(config).start()
        driver = driver_class(GripperConfig(**{**config.__dict__, "port": twin.port}))
        driver.connect()
        opened.append((twin, driver))
        return twin, driver

    yield make
    for twin, driver in opened:
        driver.disconnect()
        twin.close()
