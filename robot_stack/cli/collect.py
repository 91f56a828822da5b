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
import re
import sys
from pathlib import Path
from typing import Iterator

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.data.preview import display_available
from robot_stack.runtime import ProcessFailed

log = logging.getLogger(__name__)

TELEOP_CHOICES = ("spacemouse", "keyboard", "scripted")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="record teleoperated demonstrations (robot + cameras + teleop)",
        description="Run the rig's robot, cameras and a teleop device; record episodes (robot state, commanded "
        "actions, one video per camera) into a Diffusion Policy dataset.",
    )
    parser.add_argument("--rig", required=True, type=Path, help="rig YAML (hardware_configs/<rig>.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="dataset folder (created, or appended to)")
    parser.add_argument("--teleop", choices=TELEOP_CHOICES,
                        help="teleop device (default: the rig's teleop.profile, else spacemouse)")
    parser.add_argument("--profile", help="teleop profile name under teleop/ or a YAML path (default: per device)")
    parser.add_argument("--episodes", type=int, help="quit after this many saved episodes")
    parser.add_argument("--frequency", type=float, default=10.0, help="control and recording rate, Hz (default 10)")
    parser.add_argument("--max-duration", type=float,
                        help="stop each episode after this many seconds (scripted: default the scene's time_limit)")
    parser.add_argument("--keep-failed", action="store_true", help="scripted: also save unsuccessful episodes")
    parser.add_argument("--manual", action="store_true", help="scripted: start/stop episodes with the keys")
    parser.add_argument("--seed", type=int, default=0, help="scene seed of the first episode (default 0)")
    parser.add_argument("--no-preview", action="store_true", help="no camera window (automatic without a display)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_stack.data.collection import CONTROL_KEYS, CollectConfig
    from robot_stack.hardware.teleop import TeleopMapper, load_profile

    rig = _load_rig(args.rig)
    teleop_cfg = rig["teleop"]
    profile = load_profile(args.profile or args.teleop or teleop_cfg.profile)
    device = profile.device
    if args.teleop is not None and device != args.teleop:
        raise ConfigError(f"teleop profile {args.profile!r} is for a {device}, not --teleop {args.teleop}")
    scene_cfg = rig["scene"]
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
    max_duration = args.max_duration
    if max_duration is None and auto:
        max_duration = scene_cfg.time_limit
    config = CollectConfig(frequency=args.frequency, episodes=args.episodes, max_duration=max_duration, auto=auto,
                           keep_failed=args.keep_failed, seed=args.seed, gripper=teleop_cfg.gripper)
    mode = teleop_cfg.mode
    planar_z = teleop_cfg.planar_z
    if mode == "planar" and planar_z is None and scene_cfg is not None:
        planar_z = scene_cfg.push_z
    mapper = TeleopMapper(profile, rig["robot"].workspace, 1.0 / args.frequency, mode=mode, planar_z=planar_z)

    try:
        return _collect(args, rig, device, profile, config, mapper)
    except ProcessFailed as exc:
        print(f"robot-stack collect: process '{exc.name}' failed:\n{last_exception(exc.error)}", file=sys.stderr)
        return 1


def _collect(args, rig, device, profile, config, mapper) -> int:
    from robot_stack.data.collection import run_collection
    from robot_stack.data.dataset import EpisodeDataset
    from robot_stack.data.episode_recorder import CameraStream, EpisodeRecorder
    from robot_stack.data.preview import Preview
    from robot_stack.data.terminal_keys import TerminalKeys
    from robot_stack.hardware.teleop import KeyboardTeleop, ScriptedTeleop

    scene_cfg = rig["scene"]
    with EpisodeDataset.open(args.out, mode="a") as dataset, \
            _started_rig(rig, spacemouse=device == "spacemouse") as parts, \
            TerminalKeys() as terminal, contextlib.ExitStack() as stack:
        robot, cameras, scene, teleop_process, supervisor = parts
        log.info("dataset %s: %d episode(s) so far", args.out, dataset.n_episodes)
        recorder = EpisodeRecorder(dataset, [CameraStream(c.frames, c.config.fps) for c in cameras])
        on_episode_start = None
        if device == "scripted":
            from robot_stack.sim.pusht import ExpertTeleop

            expert = ExpertTeleop(scene_cfg, seed=args.seed)
            teleop = ScriptedTeleop(lambda: expert.next_target(scene.get_state(), robot.get_state()), mapper)
            on_episode_start = expert.reset
        elif device == "keyboard":
            teleop = KeyboardTeleop(profile)
        else:
            teleop = teleop_process
        preview = None
        if not args.no_preview and display_available():
            preview = Preview([c.frames for c in cameras])
            stack.callback(preview.close)
        elif not args.no_preview:
            log.info("no display: running without the preview window; type keys in this terminal")
        print("keys: c start  s stop+save  x discard  q quit", flush=True)
        stats = run_collection(
            robot.client, teleop, mapper, recorder, config, scene=scene, on_episode_start=on_episode_start,
            keys=[terminal], preview=preview, check=supervisor.check,
            on_status=lambda line: print(line, flush=True),
        )
    print(f"{len(stats.saved)} episode(s) saved this session; {args.out} now holds {dataset.n_episodes}", flush=True)
    return 0


def last_exception(traceback_text: str) -> str:
    """The final exception (type, message and any lines that follow it) of a child's formatted traceback."""
    lines = traceback_text.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Failed|Interrupt|Exit)\b", lines[i]):
            return "\n".join(lines[i:])
    return traceback_text


# -- rig composition ---------------------------------------------------------------------------------------
# A minimal stand-in for the integration lead's rig runtime (robot_stack/rig/), which had not landed when this
# command was written: load the rig sections and start robot, scene, cameras and teleop under a Supervisor.
def _load_rig(path: Path) -> dict:
    from robot_stack.hardware.camera.config import CameraConfig
    from robot_stack.hardware.robot.config import load_robot_config
    from robot_stack.hardware.teleop import TeleopConfig
    from robot_stack.sim.pusht import SceneConfig

    data = read_yaml(path)
    unknown = set(data) - {"name", "robot", "cameras", "teleop", "scene"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; expected robot, cameras, teleop, scene")
    if "robot" not in data:
        raise ConfigError(f"{path}: the rig has no robot: section")
    cameras = data.get("cameras") or []
    if not isinstance(cameras, list):
        raise ConfigError(f"{path}: cameras: must be a list of camera entries")
    teleop = data.get("teleop")
    if teleop is None and "scene" in data:
        teleop = {"profile": "spacemouse", "mode": "planar"}  # a Push-T scene: planar pushing by default
    return {
        "robot": load_robot_config(data),
        "cameras": [load_dataclass(CameraConfig, c, f"cameras[{i}]") for i, c in enumerate(cameras)],
        "scene": load_dataclass(SceneConfig, data["scene"], "scene") if "scene" in data else None,
        "teleop": load_dataclass(TeleopConfig, teleop, "teleop"),
    }


@contextlib.contextmanager
def _started_rig(rig: dict, spacemouse: bool) -> Iterator[tuple]:
    """(robot, cameras, scene, teleop_process, supervisor), all running; stopped on exit."""
    from robot_stack.hardware.camera.process import CameraProcess
    from robot_stack.hardware.robot.controller import RobotController
    from robot_stack.hardware.teleop import SpaceMouseDevice, TeleopProcess
    from robot_stack.runtime import Supervisor
    from robot_stack.sim.pusht import VIEWS, SceneProcess

    robot = RobotController(rig["robot"])
    scene = SceneProcess(rig["scene"], robot.state) if rig["scene"] is not None else None
    cameras = []
    for cfg in rig["cameras"]:
        renderer = None
        if cfg.driver == "sim" and scene is not None:
            view = cfg.name if cfg.name in VIEWS else "top"
            renderer = scene.renderer(view, tuple(cfg.resolution))
        cameras.append(CameraProcess(cfg, renderer=renderer))
    teleop = TeleopProcess(SpaceMouseDevice) if spacemouse else None
    # The teleop device first: a missing SpaceMouse fails before the arm is connected.
    processes = ([teleop] if teleop else []) + [robot] + ([scene] if scene else []) + cameras
    with Supervisor(processes) as supervisor:
        yield robot, cameras, scene, teleop, supervisor
