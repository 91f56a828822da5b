"""`robot-stack eval` end to end on a simulated Push-T rig with a real (tiny, untrained) checkpoint."""

import json
from pathlib import Path

import yaml

from robot_stack.cli import main
from robot_stack.data.dataset import EpisodeDataset

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"


def _sim_rig(tmp_path: Path) -> Path:
    """sim_ur5's arm + sim_pusht's scene + one small simulated top camera (the policy sees 32x32)."""
    robot = yaml.safe_load((CONFIGS / "sim_ur5.yaml").read_text())["robot"]
    scene = yaml.safe_load((CONFIGS / "sim_pusht.yaml").read_text())["scene"]
    rig = {"name": "test_pusht", "robot": robot, "scene": scene,
           "cameras": [{"name": "top", "driver": "sim", "resolution": [160, 120], "fps": 20}],
           "teleop": {"profile": "scripted", "mode": "planar"}}
    path = tmp_path / "test_pusht.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


def test_eval_local_policy_records_and_reports(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "eval"
    code = main(["eval", "--rig", str(_sim_rig(tmp_path)), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--episodes", "2", "--max-duration", "2.5", "--seed", "3", "--no-preview", "--out", str(out),
                 "--json", str(tmp_path / "results.json")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "episode 0 (seed 3)" in printed and "episode 1 (seed 4)" in printed
    assert "success rate" in printed and "coverage" in printed
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["seed"] for r in results] == [3, 4]
    assert all(r["chunks"] >= 2 and r["executed"] > 0 and r["recorded_as"] is not None for r in results)
    with EpisodeDataset.open(out) as dataset:
        assert dataset.n_episodes == 2
        episode = dataset.replay_buffer.get_episode(1)
        assert {"action", "robot_eef_pose", "scene_coverage", "timestamp"} <= set(episode)
        assert dataset.video_path(1, 0).is_file()


def test_eval_unreachable_remote_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import robot_stack.cli.eval as eval_cli

    monkeypatch.setattr(eval_cli, "_SERVER_WAIT_S", 1.0)
    code = main(["eval", "--rig", str(_sim_rig(tmp_path)), "--remote", "tcp://127.0.0.1:9", "--no-preview",
                 "--no-record"])
    assert code == 2
    assert "no policy server answers at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_eval_rig_without_the_policys_camera_is_a_clear_error(tmp_path, tiny_checkpoint, capsys):
    rig = yaml.safe_load(_sim_rig(tmp_path).read_text())
    rig["cameras"] = []
    path = tmp_path / "no_camera.yaml"
    path.write_text(yaml.safe_dump(rig))
    code = main(["eval", "--rig", str(path), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--no-preview", "--no-record"])
    assert code == 2
    assert "the policy observes 'camera_0' but the rig has cameras []" in capsys.readouterr().err
