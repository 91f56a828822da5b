"""The 6-DoF + gripper job end to end on sim_ur5_gripper: collect (a scripted 6-DoF teleop device with the
gripper button), train a tiny rotation_6d policy that observes the gripper and commands it, evaluate it
through the full runtime, and replay a recorded episode with its gripper widths."""

import json
from pathlib import Path

import numpy as np
import yaml

from robot_stack.data.collection import CollectConfig, run_collection
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.episode_recorder import EpisodeRecorder
from robot_stack.hardware.teleop import TeleopMapper, TeleopState, load_profile
from robot_stack.rig import load_rig, start_rig
from robot_stack.runtime import now

ROOT = Path(__file__).resolve().parents[2]
RIG = ROOT / "hardware_configs" / "sim_ur5_gripper.yaml"


class TwistAndGrasp:
    """A SpaceMouse-like device: starts recording, translates and turns the TCP about z, closes the gripper
    halfway, stops; every episode alike (reads counted per episode of 30)."""

    def __init__(self):
        self.reads = 0

    def read(self) -> TeleopState:
        self.reads += 1
        k = self.reads % 30
        buttons = np.zeros(16, bool)
        buttons[0] = k in (1, 28)  # record_toggle: start, stop
        buttons[1] = k in (14, 29)  # gripper_toggle: close mid-episode, open again after it
        axes = np.array([0.4, 0.0, 0.0, 0.0, 0.0, 0.6]) if 1 < k < 28 else np.zeros(6)
        return TeleopState(axes, buttons, now())


def _tiny_task(tmp_path: Path) -> Path:
    task = yaml.safe_load((ROOT / "robot_stack" / "policy" / "configs" / "mug_flip.yaml").read_text())
    task["policy"].update(
        cameras=[],
        low_dim=[{"key": "robot_eef_pose", "dims": 6, "rotation": "rotation_6d"}, {"key": "gripper_width", "dims": 1}],
        action=[{"key": "action", "dims": 7, "rotation": "rotation_6d"}],  # pose + gripper width
    )
    task["policy"]["unet"].update(down_dims=[32, 64], diffusion_step_embed_dim=32, kernel_size=3)
    task["policy"]["noise_scheduler"].update(num_inference_steps=4)
    task["training"].update(batch_size=16, warmup_steps=2, num_workers=0, val_ratio=0.0, checkpoint_every_epochs=1)
    path = tmp_path / "tiny_gripper_task.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def test_collect_train_eval_replay_with_a_gripper(tmp_path, cli):
    rig = load_rig(RIG)
    demos = tmp_path / "demos"
    mapper = TeleopMapper(load_profile("spacemouse"), rig.robot.workspace, 0.1, mode="6dof")
    with start_rig(rig) as running, EpisodeDataset.open(demos, mode="a") as dataset:
        stats = run_collection(running.robot.client, TwistAndGrasp(), mapper, EpisodeRecorder(dataset),
                               CollectConfig(frequency=10.0, episodes=2), gripper=running.gripper.client,
                               check=running.supervisor.check)
    assert stats.saved == [0, 1]
    with EpisodeDataset.open(demos) as dataset:
        episode = dataset.replay_buffer.get_episode(0)
    assert episode["action"].shape[1] == 7 and episode["gripper_width"].shape[1] == 1
    assert episode["action"][0, 6] == 0.085 and episode["action"][-1, 6] == 0.0  # open, then closed
    assert episode["gripper_width"].min() < 0.05  # the fingers really closed (onto the 4 cm object)

    def robot_stack(*args: str) -> str:
        result = cli.run(*args, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    run = tmp_path / "run"
    robot_stack("train", "--dataset", str(demos), "--config", str(_tiny_task(tmp_path)), "--out", str(run),
                "--epochs", "2", "--device", "cpu", "--no-progress")
    results = tmp_path / "eval.json"
    printed = robot_stack("eval", "--rig", str(RIG), "--checkpoint", str(run / "latest.ckpt"), "--device", "cpu",
                          "--episodes", "1", "--max-duration", "3", "--no-preview", "--no-record",
                          "--json", str(results))
    assert "1 episode(s) finished" in printed
    (result,) = json.loads(results.read_text())["episodes"]
    assert result["chunks"] >= 2 and result["executed"] > 0, result

    printed = robot_stack("replay", "--dataset", str(demos), "--episode", "0", "--rig", str(RIG))
    assert "gripper width mean" in printed and "0 rejected commands" in printed
