"""`robot-stack collect --lockstep`: the runtime's dataset (layout, keys, timing convention, videos with
timestamps, seeds), recorded in simulated time, identical whichever worker recorded an episode."""

import numpy as np

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
    assert top == {"name": "top", "driver": "sim", "resolution": [96, 96], "crop": None, "image_size": [96, 96],
                   "fps": 10}
    cropped = sim_rig(camera={"resolution": [96, 96], "fps": 10, "crop": [8, 8, 80, 80]})
    assert _collect(cropped, tmp_path / "d", workers=1, episodes=1) == 2
    assert "was recorded with cameras" in capsys.readouterr().err
    with EpisodeDataset.open(tmp_path / "d") as dataset:
        assert dataset.n_episodes == 1
