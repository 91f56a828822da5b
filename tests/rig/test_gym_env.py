"""`robot_stack/PushT-v0`: the lockstep rig through gymnasium's own API and checker."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robot_stack.rig.gym_env  # noqa: F401  (registers the id)


@pytest.mark.parametrize("obs_type", ["lowdim", "image"])
def test_the_env_passes_gymnasiums_checker(obs_type):
    env = gymnasium.make("robot_stack/PushT-v0", obs_type=obs_type)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and 0.0 <= info["coverage"] <= 1.0
    env.close()


def test_steps_follow_the_action_and_are_deterministic():
    def rollout():
        env = gymnasium.make("robot_stack/PushT-v0", obs_type="lowdim")
        obs, _ = env.reset(seed=11)
        start = obs[-2:].copy()
        trace = []
        for k in range(15):
            obs, reward, terminated, truncated, info = env.step(start + np.array([0.004 * k, 0.0], np.float32))
            trace.append(obs)
            assert reward == pytest.approx(min(1.0, info["coverage"] / 0.95)) and not truncated
        return start, np.array(trace)

    start, trace = rollout()
    assert trace[-1][-2] > start[0] + 0.02  # the TCP moved along +x toward the commanded targets
    np.testing.assert_array_equal(trace, rollout()[1])
    assert gymnasium.spec("robot_stack/PushT-v0").max_episode_steps == 600
