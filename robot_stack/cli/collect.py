"""``robot-stack collect``: record teleoperated demonstrations into a dataset.

Examples::

    robot-stack collect --rig hardware_configs/ur5_cb3_example.yaml --out data/mugs           # SpaceMouse
    robot-stack collect --rig hardware_configs/sim_pusht.yaml --out data/pusht --teleop keyboard
    robot-stack collect --rig hardware_configs/sim_pusht.yaml --out data/pusht_expert --teleop scripted \\
        --episodes 100 --no-preview                                  # the scripted Push-T expert, unattended

Keys (in the preview window, or typed in this terminal): ``c`` start an episode, ``s`` stop and save it,
``x``/Backspace discard the episode being recorded (or else the last saved one), ``q``/Esc quit. The
SpaceMouse's left button starts/stops an episode too. ``--out`` may be an existing dataset: episodes are
appended. With ``--teleop scripted`` episodes start and end by themselves (on success, or after
``--max-duration``); ``--manual`` leaves that to the keys instead.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path

from robot_stack.config import ConfigError
from robot_stack.data.preview import display_available

log = logging.getLogger(__name__)

TELEOP_CHOICES = ("spacemouse", "keyboard", "scripted")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="record teleoperated demonstrations (robot + cameras + teleop)",
        description="Run the rig's robot, cameras and a teleop device; record episodes (robot state, commanded "
        "actions, one video per camera) into a Diffusion Policy dataset.",
    )
    parser.add_argument("--rig", required=True, help="rig YAML path, or a shipped rig name (sim_pusht, sim_ur5, ...)")
    parser.add_argument("--out", required=True, type=Path,
                        help="dataset folder (created, or appended to; checked before anything starts)")
    parser.add_argument("--teleop", choices=TELEOP_CHOICES,
                        help="teleop device (default: the rig's teleop.profile, else spacemouse)")
    parser.add_argument("--profile", help="teleop profile name under teleop/ or a YAML path (default: per device)")
    parser.add_argument("--episodes", type=int, help="quit after this many saved episodes")
    parser.add_argument("--frequency", type=float, default=10.0, help="control and recording rate, Hz (default 10)")
    parser.add_argument("--max-duration", type=float,
                        help="stop each episode after this many seconds (scripted: default the scene's time_limit)")
    parser.add_argument("--keep-failed", action="store_true", help="scripted: also save unsuccessful episodes")
    parser.add_argument("--finish-coverage", type=float,
                        help="scripted: the expert keeps refining and an episode ends once this fraction of the goal "
                        "is covered (e.g. 0.98; default: the scene's success). Tighter demos teach the last pushes")
    parser.add_argument("--manual", action="store_true", help="scripted: start/stop episodes with the keys")
    parser.add_argument("--seed", type=int, default=0, help="scene seed of the first episode (default 0)")
    parser.add_argument("--no-preview", action="store_true", help="no camera window (automatic without a display)")
    parser.add_argument("--rerun", metavar="TARGET", help="also stream the live rig to Rerun: spawn (a new viewer), "
                        "rerun+http://HOST:PORT/proxy (a running one) or FILE.rrd")
    parser.add_argument("--lockstep", action="store_true",
                        help="scripted only: record on the lockstep simulator (simulated time, no processes, many "
                        "times real time) instead of the runtime; the same dataset")
    parser.add_argument("--workers", type=int, help="--lockstep: episodes in parallel (default: the CPU cores)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_stack.data.collection import CONTROL_KEYS, CollectConfig
    from robot_stack.hardware.teleop import TeleopMapper, load_profile

    from robot_stack.rig import load_rig, preflight
    from robot_stack.sim.pusht import HELD_OUT_SEED_START

    rig = load_rig(args.rig)
    teleop_cfg = rig.teleop
    profile = load_profile(args.profile or args.teleop or teleop_cfg.profile)
    device = profile.device
    if args.teleop is not None and device != args.teleop:
        raise ConfigError(f"teleop profile {args.profile!r} is for a {device}, not --teleop {args.teleop}")
    scene_cfg = rig.scene
    if device == "scripted" and scene_cfg is None:
        raise ConfigError("--teleop scripted drives the simulated Push-T expert: the rig needs a scene: section")
    preview_on = not args.no_preview and display_available()
    if device == "keyboard":
        if not preview_on:
            raise ConfigError("--teleop keyboard reads keys from the preview window: it needs a display "
                              "(and no --no-preview)")
        clash = sorted((set(profile.keys) | set(profile.button_keys)) & set(CONTROL_KEYS))
        if clash:
            raise ConfigError(f"teleop profile keys {clash} are collect's own keys (c s x q); choose other keys")
    auto = device == "scripted" and not args.manual
    if args.finish_coverage is not None and device != "scripted":
        raise ConfigError("--finish-coverage sets when the scripted expert is done: use it with --teleop scripted")
    max_duration = args.max_duration
    if max_duration is None and auto:
        max_duration = scene_cfg.time_limit
    config = CollectConfig(frequency=args.frequency, episodes=args.episodes, max_duration=max_duration, auto=auto,
                           keep_failed=args.keep_failed, seed=args.seed, gripper=teleop_cfg.gripper,
                           finish_coverage=args.finish_coverage)
    mapper = TeleopMapper(profile, rig.robot.workspace, 1.0 / args.frequency, mode=teleop_cfg.mode,
                          planar_z=rig.planar_z)
    if scene_cfg is not None and args.seed + (args.episodes or 1) > HELD_OUT_SEED_START:
        log.warning("scene seeds from %d on are held out for evaluation (robot-stack eval's default); "
                    "demonstrations recorded on them make those evaluations dishonest", HELD_OUT_SEED_START)
    if args.rerun is not None:
        if args.lockstep:
            raise ConfigError("--rerun streams a running rig; --lockstep runs none (view the dataset afterwards: "
                              "robot-stack view)")
        from robot_stack.data.viewer import check_live_target

        check_live_target(args.rerun)
    if args.lockstep:
        return _collect_lockstep(args, rig, profile, config)
    if args.workers is not None:
        raise ConfigError("--workers is for --lockstep collection")
    preflight(rig)
    return _collect(args, rig, device, profile, config, mapper)


def _collect_lockstep(args, rig, profile, config) -> int:
    from tqdm import tqdm

    from robot_stack.data.collection import recording_convention
    from robot_stack.data.dataset import EpisodeDataset
    from robot_stack.data.lockstep_collect import LockstepCollectConfig, collect_lockstep
    from robot_stack.sim.lockstep import LockstepRig

    if profile.device != "scripted" or args.manual:
        raise ConfigError("--lockstep records the scripted expert only: use --teleop scripted (without --manual)")
    if args.episodes is None:
        raise ConfigError("--lockstep needs --episodes N")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    lockstep = LockstepCollectConfig(LockstepRig(rig.robot, rig.scene, tuple(rig.cameras), rig.name), profile,
                                     rig.teleop.mode, rig.planar_z,
                                     frequency=config.frequency, max_duration=config.max_duration,
                                     success_hold=config.success_hold, keep_failed=config.keep_failed,
                                     finish_coverage=config.finish_coverage)
    with EpisodeDataset.open(args.out, mode="a") as dataset:
        dataset.record_setup([c.frame_setup() for c in rig.cameras], recording_convention(config.frequency))
        before = dataset.n_episodes
        failed = 0
        with tqdm(total=args.episodes, desc="lockstep demos", unit="ep", disable=None) as bar:
            def on_demo(demo, index) -> None:
                nonlocal failed
                if index is None:
                    failed += 1
                bar.update(index is not None)
                bar.set_postfix(seed=demo.seed, failed=failed)
            saved = collect_lockstep(lockstep, dataset, args.episodes, args.seed, args.workers, on_demo)
        print(f"{len(saved)} episode(s) saved this session ({failed} unsuccessful not kept); {args.out} now holds "
              f"{dataset.n_episodes} (was {before})", flush=True)
    return 0


def _collect(args, rig, device, profile, config, mapper) -> int:
    from robot_stack.data.collection import recording_convention, run_collection
    from robot_stack.data.dataset import EpisodeDataset
    from robot_stack.data.episode_recorder import CameraStream, EpisodeRecorder
    from robot_stack.data.preview import Preview
    from robot_stack.data.terminal_keys import TerminalKeys
    from robot_stack.hardware.teleop import KeyboardTeleop, ScriptedTeleop
    from robot_stack.rig import start_rig

    with contextlib.ExitStack() as stack:
        dataset = stack.enter_context(EpisodeDataset.open(args.out, mode="a"))
        # Before anything starts: appending other cameras or another timing is refused here.
        dataset.record_setup([c.frame_setup() for c in rig.cameras], recording_convention(config.frequency))
        running = stack.enter_context(start_rig(rig, spacemouse=device == "spacemouse"))
        terminal = stack.enter_context(TerminalKeys())
        robot, cameras, scene = running.robot, running.cameras, running.scene
        log.info("dataset %s: %d episode(s) so far", args.out, dataset.n_episodes)
        recorder = EpisodeRecorder(dataset, [CameraStream(c.frames, c.config.fps) for c in cameras])
        on_episode_start = None
        if device == "scripted":
            from robot_stack.sim.pusht import ExpertTeleop

            expert = ExpertTeleop(rig.scene, seed=args.seed, finish_coverage=config.finish_coverage)
            teleop = ScriptedTeleop(lambda: expert.next_target(scene.get_state(), robot.get_state()), mapper)
            on_episode_start = expert.reset
        elif device == "keyboard":
            teleop = KeyboardTeleop(profile)
        else:
            teleop = running.teleop
        preview = None
        if not args.no_preview and display_available():
            preview = Preview([c.frames for c in cameras])
            stack.callback(preview.close)
        elif not args.no_preview:
            log.info("no display: running without the preview window; type keys in this terminal")
        if args.rerun:
            from robot_stack.data.viewer import Displays, stream_rig

            live = stream_rig(args.rerun, running)
            stack.callback(live.close)
            preview = Displays([d for d in (preview, live) if d is not None])
        print("keys: c start  s stop+save  x discard  q quit", flush=True)
        stats = run_collection(
            robot.client, teleop, mapper, recorder, config, scene=scene, on_episode_start=on_episode_start,
            gripper=running.gripper.client if running.gripper is not None else None,
            keys=[terminal], preview=preview, check=running.supervisor.check,
            on_status=lambda line: print(line, flush=True),
        )
    print(f"{len(stats.saved)} episode(s) saved this session; {args.out} now holds {dataset.n_episodes}", flush=True)
    return 0
