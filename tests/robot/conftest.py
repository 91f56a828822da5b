import os
import sys
from pathlib import Path

import pytest

# Spawned children import the test helpers (robot_procs) by module name: make this folder importable there.
sys.path.insert(0, os.path.dirname(__file__))

from robot_stack.hardware.robot.config import RobotConfig, load_robot_config  # noqa: E402
from robot_stack.runtime.shared_block import SEGMENT_PREFIX  # noqa: E402

RIGS = Path(__file__).resolve().parents[2] / "hardware_configs"


@pytest.fixture
def sim_config() -> RobotConfig:
    """The simulated UR5 rig's robot section."""
    return load_robot_config(RIGS / "sim_ur5.yaml")


@pytest.fixture
def no_leaked_segments():
    """Fail the test if it leaves any of the runtime's shared-memory segments behind."""
    before = {f for f in os.listdir("/dev/shm") if f.startswith(SEGMENT_PREFIX)}
    yield
    after = {f for f in os.listdir("/dev/shm") if f.startswith(SEGMENT_PREFIX)}
    assert not after - before, f"leaked shared-memory segments: {sorted(after - before)}"
