"""CameraProcess: frames from each kind of source land in the ring buffer; drops and failures are visible."""

import time

import numpy as np
import pytest

from robot_stack.hardware.camera import CameraConfig, CameraProcess, camera_spec
from robot_stack.runtime import ProcessFailed, now


def test_spec_follows_the_config():
    spec = camera_spec(CameraConfig(name="a", depth=True, output_resolution=(320, 240)))
    assert spec["color"] == ((240, 320, 3), np.uint8) and spec["depth"] == ((240, 320), np.uint16)
    assert set(spec) == {"color", "depth", "timestamp", "receive_timestamp", "frame_number", "dropped_frames"}


@pytest.mark.realsense
def test_software_device_frames_reach_the_ring_buffer_in_order_and_drops_are_counted(assert_released, wait_for):
    cfg = CameraConfig(name="wrist", driver="realsense", serial="SYNTH0001", depth=True,
                       crop=(80, 0, 480, 480), output_resolution=(240, 240))
    from robot_stack.hardware.camera.synthetic import SyntheticRealSense, frame_value

    devices = SyntheticRealSense(depth=True, skip=range(20, 23))  # the device "loses" frames 20-22
    with CameraProcess(cfg, devices=devices) as camera:
        assert wait_for(lambda: camera.frames.count >= 30, 5.0)
        records = camera.frames.get_last_k(camera.frames.count)  # everything so far (capacity 60)
        assert camera.dropped_frames >= 3
    assert_released(camera.frames.name)
    numbers = records["frame_number"]
    assert np.all(np.diff(numbers) > 0)
    missing = set(range(numbers[0], numbers[-1] + 1)) - set(numbers)
    assert {20, 21, 22} <= missing  # (a loaded machine may lose more; each one is counted)
    assert records["dropped_frames"][0] == 0 and records["dropped_frames"][-1] == len(missing)
    assert np.all(np.diff(records["timestamp"]) > 0)
    delays = records["receive_timestamp"] - records["timestamp"]
    assert delays.min() > -1e-3 and np.median(delays) < 0.05
    for number, color, depth in zip(numbers, records["color"], records["depth"]):
        assert color.shape == (240, 240, 3) and (color == frame_value(number)).all()
        assert np.median(depth) == 1000 + number


def test_sim_camera_process_publishes_at_its_rate(wait_for):
    cfg = CameraConfig(name="top", fps=20, sim_latency=0.05, output_resolution=(320, 240))
    with CameraProcess(cfg) as camera:
        assert wait_for(lambda: camera.frames.count >= 1, 5.0)
        first = camera.frames.get()
        time.sleep(1.0)
        records = camera.frames.get_since(float(first["timestamp"]))
        age = now() - camera.frames.get()["timestamp"]
    periods = np.diff(np.concatenate([[first["timestamp"]], records["timestamp"]])) / 0.05
    np.testing.assert_allclose(periods, np.round(periods), atol=1e-6)  # captures on the exact 20 Hz grid
    assert 14 <= len(periods) <= 21 and np.mean(np.round(periods) == 1) > 0.8
    # Every skipped grid slot (only if the machine stalls the process) is counted as dropped.
    assert records["dropped_frames"][-1] - first["dropped_frames"] == np.sum(np.round(periods) - 1)
    assert records["color"].shape[1:] == (240, 320, 3)
    assert 0.05 <= age < 0.5  # at least the simulated latency


@pytest.mark.realsense
def test_playback_file_as_source(tmp_path, synthetic_devices, wait_for):
    from robot_stack.hardware.camera import CameraTimeout, RealSenseCamera

    recording = tmp_path / "session.db3"
    live = CameraConfig(name="wrist", driver="realsense", serial="SYNTH0001", record_file=recording)
    with RealSenseCamera(live, devices=synthetic_devices(n_frames=12)) as source:
        with pytest.raises(CameraTimeout):
            while True:
                source.read(0.5)
    replay = CameraConfig(name="wrist", driver="realsense", playback_file=recording, playback_real_time=False)
    with CameraProcess(replay) as camera:
        assert wait_for(lambda: camera.frames.count >= 12, 5.0)
        time.sleep(0.2)  # end of file: nothing more arrives, the process stays up
        assert camera.is_alive() and camera.frames.count == 12
        records = camera.frames.get_last_k(12)
    assert list(records["frame_number"]) == list(range(1, 13))  # the file holds every injected frame


@pytest.mark.realsense
def test_bad_serial_fails_start_with_the_reason(assert_released):
    cfg = CameraConfig(name="wrist", driver="realsense", serial="000000000000")
    from robot_stack.hardware.camera.synthetic import SyntheticRealSense

    camera = CameraProcess(cfg, devices=SyntheticRealSense(serial="SYNTH0099"))
    with pytest.raises(ProcessFailed) as err:
        camera.start()
    assert_released(camera.frames.name)
    assert "'000000000000' not found" in err.value.error and "SYNTH0099" in err.value.error


@pytest.mark.realsense
def test_a_camera_that_stops_delivering_fails_the_process(wait_for):
    cfg = CameraConfig(name="wrist", driver="realsense", serial="SYNTH0001", frame_timeout=0.3)
    from robot_stack.hardware.camera.synthetic import SyntheticRealSense

    with CameraProcess(cfg, devices=SyntheticRealSense(n_frames=5)) as camera:
        assert wait_for(lambda: not camera.is_alive(), 5.0)
        assert camera.frames.count == 5
        assert "no frame for 0.3 s" in camera.error
