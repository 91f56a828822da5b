"""CI gate on the policy path: the shipped low-dim Push-T policy (checkpoints/push_t_lowdim_sim.ckpt),
evaluated in lockstep on the first 20 held-out seeds, must keep succeeding.

The lockstep evaluation is deterministic for a seed, so this measures the same episodes every run. The bar
is the task's (80 %), two episodes below the rate measured with the shipped sampler (DPM-Solver++ 8: 18/20,
the first 20 episodes of results/push_t_lowdim_dpm8_lockstep_100.json; 17/20 with the DDIM 8 it shipped
with before), so that only a real regression — in the simulator, the observation path, the executor's
timing, the sampler, the policy or its checkpoint — fails it.
"""

from pathlib import Path

from robot_stack.policy.checkpoint import load_policy
from robot_stack.rig import load_rig
from robot_stack.server.executor import ExecutorConfig
from robot_stack.server.local import CheckpointService
from robot_stack.server.lockstep_eval import LockstepEvalConfig, evaluate_lockstep
from robot_stack.server.rollout import RolloutConfig
from robot_stack.sim.lockstep import LockstepRig
from robot_stack.sim.pusht import HELD_OUT_SEED_START

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "push_t_lowdim_sim.ckpt"
SEEDS = range(HELD_OUT_SEED_START, HELD_OUT_SEED_START + 20)
MIN_SUCCESS = 0.8


def test_the_shipped_low_dim_policy_succeeds_on_held_out_seeds():
    info, trained, cameras = CheckpointService(str(CHECKPOINT)).check()
    assert set(info.obs_shapes) == {"scene_keypoints", "robot_eef_pose"} and not set(SEEDS) & set(trained)
    # Trained on robot_stack's lockstep demos: their timing convention and no cameras travel with it.
    assert (info.dt, info.action_delay_steps, cameras) == (0.1, 2, [])
    assert info.steps_per_inference == 4  # how it was evaluated: 4 of each 8-action chunk, then re-plan
    schedule = load_policy(CHECKPOINT, "cpu").cfg.noise_scheduler
    assert (schedule.inference, schedule.num_inference_steps) == ("dpmsolver", 8)  # the sampler it was measured with
    rig = load_rig("sim_pusht_state")
    config = LockstepEvalConfig(str(CHECKPOINT), LockstepRig(rig.robot, rig.scene, tuple(rig.cameras), rig.name),
                                ExecutorConfig(dt=info.dt, action_delay_steps=info.action_delay_steps),
                                RolloutConfig(max_duration=rig.scene.time_limit), rig.planar_z)
    results = evaluate_lockstep(config, list(SEEDS), workers=2)
    rate = sum(r.success for r in results) / len(results)
    assert rate >= MIN_SUCCESS, [r.summary() for r in results]
