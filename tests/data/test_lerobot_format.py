"""LeRobotDataset v3.0 export and import (robot_stack.data.lerobot_format) on a dataset recorded by
lockstep collection: 2 episodes, two cameras at 30 fps with capture timestamps, steps at 10 Hz,
2-D, bool and int arrays, the recorded camera setup, timing convention and seeds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from robot_stack.data.check import check_dataset
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.lerobot_format import SIDECAR, LeRobotFormatError, export_lerobot, import_lerobot
from robot_stack.data.step_frames import episode_step_frames

TASK = "Push the T block onto the target"
# Mean absolute difference (0-255 levels) one extra H.264 generation may add to a step's frame.
CODEC_TOLERANCE = 2.0


@pytest.fixture(scope="module")
def exported(recorded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "demos_lerobot"
    export_lerobot(recorded, out, task=TASK, show_progress=False)
    return out


def _step_frames(dataset: EpisodeDataset, episode: int, camera: int) -> np.ndarray:
    steps = np.asarray(dataset.replay_buffer.get_episode(episode, ["timestamp"])["timestamp"], np.float64)
    return episode_step_frames(dataset.video_path(episode, camera), dataset.timestamps_path(episode, camera), steps)


def _frame_error(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_export_writes_lerobots_v3_layout_with_the_standard_feature_names(recorded: Path, exported: Path) -> None:
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["total_episodes"] == 2
    features = info["features"]
    for name in ("observation.images.top", "observation.images.oblique", "observation.state", "action",
                 "timestamp", "episode_index", "frame_index", "index", "task_index", "observation.timestamp"):
        assert name in features, name
    assert features["observation.images.top"]["dtype"] == "video"
    assert features["observation.images.top"]["shape"] == [96, 96, 3]  # the rig crops the table, as recorded
    assert features["observation.images.oblique"]["shape"] == [240, 320, 3]
    assert features["observation.state"] == {"dtype": "float64", "shape": [6],
                                             "names": ["x", "y", "z", "rx", "ry", "rz"]}
    assert features["observation.scene_keypoints"]["shape"] == [18]  # (9, 2) flattened

    with EpisodeDataset.open(recorded) as source:
        buffer = source.replay_buffer
        n = buffer.n_steps
        assert info["total_frames"] == n
        data = pq.read_table(exported / "data/chunk-000/file-000.parquet")
        assert data.num_rows == n
        np.testing.assert_array_equal(data.column("index").to_numpy(), np.arange(n))
        frame_index = data.column("frame_index").to_numpy()
        np.testing.assert_allclose(data.column("timestamp").to_numpy(), frame_index / 10, atol=1e-6)
        state = np.asarray(data.column("observation.state").combine_chunks().flatten().to_numpy()).reshape(n, 6)
        np.testing.assert_array_equal(state, buffer["robot_eef_pose"][:])
        np.testing.assert_array_equal(data.column("observation.timestamp").to_numpy(), buffer["timestamp"][:])

        episodes = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
        lengths = buffer.episode_lengths
        assert [e["length"] for e in episodes] == lengths.tolist()
        assert episodes[1]["dataset_from_index"] == lengths[0] and episodes[1]["dataset_to_index"] == n
        # Both episodes share one video file per camera; the second starts where the first ends.
        assert episodes[1]["videos/observation.images.top/from_timestamp"] == pytest.approx(lengths[0] / 10)
        assert all(e["tasks"] == [TASK] for e in episodes)

    tasks = pd.read_parquet(exported / "meta/tasks.parquet")
    assert tasks.loc[TASK, "task_index"] == 0
    stats = json.loads((exported / "meta/stats.json").read_text())
    assert np.array(stats["observation.images.top"]["mean"]).shape == (3, 1, 1)
    assert 0 < np.min(stats["observation.images.top"]["mean"]) < 1
    assert len(stats["action"]["mean"]) == 6 and stats["action"]["count"] == [n]


def test_exported_videos_hold_the_frame_training_uses_for_each_step(recorded: Path, exported: Path) -> None:
    import av

    with EpisodeDataset.open(recorded) as source:
        lengths = source.replay_buffer.episode_lengths
        with av.open(str(exported / "videos/observation.images.oblique/chunk-000/file-000.mp4")) as container:
            video = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(video) == lengths.sum()  # one frame per step, not the camera's 30 fps
        for episode, start in ((0, 0), (1, int(lengths[0]))):
            wanted = _step_frames(source, episode, 1)
            got = np.stack(video[start:start + len(wanted)])
            assert _frame_error(got, wanted) < CODEC_TOLERANCE
            # and not merely similar images: a frame one step away is measurably further off
            assert _frame_error(got[1:], wanted[:-1]) > _frame_error(got, wanted)


def test_round_trip_preserves_every_array_attribute_and_step_frame(recorded: Path, exported: Path,
                                                                  tmp_path: Path) -> None:
    back = tmp_path / "demos_again"
    summary = import_lerobot(exported, back, show_progress=False)
    assert summary.from_robot_stack and summary.episodes == 2
    assert check_dataset(back).ok
    with EpisodeDataset.open(recorded) as a, EpisodeDataset.open(back) as b:
        ra, rb = a.replay_buffer, b.replay_buffer
        assert sorted(ra.keys()) == sorted(rb.keys())
        np.testing.assert_array_equal(ra.episode_ends, rb.episode_ends)
        for key in ra.keys():
            assert rb[key].dtype == ra[key].dtype and rb[key].shape == ra[key].shape, key
            np.testing.assert_array_equal(rb[key][:], ra[key][:], err_msg=key)
        assert dict(rb.attrs) == dict(ra.attrs)
        assert b.camera_setup() == a.camera_setup() and b.timing_convention() == a.timing_convention()
        assert b.episode_seeds() == a.episode_seeds()
        for episode in range(2):
            for camera in range(2):
                # two codec generations (export, import) against the original recording
                assert _frame_error(_step_frames(b, episode, camera), _step_frames(a, episode, camera)) < 2 * CODEC_TOLERANCE


def test_a_lerobot_dataset_of_another_stack_imports_with_plain_names_and_no_assumed_convention(
        recorded: Path, exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    foreign = tmp_path / "foreign"
    shutil.copytree(exported, foreign)
    (foreign / SIDECAR).unlink()  # what LeRobot's own recorder writes has no robot_stack sidecar
    summary = import_lerobot(foreign, tmp_path / "imported", show_progress=False)
    assert not summary.from_robot_stack and summary.cameras == ("observation.images.top", "observation.images.oblique")
    with EpisodeDataset.open(tmp_path / "imported") as dataset:
        buffer = dataset.replay_buffer
        assert {"state", "action", "scene_keypoints", "timestamp", "observation_timestamp"} <= set(buffer.keys())
        assert buffer["scene_keypoints"].shape[1:] == (18,)  # LeRobot's shape: flat
        assert buffer["scene_success"].dtype == np.bool_ and buffer["scene_success"].ndim == 1
        # the step time is LeRobot's timestamp (seconds since the episode's start)
        np.testing.assert_allclose(buffer.get_episode(1, ["timestamp"])["timestamp"][:3], [0.0, 0.1, 0.2], atol=1e-6)
        assert [c["name"] for c in dataset.camera_setup()] == ["top", "oblique"]
        assert buffer.attrs["lerobot"]["tasks"] == {"0": [TASK], "1": [TASK]}
        caplog.set_level("INFO")
        timing = dataset.timing_convention()
        assert not timing.recorded and timing.action_delay_steps == 0 and timing.dt == pytest.approx(0.1)
        assert "records no action-timing convention" in caplog.text
        with EpisodeDataset.open(recorded) as original:
            # the step times are LeRobot's (from 0), the frames still the ones the original's steps used
            assert _frame_error(_step_frames(dataset, 1, 1), _step_frames(original, 1, 1)) < 2 * CODEC_TOLERANCE


def test_bad_inputs_are_refused_with_one_line(recorded: Path, exported: Path, tmp_path: Path, cli) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("")
    result = cli.run("dataset", "export", str(recorded), "--format", "lerobot", "--out", str(taken))
    cli.one_line_error(result, 2, "already exists")
    result = cli.run("dataset", "import", str(recorded), "--out", str(tmp_path / "new"))
    cli.one_line_error(result, 2, "not a LeRobot dataset", "meta/info.json")
    old = tmp_path / "old"
    shutil.copytree(exported, old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    result = cli.run("dataset", "import", str(old), "--out", str(tmp_path / "new"))
    cli.one_line_error(result, 2, "v2.1", "convert_dataset_v21_to_v30")
    assert not (tmp_path / "new").exists()
    EpisodeDataset.open(tmp_path / "empty", "a").close()
    with pytest.raises(LeRobotFormatError, match="no complete episodes"):
        export_lerobot(tmp_path / "empty", tmp_path / "out2")


def test_the_cli_round_trip(recorded: Path, tmp_path: Path, cli) -> None:
    result = cli.run("dataset", "export", str(recorded), "--format", "lerobot", "--out", str(tmp_path / "lr"),
                     "--task", TASK)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exported 2 episodes" in result.stdout
    result = cli.run("dataset", "import", str(tmp_path / "lr"), "--out", str(tmp_path / "back"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "imported 2 episodes" in result.stdout
    assert check_dataset(tmp_path / "back").ok


def test_lerobots_own_loader_reads_the_export(recorded: Path, exported: Path) -> None:
    """Runs where the lerobot package is installed (not in CI: it needs torchvision and torchcodec)."""
    lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    dataset = lerobot_dataset.LeRobotDataset("local/robot_stack_export", root=exported)
    with EpisodeDataset.open(recorded) as source:
        lengths = source.replay_buffer.episode_lengths
        assert len(dataset) == lengths.sum() and dataset.num_episodes == 2 and dataset.fps == 10
        step = int(lengths[0]) + 7  # episode 1, step 7
        sample = dataset[step]
        assert sample["task"] == TASK and int(sample["episode_index"]) == 1 and int(sample["frame_index"]) == 7
        np.testing.assert_allclose(sample["observation.state"].numpy(), source.replay_buffer["robot_eef_pose"][step],
                                   rtol=1e-6)
        image = (sample["observation.images.top"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        assert _frame_error(image[None], _step_frames(source, 1, 0)[7:8]) < CODEC_TOLERANCE


def test_a_dataset_written_by_lerobots_own_recorder_imports_as_lerobot_reads_it(tmp_path: Path) -> None:
    """``fixtures/lerobot_native``: written by LeRobot 0.4.4's ``LeRobotDataset.create/add_frame/save_episode``
    (AV1 video at 15 fps, float32 joint state, a task per episode); the expected values are what LeRobot's own
    loader returned for it (``fixtures/make_lerobot_native.py``)."""
    fixtures = Path(__file__).parent / "fixtures"
    expected = np.load(fixtures / "lerobot_native_expected.npz")
    summary = import_lerobot(fixtures / "lerobot_native", tmp_path / "native", show_progress=False)
    assert summary.episodes == 2 and summary.steps == 45 and summary.cameras == ("observation.images.front",)
    assert check_dataset(tmp_path / "native").ok
    with EpisodeDataset.open(tmp_path / "native") as dataset:
        buffer = dataset.replay_buffer
        assert sorted(buffer.keys()) == ["action", "state", "timestamp"]
        assert buffer["state"].dtype == np.float32
        np.testing.assert_array_equal(buffer["state"][:], expected["state"])
        np.testing.assert_array_equal(buffer.episode_lengths, [20, 25])
        np.testing.assert_allclose(buffer.get_episode(1, ["timestamp"])["timestamp"][:2], [0.0, 1 / 15], atol=1e-6)
        assert buffer.attrs["lerobot"]["tasks"] == {"0": ["task 0"], "1": ["task 1"]}
        assert dataset.camera_setup()[0]["resolution"] == [128, 96]
        frames = np.concatenate([_step_frames(dataset, e, 0) for e in range(2)])
        for frame_id, lerobot_frame in zip(expected["frame_ids"], expected["frames"]):
            assert _frame_error(frames[frame_id], lerobot_frame) < CODEC_TOLERANCE, frame_id
            # the moving square makes each step's frame distinct from its neighbour's
            neighbour = frame_id + 1 if frame_id + 1 < len(frames) else frame_id - 1
            assert _frame_error(frames[neighbour], lerobot_frame) > 2 * CODEC_TOLERANCE, frame_id
