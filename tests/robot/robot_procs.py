"""Processes and driver factories for the controller tests (importable in spawned children)."""

from __future__ import annotations

import numpy as np

from robot_stack.hardware.robot.controller import RobotClient
from robot_stack.hardware.robot.sim_ur5 import SimUR5
from robot_stack.runtime import DeviceProcess, now, precise_sleep


class Commander(DeviceProcess):
    """Streams waypoints along a straight line (like a policy sending action chunks) until stopped/killed."""

    def __init__(self, client: RobotClient, start_pose, velocity, lead: float = 0.3, period: float = 0.05):
        super().__init__(name="commander")
        self.client = client
        self.start_pose = np.asarray(start_pose, dtype=np.float64)
        self.velocity = np.asarray(velocity, dtype=np.float64)
        self.lead = lead
        self.period = period

    def setup(self) -> None:
        self.t0 = now()

    def step(self) -> None:
        t = now() + self.lead
        pose = self.start_pose.copy()
        pose[:3] += self.velocity * (t - self.t0)
        self.client.schedule_waypoint(pose, t)
        precise_sleep(self.period)


class _FaultyArm(SimUR5):
    """A simulated arm that goes into protective stop 0.3 s after it starts."""

    def get_timestamp(self) -> float:
        t = super().get_timestamp()
        if t > 0.3 and not self.is_protective_stopped():
            self.trigger_protective_stop("simulated collision")
        return t


def faulty_arm(config, clock, seed=0):
    return _FaultyArm(config, seed=seed, clock=clock)
