"""``robot-stack eval``: run a trained policy on a rig, episode by episode, and report how it did.

Examples::

    robot-stack eval --rig hardware_configs/sim_pusht.yaml --checkpoint runs/pusht/best.ckpt --episodes 50
    robot-stack eval --rig hardware_configs/ur5_cb3_example.yaml --remote tcp://gpu-box:5555   # + $ROBOT_STACK_TOKEN

Local mode (default) runs the policy in its own process on this machine; ``--remote`` connects to a
``robot-stack serve`` elsewhere instead. Either way this process keeps control of the arm: observations
too old are refused, stale actions dropped, and a late or lost server leaves the arm holding.

Before anything starts, the rig (cameras, robot reachability), the checkpoint (readable, and observing
what this rig provides) and ``--out`` are checked; a problem is one line and exit 2. The policy process is
supervised with the rig: if it dies, the rig stops and the command exits 1 naming it.

Each episode resets the simulated scene (seed ``--seed + i``; by default from the held-out range that
``collect`` does not use, and a warning if a seed was trained on), runs until success (held 0.5 s), the time
limit, or a key: ``s`` ends the episode, ``q``/Esc quits (in the preview window or this terminal). Episodes
are recorded like demonstrations into ``--out`` (default ``runs/eval/<rig>-<time>``; ``--no-record`` to
skip). One line per episode, then the success rate (simulated rigs: coverage of the goal by the T block).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from robot_stack.cli.serve import add_token_argument, resolve_device
from robot_stack.config import ConfigError
from robot_stack.data.preview import display_available
from robot_stack.sim.pusht.config import HELD_OUT_SEED_START

if TYPE_CHECKING:
    from robot_stack.rig import RigConfig

log = logging.getLogger(__name__)

DEFAULT_FREQUENCY = 10.0  # Hz: collect's default recording rate, hence the usual policy step
_SERVER_WAIT_S = 120.0  # loading a checkpoint (torch import, CUDA init) can take a while


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="run a trained policy on a rig and report per-episode results",
        description="Run episodes with a policy (in its own process, or a remote `robot-stack serve`), record "
        "them like demonstrations and print per-episode metrics and the success rate.",
    )
    parser.add_argument("--rig", required=True, help="rig YAML path, or a shipped rig name (sim_pusht, sim_ur5, ...)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="policy checkpoint to run locally (from `robot-stack train`)")
    source.add_argument("--remote", help="policy server endpoint, e.g. tcp://gpu-box:5555 (`robot-stack serve`)")
    add_token_argument(parser)
    parser.add_argument("--device", default="auto", help="local policy device: cpu, cuda, cuda:<i>, auto (default)")
    parser.add_argument("--episodes", type=_positive_int, default=1, help="number of episodes (default 1)")
    parser.add_argument("--max-duration", type=float,
                        help="seconds per episode (default: the scene's time_limit, else 60)")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED_START,
                        help=f"scene seed of the first episode (default {HELD_OUT_SEED_START}: the held-out seeds "
                        "that collect does not use)")
    parser.add_argument("--frequency", type=float,
                        help=f"policy step rate in Hz = the dataset's recording rate (default: the checkpoint's, "
                        f"else {DEFAULT_FREQUENCY:g})")
    parser.add_argument("--steps-per-inference", type=_positive_int,
                        help="actions executed per chunk before re-planning (default: the checkpoint's "
                             "steps_per_inference, else the whole chunk)")
    parser.add_argument("--chunking", choices=("switch", "inpaint", "ensemble"),
                        help="default: the checkpoint's chunking, else switch. switch: a new chunk replaces the rest "
                             "of the plan; inpaint: the policy "
                             "samples each chunk continuing the current plan (its committed actions kept); "
                             "ensemble: each action is the weighted mean of all recent chunks' predictions for "
                             "its time (ACT's temporal ensembling)")
    parser.add_argument("--ensemble-decay", type=float, default=0.01, metavar="M",
                        help="with --chunking ensemble: the i-th oldest prediction weighs exp(-M * i) (default "
                             "0.01, ACT's; larger: smoother, favouring older predictions)")
    parser.add_argument("--inference-timeout", type=float, default=1.0,
                        help="seconds before an unanswered request is abandoned (default 1)")
    parser.add_argument("--out", type=Path, help="dataset folder for the recordings (default runs/eval/<rig>-<time>)")
    parser.add_argument("--no-record", action="store_true", help="do not record the episodes")
    parser.add_argument("--no-preview", action="store_true", help="no camera window (automatic without a display)")
    parser.add_argument("--rerun", metavar="TARGET", help="also stream the live rig to Rerun: spawn (a new viewer), "
                        "rerun+http://HOST:PORT/proxy (a running one) or FILE.rrd (not with --lockstep)")
    parser.add_argument("--json", type=Path,
                        help="also write the results here: success_rate, mean_max_coverage, score, episodes")
    parser.add_argument("--lockstep", action="store_true",
                        help="evaluate on the lockstep simulator (simulated time, no processes, nothing recorded) "
                        "instead of the runtime; simulated Push-T rigs and local checkpoints only")
    parser.add_argument("--workers", type=_positive_int, help="--lockstep: episodes in parallel (default: the cores)")
    parser.add_argument("--inference-latency", type=float,
                        help="--lockstep: simulated seconds from request to action chunk (default: the median in the "
                        f"rig's latency calibration, else {_DEFAULT_INFERENCE_LATENCY})")
    parser.add_argument("--latency", default=None, metavar="FILE",
                        help="latency calibration to use (default: calibration/<rig>/latency.yaml if it exists, from "
                        "`robot-stack calibrate latency`; 'none': ignore it): its arm command latency becomes the "
                        "executor's robot latency")
    parser.set_defaults(func=run)


_DEFAULT_INFERENCE_LATENCY = 0.08  # s, simulated in --lockstep without a calibration


def _apply_latency_calibration(args: argparse.Namespace, rig: RigConfig) -> float:
    """The executor's robot latency, and ``args.inference_latency`` filled in, from the rig's latency
    calibration (``--latency``); says where each value comes from."""
    from robot_stack.rig.latency import find_latency, load_latency
    from robot_stack.server.executor import ExecutorConfig

    if args.latency == "none":
        calibration = None
    elif args.latency is not None:
        if not Path(args.latency).is_file():
            raise ConfigError(f"--latency {args.latency}: no such file (write one with `robot-stack calibrate latency`)")
        calibration = load_latency(args.latency)
    else:
        calibration = find_latency(rig.name)
    robot_latency = ExecutorConfig.robot_latency
    if calibration is not None:
        if calibration.rig != rig.name:
            raise ConfigError(f"--latency: the calibration is of rig {calibration.rig!r}, not {rig.name!r}")
        robot_latency = calibration.command_latency_max
        log.info("latency calibration of %s: robot latency %.1f ms (its command latency max)", rig.name,
                 robot_latency * 1e3)
        if args.inference_latency is None and calibration.inference is not None and args.lockstep:
            args.inference_latency = calibration.inference.median
            log.info("simulated inference latency %.1f ms (the calibration's median)", args.inference_latency * 1e3)
    if args.inference_latency is None:
        args.inference_latency = _DEFAULT_INFERENCE_LATENCY
    return robot_latency


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from robot_stack.rig import load_rig, preflight

    rig = load_rig(args.rig)
    if args.frequency is not None and not 0.5 <= args.frequency <= 100:
        raise ConfigError(f"--frequency must be in [0.5, 100] Hz, got {args.frequency}")
    if args.inference_timeout <= 0:
        raise ConfigError(f"--inference-timeout must be > 0, got {args.inference_timeout}")
    if args.max_duration is not None and args.max_duration <= 0:
        raise ConfigError(f"--max-duration must be > 0 s, got {args.max_duration}")
    max_duration = args.max_duration or (rig.scene.time_limit if rig.scene is not None else 60.0)
    robot_latency = _apply_latency_calibration(args, rig)
    if args.rerun is not None:
        if args.lockstep:
            raise ConfigError("--rerun streams a running rig; --lockstep runs none")
        from robot_stack.data.viewer import check_live_target

        check_live_target(args.rerun)
    if args.lockstep:
        return _evaluate_lockstep(args, rig, max_duration, robot_latency)
    if args.workers is not None:
        raise ConfigError("--workers is for --lockstep evaluation")
    preflight(rig)
    return _evaluate(args, rig, max_duration, robot_latency)


def _scene_fields(rig: RigConfig) -> list[str]:
    """The scene state fields a policy may observe as ``scene_<field>`` on this rig (none without a scene)."""
    from robot_stack.sim.pusht import SCENE_STATE_SPEC

    return [f for f in SCENE_STATE_SPEC if f != "timestamp"] if rig.scene is not None else []


def _gripper_fields(rig: RigConfig) -> list[str]:
    """The gripper state fields a policy may observe as ``gripper_<field>`` (none without a gripper)."""
    from robot_stack.hardware.gripper.controller import GRIPPER_STATE_SPEC

    return [f for f in GRIPPER_STATE_SPEC if f != "timestamp"] if rig.gripper is not None else []


def _evaluate_lockstep(args: argparse.Namespace, rig: RigConfig, max_duration: float, robot_latency: float) -> int:
    from tqdm import tqdm

    from robot_stack.server.evaluation import results_json, summarize
    from robot_stack.server.executor import ExecutorConfig, check_action_dim
    from robot_stack.server.local import CheckpointService
    from robot_stack.server.lockstep_eval import LockstepEvalConfig, evaluate_lockstep
    from robot_stack.server.observation import check_policy_observations
    from robot_stack.server.rollout import RolloutConfig
    from robot_stack.sim.lockstep import LockstepRig

    if args.remote:
        raise ConfigError("--lockstep runs the policy in this process: give --checkpoint, not --remote")
    lockstep = LockstepRig(rig.robot, rig.scene, tuple(rig.cameras), rig.name)  # ConfigError if it cannot
    dt = None if args.frequency is None else 1.0 / args.frequency
    info, trained_seeds, trained_cameras = CheckpointService(args.checkpoint, "cpu", dt).check()
    check_policy_observations(info, range(len(rig.cameras)), scene_fields=_scene_fields(rig))
    _check_cameras(args.checkpoint, trained_cameras, rig)
    check_action_dim(info.action_dim)
    _warn_trained_seeds(args, rig, trained_seeds)
    dt = dt or info.dt or 1.0 / DEFAULT_FREQUENCY
    config = LockstepEvalConfig(
        args.checkpoint, lockstep,
        ExecutorConfig(dt=dt, steps_per_inference=args.steps_per_inference, chunking=args.chunking,
                       ensemble_decay=args.ensemble_decay, action_delay_steps=_action_delay_steps(info, args.checkpoint),
                       robot_latency=robot_latency),
        RolloutConfig(max_duration=max_duration, inference_timeout=args.inference_timeout), rig.planar_z,
        inference_latency=args.inference_latency)
    seeds = list(range(args.seed, args.seed + args.episodes))
    with tqdm(total=len(seeds), desc="lockstep eval", unit="ep", disable=None) as bar:
        def on_result(result) -> None:
            bar.update(1)
            bar.write(result.summary())
        results = evaluate_lockstep(config, seeds, args.workers, on_result)
    print(summarize(results), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"mode": "lockstep", "checkpoint": str(args.checkpoint), "rig": rig.name,
                                         "inference_latency": args.inference_latency, **results_json(results)},
                                        indent=1))
    return 0


def _evaluate(args: argparse.Namespace, rig: RigConfig, max_duration: float, robot_latency: float) -> int:
    from robot_stack.data.dataset import EpisodeDataset
    from robot_stack.data.episode_recorder import CameraStream, EpisodeRecorder
    from robot_stack.data.timing_convention import TimingConvention
    from robot_stack.data.preview import Preview
    from robot_stack.data.terminal_keys import TerminalKeys
    from robot_stack.server.evaluation import EvalConfig, results_json, run_evaluation, summarize
    from robot_stack.server.executor import ExecutorConfig, check_action_dim
    from robot_stack.server.local import CheckpointService, PolicyProcess
    from robot_stack.server.observation import check_policy_observations
    from robot_stack.server.rollout import RolloutConfig
    from robot_stack.server.transport import PolicyClient
    from robot_stack.rig import start_rig

    with contextlib.ExitStack() as stack:
        policy_processes = []
        if args.remote:
            endpoint = args.remote
            client = stack.enter_context(PolicyClient(endpoint, token=args.token, timeout=args.inference_timeout))
            info, trained_seeds, trained_cameras = _policy_info(client, endpoint), [], None
        else:
            # Checked here first (seconds): a bad checkpoint is one line before any process starts.
            dt = None if args.frequency is None else 1.0 / args.frequency
            service = CheckpointService(args.checkpoint, resolve_device(args.device), dt)
            log.info("checking the policy in %s", args.checkpoint)
            info, trained_seeds, trained_cameras = service.check()
            policy = PolicyProcess(service, token=args.token)
            policy_processes.append(policy)
            endpoint = policy.endpoint
            client = stack.enter_context(PolicyClient(endpoint, token=args.token, timeout=args.inference_timeout))
        check_policy_observations(info, range(len(rig.cameras)), scene_fields=_scene_fields(rig),
                                  gripper_fields=_gripper_fields(rig))
        _check_cameras(args.checkpoint, trained_cameras, rig)
        check_action_dim(info.action_dim, rig.gripper is not None)
        _warn_trained_seeds(args, rig, trained_seeds)
        dt = 1.0 / args.frequency if args.frequency else (info.dt or 1.0 / DEFAULT_FREQUENCY)
        config = EvalConfig(episodes=args.episodes, seed=args.seed, base_z=rig.planar_z)
        executor_config = ExecutorConfig(dt=dt, steps_per_inference=args.steps_per_inference, chunking=args.chunking,
                                         ensemble_decay=args.ensemble_decay,
                                         action_delay_steps=_action_delay_steps(info, args.checkpoint or endpoint),
                                         robot_latency=robot_latency)
        rollout_config = RolloutConfig(max_duration=max_duration, inference_timeout=args.inference_timeout)
        log.info("policy: observes %s, %d-step history, chunks of %d actions (%s executed per chunk, joined by %s); "
                 "dt %.3f s, actions %d steps after their observation", sorted(info.obs_shapes), info.n_obs_steps,
                 info.n_action_steps, args.steps_per_inference or info.steps_per_inference or "all",
                 args.chunking or info.chunking or "switch", dt, executor_config.action_delay_steps)

        dataset = None
        if not args.no_record:
            out = args.out or Path("runs/eval") / f"{rig.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            dataset = stack.enter_context(EpisodeDataset.open(out, mode="a"))
            # Recorded like demonstrations: the executed plan, with the policy's timing convention.
            dataset.record_setup([c.frame_setup() for c in rig.cameras],
                                 TimingConvention(dt, executor_config.action_delay_steps))
        # The policy process starts first (before the arm connects) and is supervised with the rig.
        running = stack.enter_context(start_rig(rig, extra=policy_processes))
        robot, cameras, scene = running.robot, running.cameras, running.scene
        recorder = None
        if dataset is not None:
            recorder = EpisodeRecorder(dataset, [CameraStream(c.frames, c.config.fps) for c in cameras])
            print(f"recording episodes into {dataset.root}", flush=True)
        preview = None
        if not args.no_preview and display_available():
            preview = Preview([c.frames for c in cameras], title="robot-stack eval")
            stack.callback(preview.close)
        elif not args.no_preview:
            log.info("no display: running without the preview window; type keys in this terminal")
        if args.rerun:
            from robot_stack.data.viewer import Displays, stream_rig

            live = stream_rig(args.rerun, running)
            stack.callback(live.close)
            preview = Displays([d for d in (preview, live) if d is not None])
        terminal = stack.enter_context(TerminalKeys())
        print("keys: s end episode  q quit", flush=True)
        results = run_evaluation(
            robot.client, {i: c.frames for i, c in enumerate(cameras)}, client, info, config, executor_config,
            rollout_config, scene=scene, recorder=recorder, preview=preview, keys=[terminal],
            gripper=running.gripper.client if running.gripper is not None else None,
            check=running.supervisor.check, on_status=lambda line: print(line, flush=True),
        )
    print(summarize(results), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"mode": "runtime", "checkpoint": str(args.checkpoint or args.remote),
                                         "rig": rig.name, **results_json(results)}, indent=1))
    return 0


def _policy_info(client, endpoint: str):
    from robot_stack.server.transport import PolicyTimeout, RemoteError

    deadline = time.monotonic() + _SERVER_WAIT_S
    while True:
        try:
            return client.info(timeout=2.0)
        except PolicyTimeout:
            if time.monotonic() > deadline:
                raise ConfigError(f"no policy server answers at {endpoint}: start `robot-stack serve` there "
                                  "(or check the address and firewall)") from None
        except RemoteError as exc:
            raise ConfigError(f"the policy server at {endpoint} refused us: {exc.reason}") from None


def _warn_trained_seeds(args: argparse.Namespace, rig: RigConfig, trained: list[int]) -> None:
    if rig.scene is None:
        return
    seeds = set(range(args.seed, args.seed + args.episodes))
    overlap = sorted(seeds & set(trained))
    if overlap:
        shown = ", ".join(map(str, overlap[:10])) + (", ..." if len(overlap) > 10 else "")
        log.warning("%d of the evaluation seeds were trained on (%s): these scenes are not held out; "
                    "evaluate from --seed %d (the default) for an honest success rate",
                    len(overlap), shown, HELD_OUT_SEED_START)


def _action_delay_steps(info, source: str) -> int:
    """The policy's action timing (from its checkpoint); a server that does not say gets the original's."""
    from robot_stack.data.timing_convention import ORIGINAL_ACTION_DELAY_STEPS

    if info.action_delay_steps is None:
        log.info("%s does not say how its actions are timed: using the original Diffusion Policy's convention "
                 "(action_delay_steps %d)", source, ORIGINAL_ACTION_DELAY_STEPS)
        return ORIGINAL_ACTION_DELAY_STEPS
    return info.action_delay_steps


def _check_cameras(source: str | None, trained: list[dict] | None, rig: RigConfig) -> None:
    """Refuse a rig whose camera images are made differently (resolution, crop, size) from the training data's."""
    if trained is None:
        return
    keys = ("resolution", "crop", "image_size")
    for i, (want, cam) in enumerate(zip(trained, rig.cameras)):
        have = cam.frame_setup()
        diff = {k: (want.get(k), have[k]) for k in keys if want.get(k) != have[k]}
        if diff:
            shown = ", ".join(f"{k} {a} in training vs {b} here" for k, (a, b) in diff.items())
            raise ConfigError(f"camera {i} ({cam.name}) of rig {rig.name} makes other images than the ones "
                              f"{source} was trained on: {shown}; set the rig's camera to match")
