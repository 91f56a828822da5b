import os

import pytest


@pytest.fixture
def assert_released():
    """Check that a shared-memory segment is gone (by name: other test runs share /dev/shm)."""

    def check(segment_name: str) -> None:
        assert not os.path.exists(f"/dev/shm/{segment_name}"), f"leaked shared-memory segment {segment_name}"

    return check


@pytest.fixture
def synthetic_devices():
    """Factory for SyntheticRealSense sources, all stopped at the end of the test."""
    from robot_stack.hardware.camera import SyntheticRealSense

    made = []

    def make(**kwargs):
        made.append(SyntheticRealSense(**kwargs))
        return made[-1]

    yield make
    for device in made:
        device.stop()
