"""Dataset reading: sequence windows with edge padding, frame cache and alignment, split, errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from robot_stack.policy.dataset import SequenceDataset, load_replay_data, split_episodes
from robot_stack.policy.frame_cache import DatasetError
from robot_stack.policy.sequence_sampler import SequenceSampler


def test_sequence_windows_pad_at_episode_edges() -> None:
    sampler = SequenceSampler(np.array([5, 12]), episodes=[0, 1], horizon=4, pad_before=1, pad_after=2)
    windows = [sampler.indices(i).tolist() for i in range(len(sampler))]
    # episode 0 = steps 0..4: starts -1..3 -> 5 windows; episode 1 = steps 5..11: starts -1..5 -> 7 windows
    assert len(windows) == 12
    assert windows[0] == [0, 0, 1, 2]  # first step repeated before the episode
    assert windows[4] == [3, 4, 4, 4]  # last step repeated after it
    assert windows[5] == [5, 5, 6, 7]  # never crosses into the previous episode
    assert windows[-1] == [10, 11, 11, 11]
    only_second = SequenceSampler(np.array([5, 12]), episodes=[1], horizon=4, pad_before=1, pad_after=2)
    assert len(only_second) == 7 and only_second.indices(0).tolist() == [5, 5, 6, 7]
    assert sampler.too_short == []
    short = SequenceSampler(np.array([2, 12]), episodes=[0, 1], horizon=6, pad_before=1, pad_after=2)
    assert short.too_short == [0] and len(short) == 10 - 6 + 3 + 1  # only episode 1's windows


def test_samples_have_policy_shapes_and_values(line_dataset: Path, tiny_config, frame_renderer, tmp_path: Path) -> None:
    cfg = tiny_config().policy
    data = load_replay_data(line_dataset, cfg, cache_dir=tmp_path / "cache", show_progress=False)
    ds = SequenceDataset(data, cfg, episodes=[0, 2])
    item = ds[0]
    assert item["obs"]["camera_0"].shape == (cfg.n_obs_steps, 3, 32, 32)
    assert item["obs"]["robot_eef_pose"].shape == (cfg.n_obs_steps, 2)  # leading 2 of the stored 6
    assert item["action"].shape == (cfg.horizon, 2)
    assert 0.0 <= item["obs"]["camera_0"].min() and item["obs"]["camera_0"].max() <= 1.0
    raw = zarr.open_group(str(line_dataset / "replay_buffer.zarr"), mode="r")
    pose, action = raw["data/robot_eef_pose"][:], raw["data/action"][:]
    # window 0 starts one step before episode 0: first observation and action repeat step 0
    assert np.allclose(item["obs"]["robot_eef_pose"].numpy(), pose[[0, 0], :2])
    assert np.allclose(item["action"].numpy(), action[[0, 0, *range(1, cfg.horizon - 1)], :2])
    # the decoded frame shows the square where the pose says (lossy video: compare loosely)
    frame = item["obs"]["camera_0"][1].permute(1, 2, 0).numpy() * 255
    assert np.abs(frame - frame_renderer(pose[0])).mean() < 3
    assert np.abs(frame - frame_renderer(-pose[0])).mean() > 2 * np.abs(frame - frame_renderer(pose[0])).mean()


def test_a_gathered_batch_equals_the_collated_samples(line_dataset: Path, tiny_config, tmp_path: Path) -> None:
    from torch.utils.data import default_collate

    cfg = tiny_config().policy
    ds = SequenceDataset(load_replay_data(line_dataset, cfg, cache_dir=tmp_path / "cache", show_progress=False),
                         cfg, episodes=[0, 2, 3])
    ids = np.random.default_rng(0).permutation(len(ds))[:11]  # edge-padded windows among them
    batch, collated = ds.get_batch(ids), default_collate([ds[i] for i in ids])
    assert batch.keys() == collated.keys() and batch["obs"].keys() == collated["obs"].keys()
    for key in batch["obs"]:
        assert batch["obs"][key].dtype == collated["obs"][key].dtype
        assert torch.equal(batch["obs"][key], collated["obs"][key]), key
    assert torch.equal(batch["action"], collated["action"])


def test_frames_are_aligned_by_timestamps(tmp_path: Path, tiny_config, dataset_writer, make_line_episodes, frame_renderer) -> None:
    """Videos at twice the step rate with timestamps: each step gets the frame nearest its time."""
    episodes = make_line_episodes(n=2, length=6)  # fast motion: a frame off by one step is clearly wrong
    root = dataset_writer(tmp_path / "ds", episodes, cameras=(0,), frame_timestamps=True)
    cfg = tiny_config().policy
    data = load_replay_data(root, cfg, show_progress=False)
    frames = np.load(data.frame_files["camera_0"])
    poses = np.concatenate([ep["robot_eef_pose"] for ep in episodes])
    assert frames.shape == (12, 32, 32, 3)
    errors = [np.abs(frames[i].astype(float) - frame_renderer(poses[i])).mean() for i in range(12)]
    assert max(errors) < 2.5  # video compression noise is ~1; a misaligned frame is > 4


def test_original_datasets_match_frames_to_steps_by_container_time(tmp_path: Path, tiny_config, make_line_episodes,
                                                                   frame_renderer, original_layout_writer) -> None:
    """30 fps videos, 10 Hz steps, no timestamps file: step k takes frame 3k (the frame at its time), not k."""
    episodes = make_line_episodes(n=2, length=8)
    root = original_layout_writer(tmp_path / "original", episodes)
    data = load_replay_data(root, tiny_config().policy, show_progress=False)
    frames = np.load(data.frame_files["camera_0"])
    poses = np.concatenate([ep["robot_eef_pose"] for ep in episodes])
    assert frames.shape == (16, 32, 32, 3)
    errors = [np.abs(frames[i].astype(float) - frame_renderer(poses[i])).mean() for i in range(16)]
    assert max(errors) < 2.5  # compression noise is ~1; frame k instead of 3k is far off for steps >= 2
    # Frame i for step i (the old rule) would show the first third of each episode: clearly different.
    assert np.abs(frames[7].astype(float) - frame_renderer(poses[7 // 3])).mean() > 2 * errors[7]


def test_videos_without_a_time_base_are_refused(tmp_path: Path, tiny_config, make_line_episodes,
                                                original_layout_writer) -> None:
    root = original_layout_writer(tmp_path / "untimed", make_line_episodes(n=2, length=8), timestamps=False)
    with pytest.raises(DatasetError, match="no data/timestamp, so there is no time base"):
        load_replay_data(root, tiny_config().policy, show_progress=False)


def test_steps_without_a_nearby_frame_are_reported(tmp_path: Path, tiny_config, dataset_writer, make_line_episodes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    root = dataset_writer(tmp_path / "ds", make_line_episodes(n=1, length=6), cameras=(0,), frame_timestamps=True)
    ts_file = root / "videos" / "0" / "0.timestamps.npy"
    frame_ts = np.load(ts_file)
    frame_ts[6:] += 5.0  # the camera stalled: frames of steps 3-5 come late; step 3 still has frame 5 near
    np.save(ts_file, frame_ts)
    with caplog.at_level("WARNING"):
        load_replay_data(root, tiny_config().policy, show_progress=False)
    assert "2 of 6 steps have no frame within 1.5 frame periods" in caplog.text


def test_frame_cache_is_built_once_and_rebuilt_on_change(tmp_path: Path, tiny_config, dataset_writer, make_line_episodes) -> None:
    root = dataset_writer(tmp_path / "ds", make_line_episodes(n=2, length=10), cameras=(0,))
    cfg = tiny_config().policy
    first = load_replay_data(root, cfg, show_progress=False).frame_files["camera_0"]
    assert first.parent == root / "cache" and first.is_file()
    stamp = first.stat().st_mtime_ns
    again = load_replay_data(root, cfg, show_progress=False).frame_files["camera_0"]
    assert again == first and again.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in first.parent.iterdir() if ".tmp" in p.name]  # no temp files left behind
    other_size = load_replay_data(root, tiny_config(image_size=[40, 40]).policy, show_progress=False).frame_files["camera_0"]
    assert other_size != first and np.load(other_size, mmap_mode="r").shape[1:3] == (40, 40)
    video = root / "videos" / "1" / "0.mp4"
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))  # re-recorded episode
    assert load_replay_data(root, cfg, show_progress=False).frame_files["camera_0"] != first


def test_split_is_by_episode_and_reproducible() -> None:
    train, val = split_episodes(20, val_ratio=0.2, seed=3)
    assert len(val) == 4 and len(train) == 16 and not set(train) & set(val)
    assert sorted(train + val) == list(range(20))
    assert split_episodes(20, 0.2, seed=3) == (train, val)
    assert split_episodes(20, 0.2, seed=4) != (train, val)
    assert split_episodes(3, 0.1, seed=0)[1] != []  # at least one validation episode
    assert split_episodes(1, 0.5, seed=0) == ([0], [])  # but never the only one
    assert len(split_episodes(20, 0.2, seed=3, max_train_episodes=5)[0]) == 5


def test_dataset_errors_name_what_to_fix(tmp_path: Path, tiny_config, dataset_writer, make_line_episodes, line_dataset: Path) -> None:
    cfg = tiny_config().policy
    with pytest.raises(DatasetError, match="no replay buffer"):
        load_replay_data(tmp_path / "nowhere", cfg)
    with pytest.raises(DatasetError, match="no array data/gripper"):
        load_replay_data(line_dataset, tiny_config(low_dim=[{"key": "gripper", "dims": 1}]).policy, tmp_path / "c1")
    with pytest.raises(DatasetError, match="6 columns; the config uses 7"):
        load_replay_data(line_dataset, tiny_config(action=[{"key": "action", "dims": 7}]).policy, tmp_path / "c2")
    root = tmp_path / "ds"
    shutil.copytree(line_dataset, root, ignore=shutil.ignore_patterns("cache"))
    (root / "videos" / "3" / "0.mp4").unlink()
    with pytest.raises(DatasetError, match=r"missing video file.*videos/3/0.mp4"):
        load_replay_data(root, cfg)
    (root / "videos" / "3" / "0.mp4").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match="cannot decode video"):
        load_replay_data(root, cfg, show_progress=False)
    assert not list((root / "cache").glob("*.npy"))  # failed build leaves no cache behind
