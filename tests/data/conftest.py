import os
import sys

import pytest

# Helper modules (dataset_checks, rb_writer) are imported by name, also by the writer subprocess.
sys.path.insert(0, os.path.dirname(__file__))

from robot_stack.hardware.camera.config import CameraConfig  # noqa: E402
from robot_stack.hardware.camera.process import CameraProcess  # noqa: E402


@pytest.fixture(scope="module")
def sim_camera():
    """A running simulated camera (test pattern, 64x48 at 30 fps)."""
    config = CameraConfig(name="test", driver="sim", resolution=(64, 48), fps=30, sim_latency=0.01)
    with CameraProcess(config) as cam:
        yield cam
