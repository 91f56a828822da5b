"""Benchmark: the policy loop end to end on the simulated Push-T rig, local and remote (loopback) mode.

Rig: the built-in simulated Push-T rig (hardware_configs/sim_pusht.yaml) as ``robot-stack eval`` starts it:
the simulated UR5 controller (125 Hz), the Push-T scene driven by the arm's actual TCP, and the two simulated
cameras (top, oblique; 320x240 @ 30 fps) rendering the scene; each in its own process. Policy: a Push-T Diffusion Policy checkpoint (``--checkpoint``), or an untrained one of the
``--size`` given (timing does not depend on the weights). Modes:

* ``local``: the policy in a ``PolicyProcess`` on a private ipc socket (what ``robot-stack eval`` does);
* ``remote``: ``robot-stack serve`` as a separate program on 127.0.0.1 (what a GPU server would run).

For each mode the robot-side loop (``run_rollout``) runs for ``--seconds`` and reports

* obs -> first action: from the observation's timestamp to the target time of the first action of each
  chunk that was executed (what the arm does first with new information), and chunk latency: from the
  observation's timestamp to the chunk's arrival on the robot side;
* chunk period: time between consecutive chunk arrivals;
* dropped actions: stale on arrival or past due (never executed late), and superseded by the next chunk;
* control jitter: |diff(loop_time) - 1/f| of the controller's servo cycles during the run, and overruns;
  plus the controller's own count of waypoints it received too late (must be 0).

    python benchmarks/end_to_end.py                       # tiny untrained policy, 10 s per mode
    python benchmarks/end_to_end.py --size paper --device cuda --seconds 20
    python benchmarks/end_to_end.py --checkpoint runs/pusht/best.ckpt --modes remote
    python benchmarks/end_to_end.py --modes local --record   # each mode without, then with both cameras
                                                             # recorded to H.264 as `eval` does; then the
                                                             # record/no-record latency p95 ratio

Numbers depend on the machine and its load: record them with the CPU/GPU model and what else was running.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_stack.data.video_recorder import VideoRecorder
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.rig import load_rig, start_rig
from robot_stack.runtime import now
from robot_stack.server.executor import ExecutorConfig, RecedingHorizonExecutor
from robot_stack.server.local import CheckpointService, PolicyProcess
from robot_stack.server.observation import ObservationAssembler
from robot_stack.server.rollout import RolloutConfig, run_rollout
from robot_stack.server.transport import PolicyClient

ROOT = Path(__file__).resolve().parents[1]
# Policy sizes for untrained checkpoints: "paper" is the built-in push_t config (ResNet-18, U-Net
# 256-512-1024, 16 DDIM steps); "tiny" is small enough for a shared laptop CPU.
SIZES = {
    "paper": {},
    "tiny": {
        "image_size": [96, 96],
        "vision": {"width": 16, "stage_blocks": [1, 1], "crop_size": [84, 84], "num_keypoints": 16, "feature_dim": 32},
        "unet": {"down_dims": [64, 128], "diffusion_step_embed_dim": 64},
        "noise_scheduler": {"num_inference_steps": 8},
    },
}


def untrained_checkpoint(path: Path, size: str) -> Path:
    """A complete Push-T checkpoint with random weights (normalizer fitted to the sim table's range)."""
    from robot_stack.policy.checkpoint import save_checkpoint
    from robot_stack.policy.config import load_task_config
    from robot_stack.policy.diffusion_policy import DiffusionPolicy

    cfg = load_task_config("push_t", {"policy": SIZES[size]})
    policy = DiffusionPolicy(cfg.policy)
    xy = np.random.default_rng(0).uniform([0.3, -0.15], [0.6, 0.15], size=(512, 2))
    policy.fit_normalizer({"robot_eef_pose": xy}, xy)
    return save_checkpoint(path, cfg, {"model": policy.state_dict()})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(values, scale: float = 1e3) -> str:
    if len(values) == 0:
        return "n/a"
    v = np.asarray(values) * scale
    return f"{np.median(v):7.1f} {np.percentile(v, 95):7.1f} {v.max():7.1f}"


class JitterSampler:
    """Collects the controller's servo-cycle start times (``loop_time``) while the loop runs."""

    def __init__(self, robot: RobotController, every: float = 0.5):
        self.robot, self.every = robot, every
        self.loop_times: list[np.ndarray] = []
        self.last = now()
        self.next = now() + every

    def tick(self) -> None:
        if now() >= self.next:
            self.next = now() + self.every
            records = self.robot.state.get_since(self.last, key="loop_time")
            if len(records["loop_time"]):
                self.loop_times.append(records["loop_time"])
                self.last = float(records["loop_time"][-1])


def run_mode(mode: str, checkpoint: Path, device: str, seconds: float, steps_per_inference: int, dt: float,
             record: bool = False, servo_hz: float | None = None) -> dict:
    rig = load_rig(ROOT / "hardware_configs" / "sim_pusht.yaml")
    if servo_hz is not None:  # e.g. an e-series' 500 Hz instead of the CB3's 125
        rig = dataclasses.replace(rig, robot=dataclasses.replace(rig.robot, frequency=servo_hz))
    with contextlib.ExitStack() as stack:
        server = None
        if mode == "local":
            policy = PolicyProcess(CheckpointService(str(checkpoint), device, dt))
            policy.start(timeout=120.0)
            stack.callback(policy.stop)
            endpoint = policy.endpoint
        else:
            endpoint = f"tcp://127.0.0.1:{_free_port()}"
            server = subprocess.Popen(
                [sys.executable, "-m", "robot_stack", "serve", "--checkpoint", str(checkpoint), "--bind", endpoint,
                 "--device", device, "--dt", str(dt)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            stack.callback(server.wait, 30)
            stack.callback(server.terminate)
        client = stack.enter_context(PolicyClient(endpoint))
        info = _wait_info(client, server)
        running = stack.enter_context(start_rig(rig))
        robot = running.robot
        running.scene.reset(0)
        # Lower the tip onto the table first, so the run measures steady pushing.
        start = robot.get_state()["actual_tcp_pose"].copy()
        start[2] = rig.planar_z
        robot.client.servo_l(start, 0.4)  # within the controller's command_timeout
        time.sleep(1.0)
        executor = RecedingHorizonExecutor(
            robot.client, ExecutorConfig(dt=dt, steps_per_inference=steps_per_inference, action_delay_steps=2),
            info.n_action_steps, info.action_dim, start,
        )
        assembler = ObservationAssembler(info, dt, {i: c.frames for i, c in enumerate(running.cameras)}, robot.state)
        sampler = JitterSampler(robot)
        n_dropped0 = int(robot.get_state()["n_dropped"])

        def tick():
            sampler.tick()
            running.supervisor.check()

        recorders = []
        if record:  # both cameras to H.264 in this process's recorder threads, as `eval` records episodes
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            recorders = [VideoRecorder(c.frames, folder / f"{i}.mp4", fps=c.config.fps).start()
                         for i, c in enumerate(running.cameras)]
        stats = run_rollout(assembler, client, executor, RolloutConfig(max_duration=seconds), on_tick=tick)
        recorded = [r.stop() for r in recorders]
        final = robot.get_state()
    ex = stats.execution
    arrivals = np.array([o.t_received for o in stats.outcomes])
    loop_times = np.concatenate(sampler.loop_times) if sampler.loop_times else np.zeros(0)
    period = 1.0 / robot.config.frequency
    jitter = np.abs(np.diff(loop_times) - period)
    total = ex.chunks * info.n_action_steps
    return {
        "mode": mode + (" + recording" if record else ""),
        "recorded_frames": [s.frames for s in recorded],
        "recorder_lost_frames": [s.recorder_dropped for s in recorded],
        "chunks": ex.chunks,
        "obs_to_first_action_s": ex.first_action_delays,
        "chunk_latency_s": ex.latencies,
        "chunk_period_s": np.diff(arrivals).tolist(),
        "actions": total,
        "executed": ex.scheduled,
        "dropped_stale": ex.dropped,
        "superseded": ex.superseded,
        "controller_late_waypoints": int(final["n_dropped"]) - n_dropped0,
        "jitter_s": jitter.tolist(),
        "overruns": int(np.sum(np.diff(loop_times) > 2 * period)),
        "late_cycles": int(np.sum(np.diff(loop_times) > 1.5 * period)),
        "cycles": int(max(len(loop_times) - 1, 0)),
        "timeouts": stats.inference_timeouts,
        "refused_observations": stats.refused_observations,
    }


def _wait_info(client: PolicyClient, server: subprocess.Popen | None, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while True:
        if server is not None and server.poll() is not None:
            raise RuntimeError(f"robot-stack serve exited with code {server.returncode}")
        try:
            return client.info(timeout=1.0)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def report(result: dict) -> None:
    print(f"\n## {result['mode']} mode: {result['chunks']} chunks")
    print("| metric (ms)            |  median     p95     max |")
    print("|------------------------|-------------------------|")
    print(f"| obs -> first action    | {_stats(result['obs_to_first_action_s'])} |")
    print(f"| chunk latency          | {_stats(result['chunk_latency_s'])} |")
    print(f"| chunk period           | {_stats(result['chunk_period_s'])} |")
    print(f"| servo-cycle jitter     | {_stats(result['jitter_s'])} |")
    print(f"actions: {result['actions']} predicted, {result['executed']} executed, {result['dropped_stale']} dropped "
          f"(stale), {result['superseded']} superseded; controller received {result['controller_late_waypoints']} "
          f"late waypoints; {result['overruns']} servo overruns, {result['late_cycles']} of {result['cycles']} cycles "
          f"late (> 1.5 periods); {result['timeouts']} inference timeouts, "
          f"{result['refused_observations']} refused observations")
    if result["recorded_frames"]:
        print(f"recorded {result['recorded_frames']} frames per camera, {result['recorder_lost_frames']} lost by the "
              "recorder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a Push-T checkpoint (default: an untrained one of --size)")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny", help="untrained policy size")
    parser.add_argument("--device", default="cpu", help="policy device: cpu, cuda, ...")
    parser.add_argument("--modes", nargs="+", choices=["local", "remote"], default=["local", "remote"])
    parser.add_argument("--seconds", type=float, default=10.0, help="loop duration per mode")
    parser.add_argument("--steps-per-inference", type=int, default=6)
    parser.add_argument("--dt", type=float, default=0.1, help="policy step (s)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--record", action="store_true",
                        help="run each mode twice, without and with both cameras recorded, and compare latency")
    parser.add_argument("--servo-hz", type=float, help="the arm's servo rate (default: the rig's 125 Hz; e.g. 500)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or untrained_checkpoint(Path(tmp) / f"{args.size}.ckpt", args.size)
        print(f"# end-to-end policy loop, sim Push-T rig; policy {args.checkpoint or args.size + ' (untrained)'} on "
              f"{args.device}; dt {args.dt} s, {args.steps_per_inference} steps per inference; servo "
              f"{args.servo_hz or 125:g} Hz; "
              f"{os.cpu_count()} CPUs")
        results = []
        for mode in args.modes:
            for record in ((False, True) if args.record else (False,)):
                results.append(run_mode(mode, checkpoint, args.device, args.seconds, args.steps_per_inference,
                                        args.dt, record, args.servo_hz))
                report(results[-1])
            if args.record:
                plain, recorded = results[-2], results[-1]
                ratio = np.percentile(recorded["chunk_latency_s"], 95) / np.percentile(plain["chunk_latency_s"], 95)
                print(f"\n{mode}: record/no-record latency p95 ratio: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
