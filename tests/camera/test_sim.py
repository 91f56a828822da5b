"""SimCamera: frame rate, latency, drops of a slow reader, renderer checks, the Push-T renderer."""

import time

import numpy as np
import pytest

from robot_stack.config import ConfigError
from robot_stack.hardware.camera import CameraConfig, CameraTimeout, SimCamera, TestPatternRenderer
from robot_stack.runtime import now
from robot_stack.sim.pusht import SceneConfig, SceneRenderer


def test_frames_at_fps_with_latency():
    cfg = CameraConfig(name="top", fps=30, sim_latency=0.1)  # latency > period: several frames in flight
    with SimCamera(cfg) as camera:
        start = now()
        frames = [camera.read(1.0) for _ in range(20)]
        elapsed = now() - start
    assert [f.frame_number for f in frames] == list(range(1, 21))
    assert np.diff([f.timestamp for f in frames]) == pytest.approx(1 / 30, abs=1e-6)  # exact capture grid
    latencies = np.array([f.receive_timestamp - f.timestamp for f in frames])
    assert latencies.min() >= 0.1 and np.median(latencies) < 0.15
    assert elapsed == pytest.approx(0.1 + 19 / 30, abs=0.15)
    # The test pattern changes every frame.
    assert not np.array_equal(frames[0].color, frames[1].color)


def test_slow_reader_loses_frames_as_numbered_gaps():
    with SimCamera(CameraConfig(name="top", fps=50, sim_latency=0.0)) as camera:
        first = camera.read(1.0)
        time.sleep(0.2)  # ten periods
        later = camera.read(1.0)
    assert later.frame_number - first.frame_number >= 9
    assert later.receive_timestamp - later.timestamp < 0.1  # the newest slot, not a stale backlog


def test_timeout_when_the_next_frame_is_too_far():
    with SimCamera(CameraConfig(name="top", fps=1, sim_latency=0.0)) as camera:
        camera.read(1.5)
        with pytest.raises(CameraTimeout):
            camera.read(0.05)


def test_depth_from_a_renderer_that_has_it():
    with SimCamera(CameraConfig(name="top", depth=True), TestPatternRenderer()) as camera:
        frame = camera.read(1.0)
    assert frame.depth.shape == (480, 640) and frame.depth.dtype == np.uint16 and frame.depth.min() > 0


def test_renderer_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="configured for 320x240"):
        SimCamera(CameraConfig(name="top", resolution=(320, 240)), TestPatternRenderer((640, 480))).open()
    renderer = SceneRenderer(SceneConfig(), None, "top", (640, 480))
    with pytest.raises(ConfigError, match="renders no depth"):
        SimCamera(CameraConfig(name="top", depth=True), renderer).open()


def test_renders_the_push_t_scene():
    renderer = SceneRenderer(SceneConfig(), None, "oblique", (320, 240))
    with SimCamera(CameraConfig(name="side", resolution=(320, 240), sim_latency=0.0), renderer) as camera:
        frame = camera.read(1.0)
    assert np.array_equal(frame.color, renderer.render())
