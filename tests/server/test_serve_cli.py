"""`robot-stack serve` with a real (tiny) Diffusion Policy checkpoint, as a separate process."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from robot_stack.server.transport import PolicyClient, RemoteError


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_real_checkpoint_with_token(tiny_checkpoint, with_convention, tmp_path):
    port = _free_port()
    env = dict(os.environ, ROBOT_STACK_TOKEN="let-me-in")
    # The timing the clients get is the checkpoint's (no --dt): its training data's convention.
    checkpoint = with_convention(tiny_checkpoint, tmp_path / "stamped.ckpt", dt=0.125, delay=3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_stack", "serve", "--checkpoint", str(checkpoint),
         "--bind", f"127.0.0.1:{port}", "--device", "cpu"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        with PolicyClient(f"127.0.0.1:{port}", token="let-me-in") as client:
            info = None
            deadline = time.monotonic() + 90
            while info is None and time.monotonic() < deadline:  # loading torch + the model takes a while
                assert proc.poll() is None, proc.stdout.read()
                try:
                    info = client.info(timeout=1.0)
                except TimeoutError:
                    pass
            assert info is not None, "server did not come up"
            assert info.obs_shapes == {"camera_0": (3, 32, 32), "robot_eef_pose": (2,)}
            assert (info.n_obs_steps, info.n_action_steps, info.action_dim) == (2, 8, 2)
            assert (info.dt, info.action_delay_steps) == (0.125, 3)
            obs = {"camera_0": np.full((2, 3, 32, 32), 0.5, np.float32),
                   "robot_eef_pose": np.array([[0.4, 0.0, 0.02, 3.14, 0, 0]] * 2, np.float32)}
            chunk = client.infer(obs, t_obs=1.0, timeout=30)
            assert chunk.actions.shape == (8, 2) and np.isfinite(chunk.actions).all()
            obs["camera_0"] = obs["camera_0"] * 3  # outside [0, 1]: the policy refuses, the server survives
            with pytest.raises(RemoteError, match="policy_error"):
                client.infer(obs, t_obs=1.1, timeout=30)
        with PolicyClient(f"127.0.0.1:{port}") as intruder:
            with pytest.raises(RemoteError, match="unauthenticated"):
                intruder.info(timeout=10)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "rejected request" in out and "unauthenticated" in out  # logged reason
    assert "served 2 requests, rejected 2" in out


def test_serve_refuses_public_bind_without_flag(tiny_checkpoint, capsys):
    from robot_stack.cli import main

    assert main(["serve", "--checkpoint", str(tiny_checkpoint), "--bind", "0.0.0.0:5599", "--device", "cpu"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_serve_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    from robot_stack.cli import main

    assert main(["serve", "--checkpoint", str(tmp_path / "nope.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
