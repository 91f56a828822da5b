"""Every mistake a user can make ends in one clear line and exit 2 (bad input) or 1 (a device failing at
run time), before anything starts moving; no traceback unless asked for (--debug)."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import zarr

from robot_stack.cli import main
from robot_stack.data.dataset import EpisodeDataset


def _realsense_camera(serial: str = "000000000001") -> dict:
    return {"name": "wrist", "driver": "realsense", "serial": serial, "resolution": [640, 480], "fps": 30}


def _rtde_robot(sim_rig) -> dict:
    import yaml

    robot = yaml.safe_load(sim_rig().read_text())["robot"]
    # Nothing listens on a UR's ports there: the probe is refused at once.
    return {**robot, "driver": "rtde", "robot_ip": "127.0.0.9", "frequency": 125}


def test_a_realsense_rig_without_libusb_names_the_package(cli, sim_rig, tmp_path, no_realsense_env):
    rig = sim_rig(cameras=[_realsense_camera()])
    result = cli.run("collect", "--rig", str(rig), "--out", str(tmp_path / "d"), "--teleop", "scripted",
                     "--no-preview", env=no_realsense_env, timeout=120)
    cli.one_line_error(result, 2, "camera 'wrist'", "apt-get install libusb-1.0-0")
    assert not (tmp_path / "d").exists()


@pytest.mark.realsense
def test_an_unknown_camera_serial_lists_what_is_connected(cli, sim_rig, tmp_path):
    t0 = time.monotonic()
    result = cli.run("collect", "--rig", str(sim_rig(cameras=[_realsense_camera("123456789012")])),
                     "--out", str(tmp_path / "d"), "--teleop", "scripted", "--no-preview", timeout=120)
    cli.one_line_error(result, 2, "camera 'wrist'", "'123456789012' not found", "no RealSense connected")
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("command", ["collect", "replay"])
def test_an_unreachable_robot_is_one_line_before_anything_starts(cli, sim_rig, tmp_path, command):
    rig = str(sim_rig(robot=_rtde_robot(sim_rig)))
    args = {"collect": ["collect", "--rig", rig, "--out", str(tmp_path / "d"), "--teleop", "scripted", "--no-preview"],
            "replay": ["replay", "--rig", rig, "--dataset", str(tmp_path / "d"), "--episode", "0"]}[command]
    if command == "replay":
        _small_dataset(tmp_path / "d")
    result = cli.run(*args, timeout=120)
    cli.one_line_error(result, 2, "cannot reach the UR controller at 127.0.0.9:29999")


def _small_dataset(root, episodes: int = 3, steps: int = 8):
    with EpisodeDataset.open(root, mode="a") as dataset:
        for e in range(episodes):
            t = np.arange(steps) * 0.1 + e
            pose = np.tile([0.4, 0.0, 0.1, 3.14, 0.0, 0.0], (steps, 1))
            dataset.commit_episode({"timestamp": t, "action": pose, "robot_eef_pose": pose}, seed=e)
    return root


@pytest.fixture(scope="module")
def broken_checkpoints(tmp_path_factory):
    """A good tiny checkpoint's bytes turned into each kind of broken checkpoint a user meets."""
    from robot_stack.policy.checkpoint import save_checkpoint
    from robot_stack.policy.config import load_task_config, task_config_to_dict
    from robot_stack.policy.diffusion_policy import DiffusionPolicy

    folder = tmp_path_factory.mktemp("checkpoints")
    tiny = {"image_size": [32, 32], "unet": {"down_dims": [16, 32], "diffusion_step_embed_dim": 16},
            "vision": {"width": 8, "stage_blocks": [1, 1], "crop_size": [28, 28], "num_keypoints": 8,
                       "feature_dim": 16}}
    cfg = load_task_config("push_t", {"policy": tiny})
    good = save_checkpoint(folder / "good.ckpt", cfg, {"model": DiffusionPolicy(cfg.policy).state_dict()})
    data = good.read_bytes()
    (folder / "empty.ckpt").write_bytes(b"")
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (folder / "garbage.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "a_folder.ckpt").mkdir()
    payload = torch.load(good, weights_only=True)
    payload["config"] = task_config_to_dict(cfg) | {"policy": {**task_config_to_dict(cfg)["policy"], "fancy": 1}}
    torch.save(payload, folder / "other_config.ckpt")
    payload = torch.load(good, weights_only=True)
    payload["config"]["policy"]["unet"]["down_dims"] = [16, 64]
    torch.save(payload, folder / "other_weights.ckpt")
    return folder


BROKEN = {
    "empty.ckpt": "is empty (0 bytes)",
    "truncated.ckpt": "not a robot_stack checkpoint, or it is truncated",
    "garbage.ckpt": "not a robot_stack checkpoint, or it is truncated",
    "a_folder.ckpt": "is a folder",
    "other_config.ckpt": "holds a task config this version cannot use",
    "other_weights.ckpt": "weights do not fit the configured policy",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_checkpoint_is_one_line_for_eval(cli, sim_rig, broken_checkpoints, tmp_path, name):
    path = broken_checkpoints / name
    result = cli.run("eval", "--rig", str(sim_rig()), "--checkpoint", str(path), "--device", "cpu", "--no-preview",
                     "--out", str(tmp_path / "eval"), timeout=180)
    cli.one_line_error(result, 2, str(path), BROKEN[name])
    assert not (tmp_path / "eval").exists()  # nothing was started or created


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_checkpoint_is_one_line_for_serve(broken_checkpoints, capsys, name):
    path = broken_checkpoints / name
    assert main(["serve", "--checkpoint", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and BROKEN[name] in err and str(path) in err


def test_collect_out_pointing_at_a_file_is_one_line(cli, sim_rig, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    result = cli.run("collect", "--rig", str(sim_rig()), "--out", str(target), "--teleop", "scripted",
                     "--no-preview", timeout=120)
    cli.one_line_error(result, 2, str(target), "is a file")
    assert target.read_text() == "mine"


def test_a_corrupt_dataset_is_refused_and_nothing_is_truncated(cli, sim_rig, tmp_path):
    root = _small_dataset(tmp_path / "d")
    ends = zarr.open_group(str(root / "replay_buffer.zarr"), mode="r+", zarr_format=2)["meta/episode_ends"]
    ends[1] = 5  # not after episode 0's end (8): no interrupted write leaves this
    rows_before = zarr.open_group(str(root / "replay_buffer.zarr"), mode="r", zarr_format=2)["data/action"].shape[0]

    result = cli.run("collect", "--rig", str(sim_rig()), "--out", str(root), "--teleop", "scripted", "--no-preview",
                     timeout=120)
    cli.one_line_error(result, 2, "episode_ends is corrupt: entry 1 is 5, not after the previous end 8")
    group = zarr.open_group(str(root / "replay_buffer.zarr"), mode="r", zarr_format=2)
    assert group["data/action"].shape[0] == rows_before == 24
    assert group["meta/episode_ends"][:].tolist() == [8, 5, 24]

    report = cli.run("dataset", "check", str(root), timeout=60)
    assert report.returncode == 1
    assert "PROBLEM: " in report.stdout and "entry 1 is 5" in report.stdout


def test_dataset_check_reports_episodes_and_a_missing_timestamps_file(cli, tmp_path):
    root = _small_dataset(tmp_path / "d", episodes=2)
    report = cli.run("dataset", "check", str(root), timeout=60)
    assert report.returncode == 0, report.stdout
    assert "episode 1: 8 steps, 0.7 s, seed 1" in report.stdout and report.stdout.strip().endswith("consistent")
    assert cli.run("dataset", "check", str(tmp_path / "nothing"), timeout=60).returncode == 2


def test_a_device_that_fails_to_start_is_named_in_one_line(cli, sim_rig, tmp_path):
    # No SpaceMouse on this machine: the teleop process fails in its setup, before the arm connects.
    result = cli.run("collect", "--rig", str(sim_rig()), "--out", str(tmp_path / "d"), "--teleop", "spacemouse",
                     "--no-preview", timeout=120)
    line = cli.one_line_error(result, 1, "robot-stack collect: process 'teleop': ")
    assert "SpaceMouse" in line or "spacemouse" in line.lower()

    debug = cli.run("--debug", "collect", "--rig", str(sim_rig()), "--out", str(tmp_path / "d2"), "--teleop",
                    "spacemouse", "--no-preview", timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_disk_full_while_recording_is_one_line_and_keeps_earlier_episodes(sim_rig, tmp_path, capsys, monkeypatch):
    import robot_stack.data.replay_buffer as replay_buffer

    write_rows = replay_buffer._write_rows
    calls = {"episodes": 0}

    def full_after_first_episode(arr, start, values):
        if start > 0:  # the second episode's rows
            raise OSError(errno.ENOSPC, "No space left on device")
        calls["episodes"] += 1
        return write_rows(arr, start, values)

    monkeypatch.setattr(replay_buffer, "_write_rows", full_after_first_episode)
    out = tmp_path / "d"
    code = main(["collect", "--rig", str(sim_rig()), "--out", str(out), "--teleop", "scripted", "--episodes", "3",
                 "--max-duration", "1.5", "--keep-failed", "--no-preview"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "episode 1 was lost (disk full); the 1 episode(s) saved before it" in err and "are intact" in err
    monkeypatch.undo()
    with EpisodeDataset.open(out) as dataset:
        assert dataset.n_episodes == 1 and len(dataset.replay_buffer.get_episode(0)["action"]) >= 10


def test_ctrl_c_works_when_started_with_sigint_ignored(cli, tiny_checkpoint_path):
    # A shell's background job starts its children with SIGINT ignored; the CLI installs its own handler.
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_stack", "serve", "--checkpoint", str(tiny_checkpoint_path), "--bind",
         "127.0.0.1:*", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                break
        assert any("listening on" in line for line in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, out


@pytest.fixture(scope="module")
def tiny_checkpoint_path(broken_checkpoints):
    return broken_checkpoints / "good.ckpt"
