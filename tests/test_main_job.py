"""The main job end to end through the CLI, as a user runs it on the simulated Push-T rig:
collect (scripted expert, lockstep) -> dataset check -> train -> eval (full runtime), with a rig and model
shrunk to run in seconds on a CPU. Each step is a ``robot-stack`` subprocess in which ``import pyrealsense2`` fails as on a machine
without libusb: the simulated rig must never need it."""

import json
from pathlib import Path

import torch
import yaml

from robot_stack.data.dataset import EpisodeDataset

ROOT = Path(__file__).resolve().parents[1]


def _small_rig(tmp_path: Path) -> Path:
    """sim_pusht exactly, with smaller camera images, uncropped (the policy sees 32x32 anyway)."""
    rig = yaml.safe_load((ROOT / "hardware_configs" / "sim_pusht.yaml").read_text())
    for cam in rig["cameras"]:
        cam.update(resolution=[128, 96], fps=15)
        cam.pop("crop", None)
        cam.pop("output_resolution", None)
    path = tmp_path / "sim_pusht_small.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


def _tiny_task(tmp_path: Path) -> Path:
    """push_t_small shrunk further: a few seconds of CPU training."""
    task = yaml.safe_load((ROOT / "robot_stack" / "policy" / "configs" / "push_t_small.yaml").read_text())
    task["policy"].update(image_size=[32, 32])
    task["policy"]["vision"].update(width=8, stage_blocks=[1, 1], crop_size=[28, 28], num_keypoints=8, feature_dim=16)
    task["policy"]["unet"].update(down_dims=[32, 64], diffusion_step_embed_dim=32, kernel_size=3)
    task["policy"]["noise_scheduler"].update(num_inference_steps=4)
    task["training"].update(batch_size=16, warmup_steps=2, num_workers=0, val_ratio=0.5, checkpoint_every_epochs=1)
    path = tmp_path / "tiny_push_t.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def test_collect_train_eval_on_the_sim_rig_without_libusb(tmp_path: Path, cli, no_realsense_env) -> None:
    rig, demos, run = _small_rig(tmp_path), tmp_path / "demos", tmp_path / "run"

    def robot_stack(*args: str):
        result = cli.run(*args, env=no_realsense_env, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        assert "pyrealsense2" not in result.stderr and "libusb" not in result.stderr
        return result.stdout

    # 1. Two demonstrations by the scripted expert on the lockstep simulator, as the README's first command
    #    records them (cut at 4 s: long enough to learn from, short for CI).
    robot_stack("collect", "--rig", str(rig), "--teleop", "scripted", "--episodes", "2", "--max-duration", "4",
                "--keep-failed", "--out", str(demos), "--no-preview", "--lockstep")
    with EpisodeDataset.open(demos) as dataset:
        assert dataset.n_episodes == 2
        episode = dataset.replay_buffer.get_episode(0)
        assert len(episode["action"]) >= 30  # ~4 s at 10 Hz
        assert dataset.video_path(0, 0).is_file() and dataset.video_path(0, 1).is_file()
        assert dataset.episode_seeds() == {0: 0, 1: 1}

    # 2. The dataset checks out: every video's frames have their timestamps.
    report = robot_stack("dataset", "check", str(demos))
    assert "2 episode(s)" in report and report.strip().endswith("consistent")
    assert report.count("camera 1:") == 2 and "PROBLEM" not in report

    # 3. Train a tiny policy on them; the checkpoint knows which scenes it was trained on.
    robot_stack("train", "--dataset", str(demos), "--config", str(_tiny_task(tmp_path)), "--out", str(run),
                "--epochs", "2", "--device", "cpu", "--no-progress")
    checkpoint = run / "latest.ckpt"
    assert torch.load(checkpoint, weights_only=True)["train_state"]["scene_seeds"] == [0, 1]

    # 4. Evaluate it through the full multiprocess runtime: policy process, arm, scene, cameras; by default on
    #    the held-out seeds.
    results_file = tmp_path / "results.json"
    printed = robot_stack("eval", "--rig", str(rig), "--checkpoint", str(checkpoint), "--device", "cpu",
                          "--episodes", "1", "--max-duration", "6", "--no-preview", "--out", str(tmp_path / "eval"),
                          "--json", str(results_file))
    assert "episode 0 (seed 100000)" in printed and "success rate" in printed
    report = json.loads(results_file.read_text())
    assert report["mode"] == "runtime" and report["episodes_scored"] == 1 and 0.0 <= report["score"] <= 1.0
    (result,) = report["episodes"]
    assert result["chunks"] >= 2 and result["executed"] > 0 and 0.0 <= result["final_coverage"] <= 1.0, json.dumps(result)
