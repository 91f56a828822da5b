"""Benchmark: the RobotController servo loop on the simulated UR5, at 125 Hz (CB3) and 500 Hz (e-series).

For each rate, a controller process runs the sim rig (hardware_configs/sim_ur5.yaml) while this process streams
waypoints along a circle (like a policy sending action chunks). From the published state records it reports:

* period error: ``diff(loop_time) - 1/f`` — how far each cycle started from its nominal period (median of
  |error|, p99 of |error|, max), and the count of overruns (cycles that started more than a period late);
* cycle work: ``timestamp - loop_time`` — servoL + IK + state read inside one cycle (median, p99);
* tracking: distance between the commanded and the actual TCP position (median, max), the sim's lag.

Usage: python benchmarks/control_loop.py [--seconds 5] [--rig hardware_configs/sim_ur5.yaml]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from robot_stack.hardware.robot.config import load_robot_config
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.runtime import now

ROOT = Path(__file__).resolve().parents[1]


def circle(center: np.ndarray, t: float, radius: float = 0.04, period: float = 3.0) -> np.ndarray:
    pose = center.copy()
    angle = 2 * np.pi * t / period
    pose[:2] += radius * np.array([np.cos(angle) - 1.0, np.sin(angle)])
    return pose


def run(rig: Path, frequency: float, seconds: float) -> dict[str, np.ndarray]:
    config = load_robot_config(rig).replace(frequency=frequency)
    chunks = []
    with RobotController(config) as robot:
        center = robot.get_state()["actual_tcp_pose"]
        t0 = now()
        last = robot.get_state()["loop_time"]
        next_poll = t0
        while now() < t0 + seconds:
            t = now()
            for lead in (0.1, 0.2, 0.3):  # a short chunk of future waypoints, re-sent every 50 ms
                robot.schedule_waypoint(circle(center, t + lead - t0), t + lead)
            if t >= next_poll:
                new = robot.state.get_since(float(last), key="loop_time")
                if len(new["loop_time"]):
                    chunks.append(new)
                    last = new["loop_time"][-1]
                next_poll = t + 0.2
            time.sleep(0.05)
        chunks.append(robot.state.get_since(float(last), key="loop_time"))
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def report(frequency: float, rec: dict[str, np.ndarray]) -> None:
    period = 1.0 / frequency
    err = np.abs(np.diff(rec["loop_time"]) - period) * 1e3
    work = (rec["timestamp"] - rec["loop_time"]) * 1e3
    track = np.linalg.norm(rec["commanded_pose"][:, :3] - rec["actual_tcp_pose"][:, :3], axis=1) * 1e3
    gaps = np.diff(rec["loop_time"]) > 1.5 * period
    print(
        f"{frequency:5.0f} Hz | cycles {len(rec['loop_time']):6d} | period error ms: median {np.median(err):.3f} "
        f"p99 {np.percentile(err, 99):.3f} max {err.max():.3f} | late cycles (>1.5 periods) {int(gaps.sum())} "
        f"overruns {int(rec['n_overruns'][-1])} | cycle work ms: median {np.median(work):.3f} "
        f"p99 {np.percentile(work, 99):.3f} | tracking mm: median {np.median(track):.2f} max {track.max():.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration per rate")
    parser.add_argument("--rig", type=Path, default=ROOT / "hardware_configs" / "sim_ur5.yaml")
    args = parser.parse_args()
    for frequency in (125.0, 500.0):
        report(frequency, run(args.rig, frequency, args.seconds))


if __name__ == "__main__":
    main()
