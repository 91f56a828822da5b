"""Benchmark: measured TCP speed under a waypoint flood with late servo cycles, with and without the lead bound.

The servo loop on the simulated UR5 and a SimClock (deterministic): far waypoints that switch side every
0.6 s, sent every other cycle, and 5 % of cycles late by 5-30 ms. Speeds come from the published state
(pose differences over state timestamps). "without" replaces the bound on the servoL target's lead over
the actual pose by the identity, to show what it prevents.

    python benchmarks/servo_speed_bound.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_stack.hardware.robot.clock import SimClock
from robot_stack.hardware.robot.config import load_robot_config
from robot_stack.hardware.robot.interpolator import pose_distance
from robot_stack.hardware.robot.servo_loop import ServoLoop
from robot_stack.hardware.robot.sim_ur5 import SimUR5

RIG = Path(__file__).resolve().parents[1] / "hardware_configs" / "sim_ur5.yaml"


def flood(frequency: float, bounded: bool, seconds: float = 20.0) -> tuple[float, float]:
    """Max measured (m/s, rad/s) over ``seconds`` of the flood."""
    config = load_robot_config(RIG).replace(frequency=frequency)
    clock = SimClock(1000.0)
    arm = SimUR5(config, seed=0, clock=clock)
    arm.connect()
    loop = ServoLoop(arm, config, clock)
    if not bounded:
        loop._bounded_lead = lambda target, actual: target  # noqa: SLF001 - the benchmark's "without" row
    loop.start()
    rng = np.random.default_rng(0)
    p0 = arm.get_actual_tcp_pose().copy()
    t0 = clock.now()
    records = []
    k = 0
    while clock.now() < t0 + seconds:
        t = clock.now()
        if k % 2 == 0:
            side = 1 if int((t - t0) / 0.6) % 2 == 0 else -1
            goal = p0.copy()
            goal[0] += 0.12 * side
            goal[1] += 0.08 * side * (1 if int((t - t0) / 1.3) % 2 else -1)
            goal[5] += 0.4 * side
            loop.schedule_waypoint(goal, t + 0.05)
        if rng.random() < 0.05:
            clock.wait_until(t + rng.uniform(0.005, 0.03))
        records.append(loop.cycle())
        loop.wait_next()
        k += 1
    ts = np.array([r["timestamp"] for r in records])
    poses = np.array([r["actual_tcp_pose"] for r in records])
    dt = np.diff(ts)
    moves = np.array([pose_distance(a, b) for a, b in zip(poses[:-1], poses[1:])])
    later = dt > 1e-4
    return float((moves[later, 0] / dt[later]).max()), float((moves[later, 1] / dt[later]).max())


def main() -> None:
    config = load_robot_config(RIG)
    print(f"limits: {config.max_pos_speed} m/s, {config.max_rot_speed} rad/s")
    for frequency in (125.0, 500.0):
        for bounded in (False, True):
            v, w = flood(frequency, bounded)
            print(f"{frequency:5.0f} Hz  {'with' if bounded else 'without'} lead bound: max measured "
                  f"{v:.3f} m/s, {w:.3f} rad/s")


if __name__ == "__main__":
    main()
