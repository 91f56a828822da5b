"""`robot-stack collect --lockstep`: the runtime's dataset (layout, keys, timing convention, videos with
timestamps, seeds), recorded in simulated time, identical whichever worker recorded an episode."""

import numpy as np
import pytest

from robot_stack.cli import main
from robot_stack.data.collection import ACTION_DELAY_STEPS
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.sim.pusht import SCENE_STATE_SPEC

RUNTIME_KEYS = {"timestamp", "action", "robot_eef_pose", "robot_eef_pose_vel", "robot_joint", "robot_joint_vel",
                *(f"scene_{k}" for k in SCENE_STATE_SPEC if k != "timestamp")}


def _collect(rig, out, workers: int, episodes: int = 2) -> int:
    return main(["collect", "--rig", str(rig), "--teleop", "scripted", "--lockstep", "--workers", str(workers),
                 "--episodes", str(episodes), "--max-duration", "3", "--keep-failed", "--seed", "5",
                 "--out", str(out), "--no-preview"])


def test_lockstep_demos_are_the_runtime_dataset(sim_rig, tmp_path, capsys):
    rig = sim_rig(camera={"resolution": [96, 96], "fps": 10})
    assert _collect(rig, tmp_path / "one", workers=1) == 0
    assert "2 episode(s) saved this session" in capsys.readouterr().out
    with EpisodeDataset.open(tmp_path / "one") as dataset:
        assert dataset.n_episodes == 2 and dataset.episode_seeds() == {0: 5, 1: 6}
        episode = dataset.replay_buffer.get_episode(0)
        assert set(episode) == RUNTIME_KEYS
        steps = len(episode["timestamp"])
        assert 29 <= steps <= 32 and np.allclose(np.diff(episode["timestamp"]), 0.1, atol=0.005)
        # The timing convention: the action of step i is the target the arm reaches about two steps later.
        action, pose = episode["action"][:, :2], episode["robot_eef_pose"][:, :2]
        moving = np.linalg.norm(np.diff(action, axis=0), axis=1) > 1e-4
        assert moving.sum() > 10
        later = np.linalg.norm(pose[ACTION_DELAY_STEPS:] - action[:-ACTION_DELAY_STEPS], axis=1)
        now = np.linalg.norm(pose - action, axis=1)[:-ACTION_DELAY_STEPS]
        assert later[moving[:-1]].mean() < 0.5 * now[moving[:-1]].mean()
        # One video per camera with a capture time per frame, inside the episode, at the camera's rate.
        times = dataset.video_timestamps(0, 0)
        assert episode["timestamp"][0] - 0.1 <= times[0] and times[-1] <= episode["timestamp"][-1]
        assert abs(len(times) - 10 * (episode["timestamp"][-1] - episode["timestamp"][0])) <= 2
        one = [dataset.replay_buffer.get_episode(i) for i in range(2)]

    # Two workers record the same episodes, byte for byte.
    assert _collect(rig, tmp_path / "two", workers=2) == 0
    with EpisodeDataset.open(tmp_path / "two") as dataset:
        for i in range(2):
            two = dataset.replay_buffer.get_episode(i)
            assert all(np.array_equal(one[i][k], two[k]) for k in RUNTIME_KEYS)
        assert np.array_equal(dataset.video_timestamps(1, 0), EpisodeDataset.open(tmp_path / "one").video_timestamps(1, 0))
    assert not (tmp_path / "two" / "videos" / ".lockstep").exists()


def test_lockstep_collection_needs_the_scripted_expert_and_a_count(sim_rig, tmp_path, capsys):
    rig = str(sim_rig())
    assert main(["collect", "--rig", rig, "--teleop", "keyboard", "--lockstep", "--episodes", "1",
                 "--out", str(tmp_path / "d"), "--no-preview"]) == 2
    assert main(["collect", "--rig", rig, "--teleop", "scripted", "--lockstep", "--out", str(tmp_path / "d"),
                 "--no-preview"]) == 2
    err = capsys.readouterr().err
    assert "--lockstep needs --episodes N" in err


def test_the_camera_setup_is_recorded_and_never_mixed(sim_rig, tmp_path, capsys):
    small = sim_rig(camera={"resolution": [96, 96], "fps": 10})
    assert _collect(small, tmp_path / "d", workers=1, episodes=1) == 0
    with EpisodeDataset.open(tmp_path / "d") as dataset:
        (top,) = dataset.camera_setup()
        timing = dataset.timing_convention()
    assert top == {"name": "top", "driver": "sim", "resolution": [96, 96], "crop": None, "image_size": [96, 96],
                   "fps": 10}
    assert timing.to_dict() == {"dt": 0.1, "action_delay_steps": ACTION_DELAY_STEPS} and timing.recorded
    cropped = sim_rig(camera={"resolution": [96, 96], "fps": 10, "crop": [8, 8, 80, 80]})
    assert _collect(cropped, tmp_path / "d", workers=1, episodes=1) == 2
    assert "was recorded with cameras" in capsys.readouterr().err
    with EpisodeDataset.open(tmp_path / "d") as dataset:
        assert dataset.n_episodes == 1


def test_finish_coverage_makes_the_expert_finish_tighter(tmp_path, capsys):
    """--finish-coverage: the expert keeps refining past the scene's success, and episodes end only then."""
    out = tmp_path / "tight"
    assert main(["collect", "--rig", "sim_pusht_state", "--teleop", "scripted", "--lockstep", "--workers", "1",
                 "--episodes", "2", "--finish-coverage", "0.985", "--out", str(out), "--no-preview"]) == 0
    with EpisodeDataset.open(out) as dataset:
        for i in range(2):
            coverage = dataset.replay_buffer.get_episode(i)["scene_goal_coverage"]
            # The scene's own success (IoU 0.9 = 94.7 % covered) came first and did not end the episode.
            assert coverage[-1] >= 0.985 and np.argmax(coverage >= 0.95) < len(coverage) - 5
    assert main(["collect", "--rig", "sim_pusht_state", "--teleop", "scripted", "--lockstep", "--episodes", "1",
                 "--finish-coverage", "1.2", "--out", str(tmp_path / "bad"), "--no-preview"]) == 2
    assert "finish coverage must be in (0, 1]" in capsys.readouterr().err


def test_episodes_of_another_timing_convention_are_never_mixed(sim_rig, tmp_path, capsys):
    """A dataset that records no convention (the original's: delay 0) or another one is not appended to."""
    rig = sim_rig(camera={"resolution": [96, 96], "fps": 10})
    assert _collect(rig, tmp_path / "d", workers=1, episodes=1) == 0
    with EpisodeDataset.open(tmp_path / "d", "a") as dataset:
        del dataset.replay_buffer.attrs["timing_convention"]  # as the original's recorder leaves it
        assert dataset.timing_convention().to_dict() == {"dt": pytest.approx(0.1), "action_delay_steps": 0}
    assert _collect(rig, tmp_path / "d", workers=1, episodes=1) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "recorded with timing convention none noted (the original's: delay 0)" in err
    assert main(["collect", "--rig", str(rig), "--teleop", "scripted", "--lockstep", "--episodes", "1",
                 "--frequency", "5", "--max-duration", "3", "--keep-failed", "--out", str(tmp_path / "e"),
                 "--no-preview"]) == 0
    assert _collect(rig, tmp_path / "e", workers=1, episodes=1) == 2  # 10 Hz onto 5 Hz episodes
    assert "{'dt': 0.2, 'action_delay_steps': 2}" in capsys.readouterr().err
    with EpisodeDataset.open(tmp_path / "e") as dataset:
        assert dataset.n_episodes == 1
