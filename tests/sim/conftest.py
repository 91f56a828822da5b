"""Shared helpers of the Push-T sim tests."""

import time

import pytest


def _wait_for_state(scene, predicate, timeout=5.0):
    """Poll ``scene.get_state()`` until ``predicate(state)``; fail with the last state after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = scene.get_state()
        if predicate(state):
            return state
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s; last scene state {state}")


@pytest.fixture
def wait_for_state():
    """``wait_for_state(scene, predicate, timeout=5.0) -> state``."""
    return _wait_for_state
