"""Benchmark: what happens at chunk boundaries with `--chunking switch`, `inpaint` and `ensemble`, across latencies.

For each simulated inference latency and chunking mode, the shipped low-dim checkpoint runs held-out
episodes on the lockstep simulator (the runtime's evaluation loop in simulated time). Printed per row: the
jump of the arm's target position at chunk boundaries (how far each new chunk's first on-time action is
from where the plan it replaced was at that time; p95 and max over all boundaries, mm) and the success
rate, and the jerk along the executed waypoint path (``ExecutionStats.jerks``: third divided differences of
the waypoints handed to the arm, a replaced waypoint cut out; RMS and p95, m/s^3); last, ``inpaint/switch
boundary jump p95 ratio: X`` (and the same for ensemble) over all latencies pooled.

``--runtime`` runs the same through the full runtime instead (``robot-stack eval`` on ``sim_pusht_state``: the
arm and scene processes, the local policy process, real time), once per mode; the latency column is then the
measured mean inference latency. Keep the machine otherwise idle for it.

Usage: python benchmarks/chunk_smoothing.py [--episodes 50] [--latencies 0 0.1 0.2 0.3] [--modes switch inpaint
ensemble] [--workers 2] [--runtime] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from robot_stack.rig import load_rig
from robot_stack.server.evaluation import results_json
from robot_stack.server.executor import ExecutorConfig
from robot_stack.server.messages import CHUNKING_MODES
from robot_stack.server.local import CheckpointService
from robot_stack.server.lockstep_eval import LockstepEvalConfig, evaluate_lockstep
from robot_stack.server.rollout import RolloutConfig
from robot_stack.sim.lockstep import LockstepRig
from robot_stack.sim.pusht import HELD_OUT_SEED_START

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "push_t_lowdim_sim.ckpt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    parser.add_argument("--modes", nargs="+", choices=CHUNKING_MODES, default=list(CHUNKING_MODES))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", type=Path, help="also write every row here")
    parser.add_argument("--runtime", action="store_true", help="through the full runtime, in real time")
    args = parser.parse_args()
    seeds = list(range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + args.episodes))
    print(f"{'latency s':>9} {'mode':>8} {'boundaries':>10} {'jump p95 mm':>11} {'jump max mm':>11} "
          f"{'jerk rms':>9} {'jerk p95':>9} {'success':>8}")
    rows, pooled = [], {mode: [] for mode in args.modes}
    runs = ([(None, mode) for mode in args.modes] if args.runtime else
            [(latency, mode) for latency in args.latencies for mode in args.modes])
    for latency, mode in runs:
        episodes = _runtime(mode, args.episodes) if args.runtime else _lockstep(mode, latency, seeds, args.workers)
        jumps = np.array([j for e in episodes for j in e["boundary_jumps_mm"]])
        jerks = np.array([j for e in episodes for j in e["jerks"]])
        if latency is None:  # measured
            latency = float(np.mean([e["latency_mean"] for e in episodes]))
        success = float(np.mean([e["success"] for e in episodes]))
        pooled[mode].extend(jumps.tolist())
        row = {"latency": latency, "mode": mode, "boundaries": int(len(jumps)),
               "jump_p95_mm": float(np.percentile(jumps, 95)), "jump_max_mm": float(jumps.max()),
               "jerk_rms": float(np.sqrt(np.mean(jerks ** 2))), "jerk_p95": float(np.percentile(jerks, 95)),
               "success_rate": success, "episodes": len(episodes)}
        rows.append(row)
        print(f"{latency:>9.2f} {mode:>8} {row['boundaries']:>10} {row['jump_p95_mm']:>11.2f} "
              f"{row['jump_max_mm']:>11.2f} {row['jerk_rms']:>9.1f} {row['jerk_p95']:>9.1f} {success:>8.0%}",
              flush=True)
    ratios = {}
    for mode in (m for m in args.modes if m != "switch" and "switch" in pooled):
        ratios[mode] = float(np.percentile(pooled[mode], 95) / np.percentile(pooled["switch"], 95))
        print(f"{mode}/switch boundary jump p95 ratio: {ratios[mode]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(CHECKPOINT.name), "seeds": [seeds[0], seeds[-1]],
                                         "mode": "runtime" if args.runtime else "lockstep", "rows": rows,
                                         "p95_ratios": ratios}, indent=1))


def _lockstep(mode: str, latency: float, seeds: list[int], workers: int | None) -> list[dict]:
    """Per-episode rows (``results_json``) of the lockstep simulator at a simulated ``latency``."""
    info = CheckpointService(str(CHECKPOINT)).check().info
    rig = load_rig("sim_pusht_state")
    config = LockstepEvalConfig(str(CHECKPOINT), LockstepRig(rig.robot, rig.scene, tuple(rig.cameras), rig.name),
                                ExecutorConfig(dt=info.dt, action_delay_steps=info.action_delay_steps, chunking=mode),
                                RolloutConfig(max_duration=rig.scene.time_limit), rig.planar_z, latency)
    return results_json(evaluate_lockstep(config, seeds, workers))["episodes"]


def _runtime(mode: str, episodes: int) -> list[dict]:
    """Per-episode rows of ``robot-stack eval`` through the runtime (from the held-out seeds)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        subprocess.run([sys.executable, "-m", "robot_stack", "eval", "--rig", "sim_pusht_state", "--checkpoint",
                        str(CHECKPOINT), "--episodes", str(episodes), "--chunking", mode, "--no-preview",
                        "--no-record", "--device", "cpu", "--latency", "none", "--json", str(out)], check=True)
        return json.loads(out.read_text())["episodes"]


if __name__ == "__main__":
    main()
