"""Test doubles for the policy server tests: a fake policy with the Diffusion Policy interface, and a fake
waypoint controller that records exactly what it was handed and when."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from robot_stack.runtime import now
from robot_stack.server.policy_service import PolicyService


class FakeDelayPolicy:
    """Policy interface without a network: action k = (last observed eef xy) + k * step, after ``delay`` s.

    ``nan_after``: from that call on, every action chunk is NaN (to test rejection).
    """

    def __init__(self, delay: float = 0.0, n_obs_steps: int = 2, n_action_steps: int = 8, horizon: int = 16,
                 image_shape: tuple[int, int, int] | None = (3, 16, 16), step: float = 0.001,
                 nan_after: int | None = None):
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
        self.calls = 0

    def predict_action(self, obs):
        self.calls += 1
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
