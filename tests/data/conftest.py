import os
import sys

import av
import numpy as np
import pytest

# The crash tests run helper scripts from this folder, which import each other by module name.
sys.path.insert(0, os.path.dirname(__file__))

from robot_stack.hardware.camera.config import CameraConfig  # noqa: E402
from robot_stack.hardware.camera.process import CameraProcess  # noqa: E402


def decode_frame_count(path) -> int:
    """Number of frames a video decodes to (what training will see)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


@pytest.fixture(scope="module")
def sim_camera():
    """A running simulated camera (test pattern, 64x48 at 30 fps)."""
    config = CameraConfig(name="test", driver="sim", resolution=(64, 48), fps=30, sim_latency=0.01)
    with CameraProcess(config) as cam:
        yield cam


def assert_video_matches(path, t_start: float, t_end: float, fps: float) -> np.ndarray:
    """The video decodes to exactly one frame per timestamp, all captured in (t_start, t_end]."""
    ts = np.load(path.with_name(path.stem + ".timestamps.npy"))
    assert decode_frame_count(path) == len(ts)
    assert np.all(np.diff(ts) > 0)
    assert ts[0] > t_start and ts[-1] <= t_end + 1e-9
    expected = (t_end - t_start) * fps
    assert abs(len(ts) - expected) <= 2, f"{len(ts)} frames for {t_end - t_start:.2f} s at {fps} fps"
    return ts
