"""`robot-stack eval` end to end on a simulated Push-T rig with a real (tiny, untrained) checkpoint."""

import json
import logging

import numpy as np

from robot_stack.cli import main
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.rig import load_rig


def test_eval_local_policy_records_and_reports(tmp_path, sim_rig, tiny_checkpoint, capsys):
    out = tmp_path / "eval"
    code = main(["eval", "--rig", str(sim_rig()), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--episodes", "2", "--max-duration", "2.5", "--seed", "3", "--no-preview", "--out", str(out),
                 "--json", str(tmp_path / "results.json")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "episode 0 (seed 3)" in printed and "episode 1 (seed 4)" in printed
    assert "success rate" in printed and "coverage" in printed
    results = json.loads((tmp_path / "results.json").read_text())["episodes"]
    assert [r["seed"] for r in results] == [3, 4]
    assert all(r["chunks"] >= 2 and r["executed"] > 0 and r["recorded_as"] is not None for r in results)
    with EpisodeDataset.open(out) as dataset:
        assert dataset.n_episodes == 2
        episode = dataset.replay_buffer.get_episode(1)
        assert {"action", "robot_eef_pose", "scene_coverage", "timestamp"} <= set(episode)
        assert dataset.video_path(1, 0).is_file()
        # Recorded with the policy's timing: tiny_checkpoint records none, so the original's (delay 0).
        assert dataset.timing_convention().to_dict() == {"dt": 0.1, "action_delay_steps": 0}
        assert dataset.camera_setup() == [c.frame_setup() for c in load_rig(sim_rig()).cameras]


def test_eval_takes_the_action_timing_from_the_checkpoint(tmp_path, sim_rig, tiny_checkpoint, with_convention, caplog):
    """The checkpoint's convention (dt, action delay) drives execution; without one, the original's, said so."""
    stamped = with_convention(tiny_checkpoint, tmp_path / "stamped.ckpt", dt=0.125, delay=3)
    out = tmp_path / "eval"
    caplog.set_level(logging.INFO, logger="robot_stack")
    assert main(["eval", "--rig", str(sim_rig()), "--checkpoint", str(stamped), "--device", "cpu", "--episodes", "1",
                 "--max-duration", "1.5", "--no-preview", "--out", str(out)]) == 0
    assert "dt 0.125 s, actions 3 steps after their observation" in caplog.text
    with EpisodeDataset.open(out) as dataset:
        assert dataset.timing_convention().to_dict() == {"dt": 0.125, "action_delay_steps": 3}
        assert np.allclose(np.diff(dataset.replay_buffer.get_episode(0)["timestamp"]).mean(), 0.125, atol=0.01)
    caplog.clear()
    assert main(["eval", "--rig", str(sim_rig()), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--episodes", "1", "--max-duration", "0.5", "--no-preview", "--no-record"]) == 0
    assert "records no action-timing convention: using the original Diffusion Policy's" in caplog.text


def test_eval_refuses_a_rig_whose_images_differ_from_training(tmp_path, sim_rig, tiny_checkpoint, with_convention,
                                                              capsys):
    rig = sim_rig()
    trained = [dict(c.frame_setup(), crop=[0, 0, 200, 200]) for c in load_rig(rig).cameras]
    stamped = with_convention(tiny_checkpoint, tmp_path / "cropped.ckpt", dt=0.1, delay=2, cameras=trained)
    assert main(["eval", "--rig", str(rig), "--checkpoint", str(stamped), "--device", "cpu", "--no-preview",
                 "--no-record"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "makes other images than the ones" in err and "crop [0, 0, 200, 200] in training" in err


def test_eval_unreachable_remote_is_a_clear_error(sim_rig, capsys, monkeypatch):
    import robot_stack.cli.eval as eval_cli

    monkeypatch.setattr(eval_cli, "_SERVER_WAIT_S", 1.0)
    code = main(["eval", "--rig", str(sim_rig()), "--remote", "tcp://127.0.0.1:9", "--no-preview",
                 "--no-record"])
    assert code == 2
    assert "no policy server answers at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_eval_rig_without_the_policys_camera_is_a_clear_error(sim_rig, tiny_checkpoint, capsys):
    code = main(["eval", "--rig", str(sim_rig(cameras=[])), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--no-preview", "--no-record"])
    assert code == 2
    assert "the policy observes 'camera_0' but the rig has cameras []" in capsys.readouterr().err


def test_eval_stops_when_its_policy_process_dies(sim_rig, capsys, monkeypatch):
    import robot_stack.server.local as local
    from server_fakes import DyingCheckpointService

    monkeypatch.setattr(local, "CheckpointService", DyingCheckpointService)
    code = main(["eval", "--rig", str(sim_rig()), "--checkpoint", "any.ckpt", "--episodes", "3",
                 "--max-duration", "5", "--no-preview", "--no-record"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == "robot-stack eval: process 'policy': exited unexpectedly with code 3\n"
    assert "success rate" not in captured.out


def test_eval_warns_when_its_seeds_were_trained_on(sim_rig, tmp_path, tiny_checkpoint, caplog):
    import torch

    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["train_state"]["scene_seeds"] = [100000, 100001, 5]
    trained = tmp_path / "trained.ckpt"
    torch.save(payload, trained)
    assert main(["eval", "--rig", str(sim_rig()), "--checkpoint", str(trained), "--device", "cpu", "--episodes", "1",
                 "--max-duration", "1", "--no-preview", "--no-record"]) == 0
    assert "1 of the evaluation seeds were trained on (100000)" in caplog.text
