"""run_evaluation on the simulated rig's processes: the sim UR5 controller, the Push-T scene (driven by the
arm's actual TCP), the policy in its own process (local mode), episodes recorded into a dataset."""

import functools
from pathlib import Path

import numpy as np
from server_fakes import fake_service

from robot_stack.config import load_dataclass, read_yaml
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.episode_recorder import EpisodeRecorder
from robot_stack.hardware.robot.config import load_robot_config
from robot_stack.hardware.robot.controller import RobotController
from robot_stack.runtime import Supervisor
from robot_stack.server.evaluation import EvalConfig, run_evaluation, summarize
from robot_stack.server.executor import ExecutorConfig
from robot_stack.server.local import PolicyProcess
from robot_stack.server.rollout import RolloutConfig
from robot_stack.server.transport import PolicyClient
from robot_stack.sim.pusht import SceneConfig, SceneProcess

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"
PLANAR_Z = 0.02  # below the scene's contact height (0.03): the tip pushes


class QuitDuringEpisode:
    """Key source typing 'q' on its n-th poll of the given episode."""

    def __init__(self, results_so_far, episode, polls):
        self.results, self.episode, self.polls = results_so_far, episode, polls

    def poll(self):
        if len(self.results) == self.episode:
            self.polls -= 1
            if self.polls == 0:
                return ["q"]
        return []


def test_episodes_recorded_with_scene_metrics_and_quit(tmp_path):
    robot = RobotController(load_robot_config(CONFIGS / "sim_ur5.yaml"))
    scene = SceneProcess(load_dataclass(SceneConfig, read_yaml(CONFIGS / "sim_pusht.yaml")["scene"], "scene"), robot.state)
    policy = PolicyProcess(functools.partial(fake_service, delay=0.02, image_shape=None))
    statuses = []
    with Supervisor([robot, scene, policy]) as sup, EpisodeDataset.open(tmp_path / "eval", "a") as dataset:
        with PolicyClient(policy.endpoint) as client:
            info = client.info(timeout=10)
            results = run_evaluation(
                robot.client, {}, client, info,
                EvalConfig(episodes=3, seed=7, base_z=PLANAR_Z),
                ExecutorConfig(dt=0.1, steps_per_inference=4, action_delay_steps=2),
                RolloutConfig(max_duration=2.0),
                scene=scene, recorder=EpisodeRecorder(dataset),
                keys=[QuitDuringEpisode(statuses, episode=1, polls=10)],
                check=sup.check, on_status=statuses.append,
            )
            final_scene = scene.get_state()
        n_saved = dataset.n_episodes
        episode = dataset.replay_buffer.get_episode(0)
    assert [r.end_reason for r in results] == ["max_duration", "quit"]
    assert len(statuses) == 2 and "seed 7" in statuses[0] and "coverage" in statuses[0]
    first = results[0]
    assert first.seed == 7 and first.saved_as == 0 and first.success is False
    assert 0.0 <= first.coverage <= first.max_coverage <= 1.0
    assert first.rollout.execution.chunks >= 3 and first.rollout.execution.scheduled >= 10
    assert "success rate 0.0% (0/1)" in summarize(results)  # the quit episode does not count
    # Only the finished episode was saved, recorded like a demonstration at the policy's step rate.
    assert n_saved == 1
    n = len(episode["timestamp"])
    assert 15 <= n <= 21, n
    assert np.all(np.diff(episode["timestamp"]) > 0.05)
    assert episode["action"].shape == (n, 6) and episode["robot_eef_pose"].shape == (n, 6)
    assert {"scene_coverage", "scene_block_pose", "scene_success"} <= set(episode)
    # Once the first chunk arrived, the commanded targets are at the planar height the policy runs at ...
    np.testing.assert_allclose(episode["action"][-5:, 2], PLANAR_Z)
    # ... which the arm reached, so the tip was down pushing.
    assert abs(episode["robot_eef_pose"][-1, 2] - PLANAR_Z) < 2e-3 and bool(final_scene["pusher_down"])
