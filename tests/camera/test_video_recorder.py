"""Video recording: mp4 round trip, timestamps file, atomic files, drops and lag reported."""

import threading
import time

import av
import numpy as np
import pytest

from robot_stack.data.video_recorder import (
    VideoRecorder,
    VideoRecordingError,
    VideoWriter,
    pick_codec,
    timestamps_path,
)
from robot_stack.hardware.camera import CameraConfig, camera_spec
from robot_stack.runtime import SharedMemoryRingBuffer, now


def decode(path):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def frame(i, size=(160, 120)):
    """A frame whose mean brightness encodes i (survives lossy compression)."""
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[...] = (i * 7) % 200 + 20
    return image


def test_h264_is_available_in_this_build():
    assert pick_codec() == "libx264"


def test_writer_round_trip(tmp_path):
    path = tmp_path / "videos" / "0" / "0.mp4"
    stamps = 100.0 + np.arange(25) / 30
    with VideoWriter(path, fps=30, size=(160, 120)) as writer:
        for i, t in enumerate(stamps):
            writer.write(frame(i), t)
        stats = writer.close()
    assert (stats.frames, stats.codec) == (25, "libx264")
    assert stats.duration == pytest.approx(24 / 30)
    frames = decode(path)
    assert len(frames) == 25 and frames[0].shape == (120, 160, 3)
    for i, decoded in enumerate(frames):
        assert abs(decoded.mean() - frame(i).mean()) < 3
    np.testing.assert_array_equal(np.load(timestamps_path(path)), stamps)
    assert sorted(p.name for p in path.parent.iterdir()) == ["0.mp4", "0.timestamps.npy"]


def test_the_writer_as_a_context_manager_commits_on_a_clean_exit(tmp_path):
    path = tmp_path / "0.mp4"
    with VideoWriter(path, fps=30, size=(160, 120)) as writer:
        for i in range(5):
            writer.write(frame(i), i / 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.mp4", "0.timestamps.npy"]
    assert len(decode(path)) == 5


def test_a_failed_recording_leaves_no_files(tmp_path):
    path = tmp_path / "1.mp4"
    with pytest.raises(ValueError, match="expected a 160x120 RGB uint8 frame"):
        with VideoWriter(path, fps=30, size=(160, 120)) as writer:
            writer.write(frame(0), 0.0)
            writer.write(np.zeros((10, 10, 3), np.uint8), 0.1)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoRecordingError, match="no frames"):
        VideoWriter(path, fps=30, size=(160, 120)).close()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_recording_never_shows_a_final_file(tmp_path):
    path = tmp_path / "2.mp4"
    writer = VideoWriter(path, fps=30, size=(160, 120))
    for i in range(60):  # enough for the encoder to emit packets (the file exists from then on)
        writer.write(frame(i), i / 30)
    # A crash here (no close/abort) leaves only *.partial files: readers never see a truncated mp4.
    assert not path.exists() and not timestamps_path(path).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["2.mp4.partial"]
    writer.abort()


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="even"):
        VideoWriter("x.mp4", fps=30, size=(161, 120))


class FakeCamera:
    """Writes camera records into a ring buffer from a thread, optionally skipping frame numbers."""

    def __init__(self, fps=60, capacity=16, skip=()):
        self.cfg = CameraConfig(name="c", output_resolution=(160, 120))
        self.buffer = SharedMemoryRingBuffer.create(camera_spec(self.cfg), capacity)
        self.fps, self.skip, self.dropped = fps, set(skip), 0
        self.log = []  # (frame_number, timestamp) of every put

    def put(self, number):
        t = now()
        self.buffer.put({"color": frame(number), "timestamp": t, "receive_timestamp": t,
                         "frame_number": number, "dropped_frames": self.dropped})
        self.log.append((number, t))

    def run(self, first, last, burst=False):
        for number in range(first, last + 1):
            if number in self.skip:
                self.dropped += 1
                continue
            self.put(number)
            if not burst:
                time.sleep(1 / self.fps)


def test_recorder_follows_the_ring_buffer_and_reports_camera_drops(tmp_path):
    camera = FakeCamera(skip={10, 11})
    try:
        camera.run(1, 3)  # before the episode: not recorded
        t_start = now()
        recorder = VideoRecorder(camera.buffer, tmp_path / "0.mp4", fps=camera.fps, t_start=t_start).start()
        capture = threading.Thread(target=camera.run, args=(4, 60))
        capture.start()
        time.sleep(0.5)
        t_end = now()
        stats = recorder.stop(t_end)  # while the camera keeps running
        capture.join()
    finally:
        camera.buffer.close()
    expected = [number for number, t in camera.log if t_start < t <= t_end]
    assert stats.frames == len(expected) > 20
    assert (stats.camera_dropped, stats.recorder_dropped) == (2, 0)
    assert len(decode(stats.path)) == stats.frames
    stamps = np.load(timestamps_path(stats.path))
    np.testing.assert_array_equal(stamps, [t for _, t in camera.log if t_start < t <= t_end])
    assert 0 <= stats.max_lag < 2.0


def test_a_frame_captured_before_the_start_but_published_after_is_not_a_loss(tmp_path):
    camera = FakeCamera()
    try:
        camera.run(1, 3)
        t_captured = now()  # frame 4 is captured now but (camera latency) published after the recorder starts
        time.sleep(0.01)
        t_start = now()
        recorder = VideoRecorder(camera.buffer, tmp_path / "0.mp4", fps=camera.fps, t_start=t_start).start()
        camera.buffer.put({"color": frame(4), "timestamp": t_captured, "receive_timestamp": now(),
                           "frame_number": 4, "dropped_frames": 0})
        camera.run(5, 20)
        stats = recorder.stop()
    finally:
        camera.buffer.close()
    assert (stats.frames, stats.camera_dropped, stats.recorder_dropped) == (16, 0, 0)
    assert np.load(timestamps_path(stats.path))[0] > t_start


def test_recorder_that_falls_behind_counts_what_it_lost(tmp_path, caplog):
    camera = FakeCamera(capacity=8)
    try:
        camera.run(0, 0)  # the camera is running when the episode starts
        t_start = now()
        recorder = VideoRecorder(camera.buffer, tmp_path / "0.mp4", fps=camera.fps, t_start=t_start,
                                 poll_interval=0.05).start()
        camera.run(1, 100, burst=True)  # 100 frames at once into an 8-slot buffer
        stats = recorder.stop()
    finally:
        camera.buffer.close()
    assert stats.recorder_dropped > 0
    assert stats.frames + stats.recorder_dropped == 100  # every frame is either written or counted as lost ...
    assert "the recorder lost" in caplog.text  # ... and the loss is logged, not silent


def test_recorder_without_frames_raises(tmp_path):
    camera = FakeCamera()
    try:
        recorder = VideoRecorder(camera.buffer, tmp_path / "0.mp4", fps=30, end_grace=0.05).start()
        with pytest.raises(VideoRecordingError, match="no frames"):
            recorder.stop()
    finally:
        camera.buffer.close()
    assert list(tmp_path.iterdir()) == []


def test_an_encoder_slower_than_the_camera_spools_frames_and_loses_none(tmp_path, monkeypatch, caplog):
    """Encoding at ~25 fps behind a 60 fps camera with a 16-slot ring buffer (0.27 s of history): without the
    spool the ring buffer would overwrite most frames before they were encoded."""
    real_write = VideoWriter.write

    def slow_write(self, image, timestamp):
        time.sleep(0.04)
        real_write(self, image, timestamp)

    monkeypatch.setattr(VideoWriter, "write", slow_write)
    camera = FakeCamera(fps=60, capacity=16)
    try:
        camera.run(0, 0)
        t_start = now()
        recorder = VideoRecorder(camera.buffer, tmp_path / "0.mp4", fps=camera.fps, t_start=t_start,
                                 ram_frames=8).start()
        camera.run(1, 90)  # 1.5 s of capture, ~3.6 s of encoding
        stats = recorder.stop()
    finally:
        camera.buffer.close()
    assert (stats.frames, stats.recorder_dropped, stats.camera_dropped) == (90, 0, 0)
    assert stats.spooled > 30 and stats.max_backlog > 16  # more waited than the ring buffer could have held
    np.testing.assert_array_equal(np.load(timestamps_path(stats.path)), [t for _, t in camera.log[1:]])
    decoded = decode(stats.path)
    assert len(decoded) == 90
    for i in (0, 45, 89):  # in capture order, the spilled ones too
        assert abs(decoded[i].mean() - frame(i + 1).mean()) < 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.mp4", "0.timestamps.npy"]  # spool file removed
    assert "none lost" in caplog.text


def test_aborting_a_spooling_recorder_leaves_nothing(tmp_path, monkeypatch):
    real_write = VideoWriter.write
    monkeypatch.setattr(VideoWriter, "write", lambda self, image, t: (time.sleep(0.05), real_write(self, image, t)))
    camera = FakeCamera(fps=60, capacity=16)
    try:
        recorder = VideoRecorder(camera.buffer, tmp_path / "0.mp4", fps=camera.fps, t_start=now() - 1,
                                 ram_frames=4).start()
        camera.run(1, 40)
        assert (tmp_path / "0.mp4.spool").exists()  # frames are waiting on disk
        recorder.abort()
    finally:
        camera.buffer.close()
    assert list(tmp_path.iterdir()) == []
