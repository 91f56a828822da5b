"""RealSenseCamera through the real librealsense stack, fed by software devices (no hardware needed)."""

import logging

import numpy as np
import pytest

# Skipped where pyrealsense2 cannot load (no libusb); CI requires it (see tests/conftest.py).
rs = pytest.importorskip("pyrealsense2", exc_type=ImportError)

from robot_stack.config import ConfigError
from robot_stack.hardware.camera import (
    CameraConfig,
    CameraNotFoundError,
    CameraTimeout,
    EndOfStream,
    RealSenseCamera,
    UnsupportedStreamError,
    list_cameras,
)
from robot_stack.hardware.camera import realsense
from robot_stack.hardware.camera.synthetic import frame_value
from robot_stack.runtime import now


def config(**kw):
    return CameraConfig(**{"name": "wrist", "driver": "realsense", "serial": "SYNTH0001", **kw})


def read_all(camera, n=None, timeout=1.0):
    frames = []
    while n is None or len(frames) < n:
        try:
            frames.append(camera.read(timeout))
        except (EndOfStream, CameraTimeout):
            if n is not None:
                raise
            break
    return frames


def test_injected_frames_arrive_in_order_with_capture_timestamps(synthetic_devices):
    devices = synthetic_devices(fps=30)
    with RealSenseCamera(config(), devices=devices) as camera:
        frames = read_all(camera, 15)
    numbers = [f.frame_number for f in frames]
    assert numbers == list(range(numbers[0], numbers[0] + 15))
    for f in frames:
        assert f.color.shape == (480, 640, 3) and f.color.dtype == np.uint8
        assert (f.color == frame_value(f.frame_number)).all()
        assert f.receive_timestamp <= now()
    # Stamped with the wall clock at injection: mapped, capture precedes arrival by the pipeline delay only.
    delays = np.array([f.receive_timestamp - f.timestamp for f in frames])
    assert delays.min() > -1e-3 and np.median(delays) < 0.05 and delays.max() < 0.5
    spacing = np.diff([f.timestamp for f in frames]) / np.diff(numbers)
    assert np.median(spacing) == pytest.approx(1 / 30, abs=3e-3)


def test_depth_is_aligned_to_color_in_millimetres(synthetic_devices):
    devices = synthetic_devices(depth=True)
    with RealSenseCamera(config(depth=True), devices=devices) as camera:
        frames = read_all(camera, 5)
    for f in frames:
        assert f.depth.shape == (480, 640) and f.depth.dtype == np.uint16
        valid = f.depth[f.depth > 0]
        assert valid.size > 0.9 * f.depth.size  # align leaves a few rounding holes, no more
        assert (valid == 1000 + f.frame_number).all()
        assert (f.color == frame_value(f.frame_number)).all()


def test_fixed_exposure_and_white_balance_are_applied(synthetic_devices):
    devices = synthetic_devices()
    cfg = config(exposure=300, gain=20, white_balance=4000)
    with RealSenseCamera(cfg, devices=devices) as camera:
        camera.read(1.0)
        color = devices()[0].query_sensors()[0]
        assert color.get_option(rs.option.enable_auto_exposure) == 0
        assert color.get_option(rs.option.exposure) == 300
        assert color.get_option(rs.option.gain) == 20
        assert color.get_option(rs.option.enable_auto_white_balance) == 0
        assert color.get_option(rs.option.white_balance) == 4000


def test_out_of_range_exposure_names_the_device_range(synthetic_devices):
    with pytest.raises(ConfigError, match=r"exposure 20000 is outside the device range \[1, 10000\]"):
        RealSenseCamera(config(exposure=20000), devices=synthetic_devices()).open()


def test_unsupported_mode_lists_the_supported_ones(synthetic_devices):
    with pytest.raises(UnsupportedStreamError) as err:
        RealSenseCamera(config(resolution=(1280, 720), fps=30), devices=synthetic_devices()).open()
    assert "cannot stream color 1280x720@30" in str(err.value)
    assert "supported: 640x480@30" in str(err.value)


def test_usb2_warns_and_explains_missing_modes(synthetic_devices, caplog):
    devices = synthetic_devices(usb_type="2.1")
    with caplog.at_level(logging.WARNING):
        with pytest.raises(UnsupportedStreamError, match="on USB 2"):
            RealSenseCamera(config(fps=60), devices=devices).open()
    assert "USB 2 port" in caplog.text


def test_unknown_serial_lists_the_connected_cameras(synthetic_devices):
    devices = synthetic_devices(serial="SYNTH0042")
    with pytest.raises(CameraNotFoundError) as err:
        RealSenseCamera(config(serial="123456789012"), devices=devices).open()
    message = str(err.value)
    assert "'123456789012' not found" in message and "SYNTH0042" in message and "rig YAML" in message


def test_unknown_serial_without_any_camera(monkeypatch):
    monkeypatch.setattr(realsense, "connected_devices", lambda: [])
    with pytest.raises(CameraNotFoundError, match="no RealSense connected"):
        RealSenseCamera(config(serial="123456789012")).open()


def test_list_cameras_reports_identity(synthetic_devices):
    (info,) = list_cameras(synthetic_devices(serial="SYNTH0007", usb_type="2.1"))
    assert (info.serial, info.firmware, info.usb_type, info.is_usb2) == ("SYNTH0007", "5.16.0.1", "2.1", True)
    assert "D435" in info.model


def record(synthetic_devices, recording, depth):
    devices = synthetic_devices(depth=depth, n_frames=10)
    with RealSenseCamera(config(depth=depth, record_file=recording), devices=devices) as camera:
        live = read_all(camera, timeout=0.5)
    assert recording.stat().st_size > 0
    assert len(live) >= 9  # the first depth+color pair may be unmatched
    return {f.frame_number: f for f in live}


@pytest.mark.parametrize("depth", [False, True])
def test_record_then_play_back(synthetic_devices, tmp_path, depth):
    recording = tmp_path / "session.db3"
    originals = record(synthetic_devices, recording, depth)

    # Not real time: librealsense waits for the reader, so every recorded frame must come back.
    playback = config(serial=None, depth=depth, playback_file=recording, playback_real_time=False)
    start = now()
    with RealSenseCamera(playback) as camera:
        replayed = read_all(camera, timeout=2.0)
        assert camera.info.serial == "SYNTH0001"
    numbers = [f.frame_number for f in replayed]
    assert numbers == sorted(set(numbers)) and set(originals) <= set(numbers) <= set(range(1, 11))
    common = [f for f in replayed if f.frame_number in originals]
    for copy in common:
        original = originals[copy.frame_number]
        assert np.array_equal(original.color, copy.color)
        if depth:
            assert np.array_equal(original.depth, copy.depth)
        # Rebased to the runtime clock keeping the recorded spacing.
        assert copy.timestamp - common[0].timestamp == pytest.approx(
            original.timestamp - originals[common[0].frame_number].timestamp, abs=2e-3)
    assert replayed[0].timestamp >= start


def test_real_time_play_back_keeps_the_recorded_pace(synthetic_devices, tmp_path):
    recording = tmp_path / "session.db3"
    originals = record(synthetic_devices, recording, depth=False)
    with RealSenseCamera(config(serial=None, playback_file=recording)) as camera:
        replayed = read_all(camera, timeout=2.0)
    # Real time means a loaded machine may drop frames (as a live camera would); those that arrive are paced.
    assert len(replayed) >= 5 and all(f.frame_number in originals for f in replayed)
    first, last = replayed[0], replayed[-1]
    assert last.receive_timestamp - first.receive_timestamp >= 0.8 * (last.timestamp - first.timestamp)
    assert last.timestamp - first.timestamp == pytest.approx(
        originals[last.frame_number].timestamp - originals[first.frame_number].timestamp, abs=2e-3)


def test_playback_errors_are_clear(tmp_path, synthetic_devices):
    with pytest.raises(ConfigError, match="does not exist"):
        RealSenseCamera(config(serial=None, playback_file=tmp_path / "missing.db3")).open()
    recording = tmp_path / "s.db3"
    with RealSenseCamera(config(record_file=recording), devices=synthetic_devices(n_frames=3)) as camera:
        read_all(camera, timeout=0.5)
    with pytest.raises(CameraNotFoundError, match="was recorded from serial 'SYNTH0001'"):
        RealSenseCamera(config(serial="OTHER", playback_file=recording)).open()
