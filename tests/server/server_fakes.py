"""Test doubles for the policy server tests: a fake policy with the Diffusion Policy interface, a fake
waypoint controller that records exactly what it was handed and when, a server in a thread and a raw
socket exchange with it."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from robot_stack.runtime import now
from robot_stack.server.messages import Message, decode
from robot_stack.server.policy_service import PolicyInfo, PolicyService
from robot_stack.server.local import CheckedCheckpoint
from robot_stack.server.transport import PolicyServer


class FakeDelayPolicy:
    """Policy interface without a network: action k = (last observed eef xy) + k * step, after ``delay`` s.

    ``nan_after``: from that call on, every action chunk is NaN (to test rejection). ``exit_after``: at that
    call the whole process exits at once (as a policy process killed by the OOM killer would).
    """

    def __init__(self, delay: float = 0.0, n_obs_steps: int = 2, n_action_steps: int = 8, horizon: int = 16,
                 image_shape: tuple[int, int, int] | None = (3, 16, 16), step: float = 0.001,
                 nan_after: int | None = None, exit_after: int | None = None):
        self.delay = delay
        self.n_obs_steps = n_obs_steps
        self.n_action_steps = n_action_steps
        self.horizon = horizon
        self.action_dim = 2
        self.obs_shapes = {"robot_eef_pose": (2,)}
        if image_shape is not None:
            self.obs_shapes["camera_0"] = image_shape
        self.step = step
        self.nan_after = nan_after
        self.exit_after = exit_after
        self.calls = 0

    def predict_action(self, obs):
        self.calls += 1
        if self.exit_after is not None and self.calls > self.exit_after:
            os._exit(3)
        time.sleep(self.delay)
        xy = np.asarray(obs["robot_eef_pose"])[:, -1, :2]
        k = np.arange(self.n_action_steps)[None, :, None]
        action = xy[:, None, :] + k * self.step
        if self.nan_after is not None and self.calls > self.nan_after:
            action = np.full_like(action, np.nan)
        return {"action": action, "action_pred": action}


def fake_service(delay: float = 0.0, image_shape=(3, 16, 16)) -> PolicyService:
    """Top-level (picklable with functools.partial) factory for PolicyProcess tests."""
    return PolicyService(FakeDelayPolicy(delay=delay, image_shape=image_shape), dt=0.1)


@dataclass(frozen=True)
class DyingCheckpointService:
    """Stands in for ``CheckpointService`` (same arguments): a fake policy whose process exits after
    ``exit_after`` inferences."""

    checkpoint: str
    device: str = "cpu"
    dt: float | None = None
    exit_after: int = 3

    def check(self) -> CheckedCheckpoint:
        return CheckedCheckpoint(PolicyInfo.of(FakeDelayPolicy(), 0.1, 2), [], None)

    def __call__(self) -> PolicyService:
        return PolicyService(FakeDelayPolicy(exit_after=self.exit_after), dt=0.1, action_delay_steps=2)


@dataclass
class Received:
    pose: np.ndarray
    target_time: float
    received: float


@dataclass
class RecordingController:
    """Fake controller: records (pose, target_time, runtime-clock time received) for every waypoint."""

    waypoints: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def schedule_waypoint(self, pose, target_time):
        with self.lock:
            self.waypoints.append(Received(np.asarray(pose, dtype=np.float64).copy(), float(target_time), now()))


class ServerThread:
    """A PolicyServer serving in a background thread (the ``serve`` fixture stops and closes it)."""

    def __init__(self, policy, token=None):
        self.server = PolicyServer(PolicyService(policy, dt=0.1), bind="127.0.0.1:*", token=token)
        self.endpoint = self.server.endpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.server.serve_forever, args=(self._stop.is_set, 0.02), daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self.server.close()


def raw_exchange(endpoint, frames, timeout=2.0) -> Message:
    """Send raw frames from a fresh DEALER socket and decode the one reply."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(frames)
        assert sock.poll(int(timeout * 1000)), "no reply from the server"
        return decode(sock.recv_multipart())
    finally:
        sock.close()
