"""run_collection: operator keys/buttons on stand-in parts, and automatic episodes on the simulated Push-T rig."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dataset_checks import assert_video_matches
from robot_stack.config import load_dataclass, read_yaml
from robot_stack.data.collection import ACTION_DELAY_STEPS, CollectConfig, run_collection
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.episode_recorder import CameraStream, EpisodeRecorder
from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.camera.process import CameraProcess
from robot_stack.hardware.robot.config import Workspace, load_robot_config
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.hardware.teleop import KeyboardTeleop, ScriptedTeleop, TeleopMapper, TeleopState, load_profile
from robot_stack.runtime import Supervisor, now
from robot_stack.sim.pusht import SceneConfig, SceneProcess
from robot_stack.sim.pusht.expert import ExpertTeleop

ROOT = Path(__file__).resolve().parents[2]
HOME = np.array([0.45, 0.0, 0.1, math.pi, 0.0, 0.0])


class StandInRobot:
    """Reports a fixed fresh state and remembers the waypoints it was sent."""

    def __init__(self) -> None:
        self.waypoints: list[tuple[np.ndarray, float]] = []
        self.state_times: list[float] = []

    def get_state(self):
        t = now()
        self.state_times.append(t)
        return {"actual_tcp_pose": HOME, "actual_tcp_speed": np.zeros(6), "actual_q": np.arange(6.0),
                "actual_qd": np.zeros(6), "timestamp": np.float64(t)}

    def schedule_waypoint(self, pose, target_time):
        self.waypoints.append((np.array(pose), float(target_time)))


class ButtonScript:
    """A teleop device whose buttons are pressed on the given reads: {button: (read numbers...)}."""

    def __init__(self, presses: dict[int, tuple[int, ...]], axes=(0.0,) * 6, stale_polls: tuple[int, ...] = ()):
        self.presses, self.axes, self.stale_polls, self.reads = presses, list(axes), stale_polls, 0

    def read(self) -> TeleopState:
        self.reads += 1
        buttons = np.zeros(16, bool)
        for button, reads in self.presses.items():
            buttons[button] = self.reads in reads
        return TeleopState(self.axes, buttons, now() - (5.0 if self.reads in self.stale_polls else 0.0))


class KeyScript:
    """Types the given keys on the given poll numbers."""

    def __init__(self, schedule: dict[int, str]):
        self.schedule, self.polls = schedule, 0

    def poll(self) -> list[str]:
        keys = list(self.schedule.get(self.polls, ""))
        self.polls += 1
        return keys


def test_keys_start_stop_discard_and_keyboard_teleop(tmp_path):
    ws = Workspace(min=(0.2, -0.3, 0.0), max=(0.7, 0.3, 0.4))
    profile = load_profile("keyboard")
    mapper = TeleopMapper(profile, ws, dt=0.02)
    keyboard = KeyboardTeleop(profile)
    recorder = EpisodeRecorder(EpisodeDataset.open(tmp_path / "ds", mode="a"))
    robot = StandInRobot()
    #          start, keyboard +x held, save;   start, save; drop last; start, discard recording; quit
    keys = KeyScript({1: "c", 2: "i", 6: "s", 8: "c", 11: "s", 12: "x", 14: "c", 16: "x", 18: "q"})
    lines: list[str] = []
    stats = run_collection(robot, keyboard, mapper, recorder, CollectConfig(frequency=50.0, gripper=True),
                           keys=[keys], on_status=lines.append)
    assert (stats.saved, stats.dropped, stats.discarded, stats.end_reason) == ([0], 1, 1, "quit")
    assert [line.split(":")[0].split(" (")[0] for line in lines] == [
        "recording episode 0", "saved episode 0", "recording episode 1", "saved episode 1",
        "dropped saved episode 1", "recording episode 1", "discarded the episode being recorded"]
    with EpisodeDataset.open(tmp_path / "ds") as ds:
        assert ds.n_episodes == 1
        ep = ds.replay_buffer.get_episode(0)
    n = len(ep["timestamp"])
    assert n == 5  # polls 2..6: a key acts after its poll's step (so the stop key's step is recorded)
    assert ep["action"].shape == (n, 7) and not ep["action"][:, 6].any()  # gripper open
    assert np.all(np.diff(ep["action"][:, 0]) > 0)  # the held "i" key moved the target along +x
    np.testing.assert_array_equal(ep["robot_joint"], np.tile(np.arange(6.0), (n, 1)))
    # Each recorded action was sent as a waypoint ACTION_DELAY_STEPS periods after its state's timestamp.
    sent = {t: pose for pose, t in robot.waypoints}
    for action, t in zip(ep["action"], ep["timestamp"]):
        np.testing.assert_array_equal(sent[float(t) + ACTION_DELAY_STEPS * (1.0 / 50.0)], action[:6])


def test_buttons_toggle_recording_and_stale_teleop_is_counted(tmp_path):
    ws = Workspace(min=(0.2, -0.3, 0.0), max=(0.7, 0.3, 0.4))
    mapper = TeleopMapper(load_profile("spacemouse"), ws, dt=0.02)
    buttons = ButtonScript({0: (2, 6)}, axes=[0.0, 1.0, 0, 0, 0, 0], stale_polls=(4,))  # record_toggle twice
    recorder = EpisodeRecorder(EpisodeDataset.open(tmp_path / "ds", mode="a"))
    stats = run_collection(StandInRobot(), buttons, mapper, recorder, CollectConfig(frequency=50.0, episodes=1))
    assert stats.saved == [0] and stats.stale_teleop == 1
    assert recorder.dataset.replay_buffer.episode_lengths.tolist() == [4]


class StandInGripper:
    """Reaches every commanded width at once."""

    max_width = 0.085

    def __init__(self):
        self.waypoints: list[tuple[float, float]] = []

    def schedule_waypoint(self, width, target_time):
        self.waypoints.append((float(width), float(target_time)))

    def get_state(self):
        return {"width": np.float64(self.waypoints[-1][0] if self.waypoints else 0.085)}


def test_the_gripper_button_schedules_widths_on_the_gripper_and_both_are_recorded(tmp_path):
    ws = Workspace(min=(0.2, -0.3, 0.0), max=(0.7, 0.3, 0.4))
    mapper = TeleopMapper(load_profile("spacemouse"), ws, dt=0.02)
    robot, gripper = StandInRobot(), StandInGripper()
    recorder = EpisodeRecorder(EpisodeDataset.open(tmp_path / "ds", mode="a"))
    buttons = ButtonScript({0: (2, 9), 1: (5,)})  # record_toggle: start, stop; gripper_toggle: close
    stats = run_collection(robot, buttons, mapper, recorder, CollectConfig(frequency=50.0, episodes=1),
                           gripper=gripper)
    assert stats.saved == [0]
    ep = recorder.dataset.replay_buffer.get_episode(0)
    assert ep["action"].shape[1] == 7 and ep["gripper_width"].shape[1] == 1
    assert ep["action"][0, 6] == 0.085 and ep["action"][-1, 6] == 0.0  # open, then closed: widths in m
    np.testing.assert_array_equal(ep["gripper_width"][:, 0], ep["action"][:, 6])  # the stand-in is instant
    # Each width went to the gripper at its pose's target time.
    assert [t for _, t in gripper.waypoints] == [t for _, t in robot.waypoints]


def test_a_held_button_closes_the_gripper_gradually_and_the_widths_are_recorded(tmp_path):
    ws = Workspace(min=(0.2, -0.3, 0.0), max=(0.7, 0.3, 0.4))
    profile = {"device": "spacemouse", "buttons": {0: "record_toggle", 2: "gripper_closing"}, "gripper_speed": 2.5}
    mapper = TeleopMapper(load_profile(profile), ws, dt=0.02)
    recorder = EpisodeRecorder(EpisodeDataset.open(tmp_path / "ds", mode="a"))
    # start on read 2 (steps recorded from read 3), hold the closing button over reads 4-7, stop on read 12
    buttons = ButtonScript({0: (2, 12), 2: (4, 5, 6, 7)})
    stats = run_collection(StandInRobot(), buttons, mapper, recorder, CollectConfig(frequency=50.0, episodes=1),
                           gripper=StandInGripper())
    assert stats.saved == [0]
    widths = recorder.dataset.replay_buffer.get_episode(0)["action"][:, 6]
    # 2.5 strokes/s x 0.02 s: a twentieth of the 85 mm stroke per read while held, then it stays
    step = 0.085 / 20
    np.testing.assert_allclose(widths, 0.085 - step * np.array([0, 1, 2, 3, 4, 4, 4, 4, 4, 4]), atol=1e-12)


def sim_pusht():
    robot_cfg = load_robot_config(ROOT / "hardware_configs" / "sim_ur5.yaml")
    scene_cfg = load_dataclass(SceneConfig, read_yaml(ROOT / "hardware_configs" / "sim_pusht.yaml")["scene"], "scene")
    return robot_cfg, scene_cfg


def test_automatic_scripted_episodes_on_the_sim_rig(tmp_path):
    robot_cfg, scene_cfg = sim_pusht()
    camera_cfg = CameraConfig(name="top", driver="sim", resolution=(96, 96), fps=10)
    with RobotController(robot_cfg) as robot:
        scene = SceneProcess(scene_cfg, robot.state, seed=0)
        camera = CameraProcess(camera_cfg, renderer=scene.renderer("top", (96, 96)))
        with Supervisor([scene, camera]) as supervisor:
            mapper = TeleopMapper(load_profile("scripted"), robot_cfg.workspace, 0.1, mode="planar",
                                  planar_z=scene_cfg.push_z)
            expert = ExpertTeleop(scene_cfg)
            hand = ScriptedTeleop(lambda: expert.next_target(scene.get_state(), robot.get_state()), mapper)
            dataset = EpisodeDataset.open(tmp_path / "ds", mode="a")
            recorder = EpisodeRecorder(dataset, [CameraStream(camera.frames, 10.0)])
            config = CollectConfig(auto=True, max_duration=1.5, keep_failed=True, episodes=2, seed=7)
            stats = run_collection(robot.client, hand, mapper, recorder, config, scene=scene,
                                   on_episode_start=expert.reset, check=supervisor.check)
    assert stats.saved == [0, 1] and stats.overruns <= 3
    for index, seed in enumerate((7, 8)):
        ep = dataset.replay_buffer.get_episode(index)
        n = len(ep["timestamp"])
        assert 13 <= n <= 16  # 1.5 s at 10 Hz
        assert np.all(np.diff(ep["timestamp"]) > 0.05)
        assert set(ep) >= {"action", "robot_eef_pose", "robot_eef_pose_vel", "robot_joint", "robot_joint_vel",
                           "scene_block_pose", "scene_coverage", "scene_success"}
        assert np.all(ep["scene_seed"] == seed)  # each episode started from its own scene reset
        np.testing.assert_allclose(ep["action"][:, 2], scene_cfg.push_z)  # planar: fixed height
        lo, hi = np.asarray(robot_cfg.workspace.min), np.asarray(robot_cfg.workspace.max)
        assert np.all(ep["action"][:, :3] >= lo) and np.all(ep["action"][:, :3] <= hi)
        t_start = float(ep["timestamp"][0]) - 0.1
        assert_video_matches(dataset.video_path(index, 0), t_start - 0.05, float(ep["timestamp"][-1]), 10.0)
    dataset.close()
