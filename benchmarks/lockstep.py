"""Benchmark: how many times real time the lockstep simulator runs, per core.

For each configuration, one process records scripted Push-T demonstrations exactly as
``robot-stack collect --lockstep`` does (arm servo loop at 125 Hz, physics at 100 Hz, and — for sim_pusht —
two 320x240 cameras at 30 fps rendered and H.264-encoded into the episode's videos) and reports simulated
seconds per wall-clock second on that one core. ``--workers`` runs that many such processes in parallel,
as ``--workers`` does in the CLI, and reports the aggregate.

Usage: python benchmarks/lockstep.py [--episodes 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

from robot_stack.data.lockstep_collect import LockstepCollectConfig, record_demo
from robot_stack.hardware.teleop import load_profile
from robot_stack.rig import load_rig
from robot_stack.sim.lockstep import LockstepRig


def _demos(rig_name: str, seeds: list[int]) -> tuple[float, float]:
    rig = load_rig(rig_name)
    config = LockstepCollectConfig(LockstepRig(rig.robot, rig.scene, tuple(rig.cameras), rig.name),
                                   load_profile("scripted"), rig.teleop.mode, rig.planar_z, keep_failed=True)
    simulated = 0.0
    t0 = time.perf_counter()
    for seed in seeds:
        with tempfile.TemporaryDirectory() as staging:
            simulated += record_demo(config, seed, Path(staging)).duration
    return simulated, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3, help="demonstrations per worker")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(f"{'rig':<16} {'workers':>7} {'simulated s':>12} {'wall s':>8} {'x real time':>12} {'per core':>9}")
    for rig in ("sim_pusht_state", "sim_pusht"):
        jobs = [(rig, list(range(w * args.episodes, (w + 1) * args.episodes))) for w in range(args.workers)]
        t0 = time.perf_counter()
        with mp.get_context("spawn").Pool(args.workers) as pool:
            parts = pool.starmap(_demos, jobs)
        wall = time.perf_counter() - t0
        simulated = sum(p[0] for p in parts)
        per_core = sum(p[0] for p in parts) / sum(p[1] for p in parts)
        print(f"{rig:<16} {args.workers:>7} {simulated:>12.1f} {wall:>8.1f} {simulated / wall:>12.1f} {per_core:>9.1f}")


if __name__ == "__main__":
    main()
