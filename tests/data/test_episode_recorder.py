"""EpisodeRecorder + EpisodeDataset: episodes with videos, discard, drop, failures and leftovers."""

from __future__ import annotations

import errno
import logging

import numpy as np
import pytest
import zarr.storage._local as zarr_local

from dataset_checks import assert_video_matches
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.episode_recorder import CameraStream, EpisodeRecorder
from robot_stack.data.replay_buffer import EpisodeWriteError, ReplayBufferError
from robot_stack.data.timing_convention import TimingConvention
from robot_stack.runtime import now, precise_wait


def record(recorder: EpisodeRecorder, n_steps: int, dt: float = 0.05, seed: int = 0):
    """Record ``n_steps`` steps at ``dt`` with content derived from ``seed``; returns (t_start, steps)."""
    t_start = now()
    recorder.start(t_start)
    steps = []
    for i in range(n_steps):
        precise_wait(t_start + (i + 1) * dt)
        step = {"timestamp": np.float64(now()), "action": np.full(6, seed + i, np.float64),
                "robot_eef_pose": np.full(6, -seed - i, np.float64)}
        recorder.add_step(step)
        steps.append(step)
    return t_start, steps


def test_episodes_with_videos_discard_and_drop(tmp_path, sim_camera):
    dataset = EpisodeDataset.open(tmp_path / "ds", mode="a")
    recorder = EpisodeRecorder(dataset, [CameraStream(sim_camera.frames, 30.0)])
    t0, steps0 = record(recorder, 10, seed=0)
    saved = recorder.stop()
    assert (saved.index, saved.steps) == (0, 10) and saved.videos[0].frames > 0
    record(recorder, 5, seed=100)
    recorder.discard()  # the operator throws this one away while recording
    assert not (dataset.video_root / ".staging").exists()
    t2, steps2 = record(recorder, 8, seed=200)
    assert recorder.stop().index == 1
    record(recorder, 4, seed=300)
    assert recorder.stop().index == 2
    assert dataset.drop_last_episode() == 2  # "discard last" after saving
    dataset.close()

    with EpisodeDataset.open(tmp_path / "ds") as ds:
        assert ds.n_episodes == 2
        assert sorted(p.name for p in ds.video_root.iterdir()) == ["0", "1"]
        for index, (t_start, steps) in enumerate([(t0, steps0), (t2, steps2)]):
            ep = ds.replay_buffer.get_episode(index)
            np.testing.assert_array_equal(ep["action"], np.stack([s["action"] for s in steps]))
            np.testing.assert_array_equal(ep["timestamp"], [s["timestamp"] for s in steps])
            assert_video_matches(ds.video_path(index, 0), t_start, float(ep["timestamp"][-1]), 30.0)


def test_step_schema_must_not_change(tmp_path):
    recorder = EpisodeRecorder(EpisodeDataset.open(tmp_path / "ds", mode="a"))
    recorder.start()
    recorder.add_step({"timestamp": 0.0, "action": np.zeros(6)})
    with pytest.raises(ValueError, match="changed within an episode"):
        recorder.add_step({"timestamp": 0.1, "action": np.zeros(7)})
    assert recorder.stop() is not None  # the good step is still saved
    recorder.start()
    assert recorder.stop() is None  # no steps, nothing saved
    assert recorder.dataset.n_episodes == 1


def test_disk_full_when_saving_loses_only_that_episode(tmp_path, sim_camera, monkeypatch):
    dataset = EpisodeDataset.open(tmp_path / "ds", mode="a")
    recorder = EpisodeRecorder(dataset, [CameraStream(sim_camera.frames, 30.0)])
    record(recorder, 6, seed=0)
    recorder.stop()
    record(recorder, 6, seed=50)
    original = zarr_local._put

    def full(path, value, exclusive=False):
        if "meta/episode_ends" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, value, exclusive)

    monkeypatch.setattr(zarr_local, "_put", full)
    with pytest.raises(EpisodeWriteError, match="disk full"):
        recorder.stop()
    monkeypatch.setattr(zarr_local, "_put", original)
    assert not recorder.recording and dataset.n_episodes == 1
    assert sorted(p.name for p in dataset.video_root.iterdir()) == ["0"]  # its videos went too
    record(recorder, 6, seed=60)  # space freed: recording goes on
    assert recorder.stop().index == 1
    np.testing.assert_array_equal(dataset.replay_buffer.get_episode(1)["action"][:, 0], 60 + np.arange(6))


def test_reopening_removes_videos_of_unsaved_episodes(tmp_path, caplog):
    root = tmp_path / "ds"
    with EpisodeDataset.open(root, mode="a") as ds:
        ds.commit_episode({"timestamp": np.arange(3.0)})
        (ds.video_root / "0").mkdir()
        (ds.video_root / "0" / "0.mp4").write_bytes(b"kept")
        ds.new_staging_dir()  # a crash while recording
        (ds.video_root / "1").mkdir()  # a crash between the video rename and the data commit
    with EpisodeDataset.open(root) as ds:  # read-only: nothing touched
        assert (ds.video_root / "1").exists()
    caplog.set_level(logging.WARNING)
    with EpisodeDataset.open(root, mode="r+") as ds:
        assert sorted(p.name for p in ds.video_root.iterdir()) == ["0"]
        assert ds.video_path(0, 0).read_bytes() == b"kept"
    assert "left by an episode that was not saved" in caplog.text


def test_an_episode_whose_video_is_missing_or_unfinished_is_refused(tmp_path):
    root = tmp_path / "ds"
    cameras = [{"name": n, "driver": "sim", "resolution": [32, 32], "crop": None, "image_size": [32, 32], "fps": 10}
               for n in ("top", "side")]
    with EpisodeDataset.open(root, mode="a") as ds:
        ds.record_setup(cameras, TimingConvention(0.1, 2))
        staging = ds.new_staging_dir()
        (staging / "0.mp4").write_bytes(b"video of camera 0")
        with pytest.raises(ReplayBufferError, match=r"no video \['1.mp4'\] for the dataset's cameras"):
            ds.commit_episode({"timestamp": np.arange(3.0)}, videos=staging)
        (staging / "1.mp4.partial").write_bytes(b"half")
        with pytest.raises(ReplayBufferError, match="never finished"):
            ds.commit_episode({"timestamp": np.arange(3.0)}, videos=staging)
        assert ds.n_episodes == 0 and not ds.episode_dir(0).exists()
        (staging / "1.mp4.partial").rename(staging / "1.mp4")
        assert ds.commit_episode({"timestamp": np.arange(3.0)}, videos=staging) == 0
