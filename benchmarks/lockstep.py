"""Benchmark: how many times real time the lockstep simulator runs, per core.

For each configuration, one process records scripted Push-T demonstrations exactly as
``robot-stack collect --lockstep`` does (arm servo loop at 125 Hz, physics at 100 Hz, and — for sim_pusht —
two 320x240 cameras at 30 fps rendered and H.264-encoded into the episode's videos) and reports simulated
seconds per wall-clock second on that one core. ``--workers`` runs that many such processes in parallel,
as ``--workers`` does in the CLI, and reports the aggregate.

Then the ``robot_stack/PushT-v0`` gymnasium environment, one process, in its two observation modes: what
``eval --lockstep`` and standard tooling run, with the cameras rendered (and cropped and resized as the
rig's cameras are) but nothing encoded. Its actions sweep the TCP target smoothly across the table.

Last, the bound cameras put on it: CPU time per frame of H.264-encoding rendered 320x240 Push-T frames with
the recorder's encoder settings, at its preset and at the fastest one.

Usage: python benchmarks/lockstep.py [--episodes 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import gymnasium
import numpy as np

import robot_stack.rig.gym_env  # noqa: F401  (registers robot_stack/PushT-v0)
from robot_stack.data.lockstep_collect import LockstepCollectConfig, record_demo
from robot_stack.data.video_recorder import DEFAULT_PRESET, VideoWriter
from robot_stack.hardware.teleop import load_profile
from robot_stack.rig import load_rig
from robot_stack.sim.lockstep import LockstepRig
from robot_stack.sim.pusht.physics import PushTPhysics
from robot_stack.sim.pusht.render import render


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


def _gym(obs_type: str, episodes: int, steps: int = 300) -> tuple[float, float]:
    env = gymnasium.make("robot_stack/PushT-v0", obs_type=obs_type)
    lo, hi = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    simulated, wall = 0.0, 0.0
    for episode in range(episodes):
        env.reset(seed=episode)
        sim = env.unwrapped.sim
        start, t0 = sim.now(), time.perf_counter()
        for step in range(steps):  # a slow Lissajous figure over the middle of the workspace
            phase = 2 * np.pi * step / 100
            env.step(centre + 0.6 * half * np.array([np.sin(phase), np.sin(2 * phase)]))
        wall += time.perf_counter() - t0
        simulated += sim.now() - start
    env.close()
    return simulated, wall


def _encode_ms_per_frame(preset: str, frames: list[np.ndarray]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        writer = VideoWriter(Path(folder) / "v.mp4", 30, (frames[0].shape[1], frames[0].shape[0]), preset=preset)
        t0 = time.process_time()
        for i, frame in enumerate(frames):
            writer.write(frame, i / 30)
        writer.close()
        return (time.process_time() - t0) / len(frames) * 1e3


def _encoding_bound() -> None:
    rig = load_rig("sim_pusht")
    physics = PushTPhysics(rig.scene)
    state = physics.reset(1)
    frames = []
    for _ in range(150):  # the pusher driving into the block: frames that change like a demonstration's
        state = physics.step(state["block_pose"][:2])
        frames.append(render(rig.scene, state, "oblique", (320, 240)))
    for preset in (DEFAULT_PRESET, "ultrafast"):
        ms = _encode_ms_per_frame(preset, frames)
        print(f"H.264 {preset:<9} {ms:5.2f} ms CPU per 320x240 frame: 2 cameras x 30 fps cap collection at "
              f"{1000 / (60 * ms):.0f}x real time per core")


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
    for obs_type, what in (("lowdim", "no cameras"), ("image", "2 cameras rendered")):
        simulated, wall = _gym(obs_type, args.episodes)
        print(f"{'PushT-v0 ' + obs_type:<16} {1:>7} {simulated:>12.1f} {wall:>8.1f} {simulated / wall:>12.1f} "
              f"{simulated / wall:>9.1f}  ({what}, not encoded)")
    _encoding_bound()


if __name__ == "__main__":
    main()
