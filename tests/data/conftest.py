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


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A dataset recorded by lockstep collection on sim_pusht: 2 episodes, two cameras at 30 fps (top: the
    table cropped to 96x96; oblique: 320x240) with capture timestamps, steps at 10 Hz, the camera setup,
    timing convention and seeds (read-only)."""
    from robot_stack.cli import main

    root = tmp_path_factory.mktemp("recorded") / "demos"
    assert main(["collect", "--rig", "sim_pusht", "--teleop", "scripted", "--episodes", "2", "--lockstep",
                 "--workers", "1", "--out", str(root), "--no-preview"]) == 0
    return root
