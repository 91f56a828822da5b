import os
import sys

import pytest

# Spawned children import test device classes by module name: make this folder importable there too
# (spawn passes the parent's sys.path to the child).
sys.path.insert(0, os.path.dirname(__file__))

from robot_stack.runtime.shared_block import SEGMENT_PREFIX  # noqa: E402


def shm_segments() -> set[str]:
    return {f for f in os.listdir("/dev/shm") if f.startswith(SEGMENT_PREFIX)}


@pytest.fixture
def no_leaked_segments():
    """Fail the test if it leaves any of our shared-memory segments behind."""
    before = shm_segments()
    yield
    leaked = shm_segments() - before
    assert not leaked, f"leaked shared-memory segments: {sorted(leaked)}"
