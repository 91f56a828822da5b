"""The policy loop against the real RobotController process driving the simulated UR5, with the policy
served from its own process over TCP (remote mode on loopback)."""

import functools
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
from server_fakes import fake_service

from robot_stack.hardware.robot.config import load_robot_config
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.runtime import now
from robot_stack.server.executor import ExecutorConfig, RecedingHorizonExecutor
from robot_stack.server.local import PolicyProcess
from robot_stack.server.observation import ObservationAssembler
from robot_stack.server.rollout import RolloutConfig, run_rollout
from robot_stack.server.transport import PolicyClient

RIG = Path(__file__).resolve().parents[2] / "hardware_configs" / "sim_ur5.yaml"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sim_arm_follows_policy_and_holds_when_server_dies():
    dt = 0.1
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    # The fake policy moves the TCP +1 mm per step in x and y from wherever it is (1 cm/s).
    server = PolicyProcess(functools.partial(fake_service, delay=0.03, image_shape=None), endpoint=endpoint)
    with RobotController(load_robot_config(RIG)) as robot:
        server.start(timeout=60)
        killed = {}

        def kill_server():
            time.sleep(2.0)
            killed["t"] = now()
            os.kill(server.pid, signal.SIGKILL)

        try:
            with PolicyClient(endpoint) as client:
                info = client.info(timeout=10)
                start = robot.get_state()["actual_tcp_pose"]
                assembler = ObservationAssembler(info, dt, {}, robot.state)
                executor = RecedingHorizonExecutor(
                    robot.client, ExecutorConfig(dt=dt, steps_per_inference=4), info.n_action_steps, info.action_dim, start
                )
                threading.Thread(target=kill_server, daemon=True).start()
                stats = run_rollout(assembler, client, executor, RolloutConfig(max_duration=3.5, inference_timeout=0.3))
            state = robot.get_state()
            history = robot.client.get_all_state()
        finally:
            server.stop()
    t_kill = killed["t"]
    assert len(stats.outcomes) >= 4 and stats.execution.scheduled >= 15  # a chunk every 4 steps for 2 s
    # The arm followed the policy: about 1 cm/s in x and y while the server was alive.
    moved = state["actual_tcp_pose"][:2] - start[:2]
    assert np.all(moved > 0.01), moved
    np.testing.assert_allclose(state["actual_tcp_pose"][2:], start[2:], atol=1e-3)  # z/orientation from base pose
    # Never late: the controller dropped no waypoint for being in the past, and rejected none.
    assert int(state["n_dropped"]) == 0 and int(state["n_rejected"]) == 0
    # The server died at t_kill: the plan ends within one chunk and the arm then stands still.
    assert executor.plan_end <= t_kill + info.n_action_steps * dt
    still = history["timestamp"] > executor.plan_end + 0.3
    assert still.sum() > 10, "rollout ended too early to observe the hold"
    poses = history["actual_tcp_pose"][still]
    assert np.abs(poses - poses[-1]).max() < 1e-4
    assert np.abs(history["actual_tcp_speed"][still][:, :3]).max() < 1e-3
    assert stats.server_unreachable + stats.inference_timeouts >= 1 and stats.end_reason == "max_duration"
