"""The robot-side loop end to end with ring buffers fed in real time, a real PolicyServer (thread or process)
running a fake policy, and a controller that records every waypoint with the time it was handed over."""

import functools
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest
from server_fakes import FakeDelayPolicy, RecordingController, fake_service

from robot_stack.runtime import SharedMemoryRingBuffer, now
from robot_stack.server.executor import ExecutorConfig, RecedingHorizonExecutor
from robot_stack.server.local import PolicyProcess
from robot_stack.server.observation import ObservationAssembler
from robot_stack.server.policy_service import PolicyService
from robot_stack.server.rollout import RolloutConfig, run_rollout
from robot_stack.server.transport import PolicyClient, PolicyServer

BASE = np.array([0.45, 0.0, 0.02, 3.14, 0.0, 0.0])
ROBOT_LATENCY, MARGIN = 0.01, 0.005


class Feeder:
    """Writes camera frames at 30 Hz and robot states at 100 Hz with runtime-clock timestamps."""

    def __init__(self):
        self.camera = SharedMemoryRingBuffer.create({"color": ((24, 32, 3), np.uint8), "timestamp": ((), np.float64)}, 64)
        self.robot = SharedMemoryRingBuffer.create({"actual_tcp_pose": ((6,), np.float64), "timestamp": ((), np.float64)}, 256)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        while self.camera.count < 3:
            time.sleep(0.01)

    def _run(self):
        next_frame = now()
        while not self._stop.is_set():
            t = now()
            self.robot.put({"actual_tcp_pose": BASE, "timestamp": t})
            if t >= next_frame:
                self.camera.put({"color": np.full((24, 32, 3), 128, np.uint8), "timestamp": t})
                next_frame += 1 / 30
            time.sleep(0.01)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.camera.close()
        self.robot.close()


@pytest.fixture
def feeder():
    f = Feeder()
    yield f
    f.close()


def _loop_parts(feeder, client, dt, steps_per_inference=4):
    info = client.info(timeout=10)
    controller = RecordingController()
    assembler = ObservationAssembler(info, dt, {0: feeder.camera}, feeder.robot)
    cfg = ExecutorConfig(dt=dt, steps_per_inference=steps_per_inference, robot_latency=ROBOT_LATENCY, margin=MARGIN)
    executor = RecedingHorizonExecutor(controller, cfg, info.n_action_steps, info.action_dim, BASE)
    return assembler, executor, controller


def _assert_never_late(controller):
    for w in controller.waypoints:
        assert w.target_time >= w.received + ROBOT_LATENCY, f"waypoint for {w.target_time} handed over at {w.received}"


@pytest.mark.parametrize("delay, stale", [(0.0, (0,)), (0.42, (0, 1, 2))])
def test_inference_delay_drops_exactly_the_stale_actions(feeder, delay, stale):
    dt = 0.2
    with PolicyServer(PolicyService(FakeDelayPolicy(delay=delay)), bind="127.0.0.1:*") as server:
        stop = threading.Event()
        thread = threading.Thread(target=server.serve_forever, args=(stop.is_set, 0.02), daemon=True)
        thread.start()
        try:
            with PolicyClient(server.endpoint) as client:
                assembler, executor, controller = _loop_parts(feeder, client, dt)
                stats = run_rollout(assembler, client, executor, RolloutConfig(max_duration=2.4))
        finally:
            stop.set()
            thread.join(5)
    assert stats.end_reason == "max_duration"
    assert len(stats.outcomes) >= 2
    # Action k of a chunk is for t_obs + k*dt; with the chunk arriving `delay` after the observation,
    # exactly those before arrival + robot latency + margin are stale.
    for outcome in stats.outcomes:
        assert outcome.dropped == list(stale), (outcome.dropped, outcome.t_received - outcome.t_obs)
        # The rest is executed until the next chunk (or the episode's end) takes over.
        assert outcome.scheduled and outcome.scheduled + outcome.superseded == list(range(len(stale), 8))
    assert stats.execution.dropped == len(stale) * len(stats.outcomes)
    assert len(controller.waypoints) == stats.execution.scheduled
    _assert_never_late(controller)
    for w in controller.waypoints:
        np.testing.assert_allclose(w.pose[2:], BASE[2:])  # only x, y come from the 2-D policy


def test_nan_actions_never_reach_the_arm(feeder):
    policy = FakeDelayPolicy(nan_after=2)
    with PolicyServer(PolicyService(policy), bind="127.0.0.1:*") as server:
        stop = threading.Event()
        thread = threading.Thread(target=server.serve_forever, args=(stop.is_set, 0.02), daemon=True)
        thread.start()
        try:
            with PolicyClient(server.endpoint) as client:
                assembler, executor, controller = _loop_parts(feeder, client, 0.1)
                stats = run_rollout(assembler, client, executor, RolloutConfig(max_duration=1.5, retry_interval=0.05))
        finally:
            stop.set()
            thread.join(5)
    assert len(stats.outcomes) == 2  # the two good chunks
    assert stats.server_errors >= 3
    # Every rejection the client saw came from the server; one more may have been in flight when the
    # rollout ended (it is cancelled, so the client never counts it).
    assert server.stats.rejected["non_finite"] - stats.server_errors in (0, 1)
    assert all(np.isfinite(w.pose).all() for w in controller.waypoints)
    assert len(controller.waypoints) == stats.execution.scheduled


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_remote_server_killed_mid_episode_robot_holds_then_recovers(feeder):
    dt, n_action_steps = 0.1, 8
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    make = functools.partial(fake_service, delay=0.05)
    first = PolicyProcess(make, endpoint=endpoint, name="policy_a")
    first.start(timeout=60)
    second = PolicyProcess(make, endpoint=endpoint, name="policy_b")
    events = {}

    def kill_then_restart():
        time.sleep(1.5)
        events["killed"] = now()
        os.kill(first.pid, signal.SIGKILL)
        time.sleep(1.0)
        second.start(timeout=60)
        events["restarted"] = now()

    def recovered():
        # End once the restarted server has been driving the arm for a while.
        done = "restarted" in events and controller.waypoints[-1].received > events["restarted"] + 0.5
        return "recovered" if done else None

    try:
        with PolicyClient(endpoint) as client:
            assembler, executor, controller = _loop_parts(feeder, client, dt)
            chaos = threading.Thread(target=kill_then_restart, daemon=True)
            chaos.start()
            stats = run_rollout(assembler, client, executor, RolloutConfig(max_duration=20.0, inference_timeout=0.5),
                                should_end=recovered)
            chaos.join(60)
    finally:
        first.stop()
        second.stop()
    assert stats.end_reason == "recovered", stats
    killed, restarted = events["killed"], events["restarted"]
    assert not [o for o in stats.outcomes if killed + 0.05 < o.t_received < restarted]  # no chunk from the dead
    until_restart = [w for w in controller.waypoints if w.received < restarted]
    after = [w for w in controller.waypoints if w.received >= restarted]
    assert until_restart and after
    # Bounded hold: the plan the arm had when the server died ends within one chunk of the kill.
    assert max(w.target_time for w in until_restart) <= killed + n_action_steps * dt
    assert stats.server_unreachable + stats.inference_timeouts >= 1
    _assert_never_late(controller)


def test_local_mode_policy_process_over_ipc(feeder):
    with PolicyProcess(functools.partial(fake_service, delay=0.0)) as proc:
        assert proc.endpoint.startswith("ipc://")
        with PolicyClient(proc.endpoint) as client:
            assembler, executor, controller = _loop_parts(feeder, client, 0.1)
            stats = run_rollout(assembler, client, executor, RolloutConfig(max_duration=1.0))
    assert len(stats.outcomes) >= 2 and stats.server_errors == stats.inference_timeouts == 0
    _assert_never_late(controller)
    assert not os.path.exists(proc.endpoint[len("ipc://"):])  # socket file cleaned up


def test_a_server_slower_than_the_timeout_still_moves_the_arm(feeder, serve):
    # Inference takes 0.42 s against a 0.2 s timeout: the late chunk's future actions run, the stale ones are
    # dropped, and the timeout grows to fit the measured latency (before, every request was abandoned).
    server = serve(FakeDelayPolicy(delay=0.42))
    with PolicyClient(server.endpoint) as client:
        assembler, executor, controller = _loop_parts(feeder, client, 0.2)
        stats = run_rollout(assembler, client, executor, RolloutConfig(max_duration=3.0, inference_timeout=0.2))
    assert stats.inference_timeouts >= 1 and stats.late_chunks >= 1 and stats.abandoned_requests == 0
    assert stats.inference_timeouts < len(stats.outcomes)  # the adapted timeout stops counting later chunks
    assert len(stats.outcomes) >= 3 and stats.execution.scheduled > 0
    assert all(outcome.dropped for outcome in stats.outcomes)  # what had passed was never executed
    _assert_never_late(controller)
