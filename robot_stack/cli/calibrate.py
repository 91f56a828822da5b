"""``robot-stack calibrate latency``: measure a rig's latencies and write ``calibration/<rig>/latency.yaml``.

Examples::

    robot-stack calibrate latency --rig sim_pusht
    robot-stack calibrate latency --rig hardware_configs/ur5_cb3.yaml --checkpoint runs/x/latest.ckpt --device cuda

The arm moves to a calibration pose (on scene rigs: above the table centre, clear of the block), makes 20 small
steps and then sweeps +-3 cm along base x for 6 s while every camera watches; see ``robot_stack.rig.latency``
for what is measured and how. With ``--checkpoint`` the policy's inference latency is measured too, through
the same policy process as ``eval``. On a real robot keep a hand on the e-stop and the sweep's path free.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from robot_stack.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="measure a rig's latencies (arm, cameras, policy) into calibration/<rig>/latency.yaml",
        description="Measure the arm's command latency and tracking lag, each camera's latency and timestamp "
        "offset, and optionally the policy's inference latency, on the running rig.",
    )
    parser.add_argument("what", choices=["latency"], help="what to calibrate")
    parser.add_argument("--rig", required=True, help="rig YAML path or shipped rig name")
    parser.add_argument("--checkpoint", help="also measure this policy's inference latency")
    parser.add_argument("--device", default="auto", help="device for the policy (auto | cpu | cuda[:N] | mps)")
    parser.add_argument("--camera", action="append", help="only these cameras (repeatable; default: all)")
    parser.add_argument("--amplitude", type=float, default=0.03, help="sweep amplitude along base x, m (default 0.03)")
    parser.add_argument("--cycles", type=int, default=3, help="sweep cycles of 2 s (default 3)")
    parser.add_argument("--out", type=Path, help="where to write (default: calibration/<rig>/latency.yaml)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from robot_stack.data.replay import ReplayError
    from robot_stack.rig import load_rig, preflight, start_rig
    from robot_stack.rig.latency import CalibrationError, calibrate_latency, latency_path, save_latency

    if not 0.005 <= args.amplitude <= 0.1:
        raise ConfigError(f"--amplitude must be in [0.005, 0.1] m, got {args.amplitude}")
    if args.cycles < 2:
        raise ConfigError(f"--cycles must be >= 2, got {args.cycles}")
    rig = load_rig(args.rig)
    names = [c.name for c in rig.cameras]
    unknown = sorted(set(args.camera or ()) - set(names))
    if unknown:
        raise ConfigError(f"--camera {', '.join(unknown)}: the rig has cameras {names}")
    chosen = [i for i, c in enumerate(rig.cameras) if args.camera is None or c.name in args.camera]
    out = args.out or latency_path(rig.name)
    preflight(rig)
    with contextlib.ExitStack() as stack:
        extra, infer = [], None
        if args.checkpoint:
            infer, process = _inference_probe(args, stack)
            extra.append(process)
        running = stack.enter_context(start_rig(rig, extra=extra))
        centre = np.array(running.robot.get_state()["actual_tcp_pose"], dtype=np.float64)
        if rig.scene is not None:  # above the table centre, the tip clear of the block
            centre[:2] = rig.scene.table_center
            centre[2] = rig.scene.table_z + rig.scene.contact_height + 0.02
        try:
            calibration = calibrate_latency(
                running.robot.client, {rig.cameras[i].name: running.cameras[i].frames for i in chosen}, centre,
                rig.name, amplitude=args.amplitude, cycles=args.cycles, infer=infer,
                progress=lambda m: print(m, flush=True))
        except (CalibrationError, ReplayError) as exc:  # the arm did not do what was asked of it
            print(f"robot-stack calibrate: {exc}", file=sys.stderr)
            return 1
    save_latency(calibration, out)
    print(calibration.summary(), flush=True)
    print(f"wrote {out}", flush=True)
    return 0


def _inference_probe(args: argparse.Namespace, stack: contextlib.ExitStack):
    """(infer() -> latency s, the policy process to start with the rig) for ``args.checkpoint``."""
    from robot_stack.cli.serve import resolve_device
    from robot_stack.runtime import now
    from robot_stack.server.local import CheckpointService, PolicyProcess
    from robot_stack.server.transport import PolicyClient

    service = CheckpointService(args.checkpoint, resolve_device(args.device))
    info = service.check().info  # a bad checkpoint is one line before anything starts
    process = PolicyProcess(service)
    client = stack.enter_context(PolicyClient(process.endpoint, timeout=10.0))
    obs = info.neutral_observation()

    def infer() -> float:
        t = now()
        client.submit(obs, t)
        chunk = None
        while chunk is None:
            chunk = client.poll(timeout=10.0)
        return chunk.t_received - t

    return infer, process
