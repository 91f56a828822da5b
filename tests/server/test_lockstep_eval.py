"""`robot-stack eval --lockstep`: the runtime's evaluation loop in simulated time, the original's metric in
the JSON, deterministic per seed whichever worker runs it; the simulated policy latency is honoured."""

import json
from dataclasses import replace

import pytest

from robot_stack.cli import main
from robot_stack.config import ConfigError
from robot_stack.rig import load_rig
from robot_stack.server.executor import ExecutorConfig
from robot_stack.server.lockstep_eval import LockstepEvalConfig, LockstepEvaluator, evaluate_lockstep
from robot_stack.server.rollout import RolloutConfig
from robot_stack.sim.lockstep import LockstepRig


def _config(rig_file, checkpoint, latency=0.08, duration=2.0) -> LockstepEvalConfig:
    rig = load_rig(rig_file)
    return LockstepEvalConfig(str(checkpoint), LockstepRig(rig.robot, rig.scene, tuple(rig.cameras)),
                              ExecutorConfig(dt=0.1, action_delay_steps=2),
                              RolloutConfig(max_duration=duration, inference_timeout=1.0), rig.planar_z, latency)


def test_eval_lockstep_writes_the_original_metric(sim_rig, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "results" / "eval.json"
    assert main(["eval", "--rig", str(sim_rig()), "--checkpoint", str(tiny_checkpoint), "--lockstep",
                 "--workers", "1", "--episodes", "2", "--max-duration", "2", "--json", str(out)]) == 0
    assert "success rate" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["mode"] == "lockstep" and report["episodes_scored"] == 2
    assert {"success_rate", "mean_max_coverage", "score"} <= set(report)
    rows = report["episodes"]
    assert [r["seed"] for r in rows] == [100000, 100001]  # held-out seeds by default
    for row in rows:
        assert {"seed", "success", "max_coverage", "final_coverage", "duration", "max_iou"} <= set(row)
        assert 0.0 <= row["final_coverage"] <= row["max_coverage"] <= 1.0
        assert row["duration"] == pytest.approx(2.0, abs=0.05) and row["chunks"] >= 2 and row["executed"] > 0
    assert report["score"] == pytest.approx(sum(min(1, r["max_coverage"] / 0.95) for r in rows) / 2)


def test_episodes_are_deterministic_and_worker_independent(sim_rig, tiny_checkpoint):
    config = _config(sim_rig(), tiny_checkpoint)
    evaluator = LockstepEvaluator(config)
    first, again = evaluator.episode(11), evaluator.episode(11)
    assert first.max_coverage == again.max_coverage and first.rollout.execution.scheduled == again.rollout.execution.scheduled
    pooled = evaluate_lockstep(config, [11, 12], workers=2)
    assert [r.seed for r in pooled] == [11, 12]
    assert pooled[0].max_coverage == first.max_coverage
    assert pooled[0].rollout.execution.scheduled == first.rollout.execution.scheduled


def test_the_simulated_inference_latency_sets_the_chunk_latency(sim_rig, tiny_checkpoint):
    slow = LockstepEvaluator(_config(sim_rig(), tiny_checkpoint, latency=0.25)).episode(3)
    fast = LockstepEvaluator(_config(sim_rig(), tiny_checkpoint, latency=0.0)).episode(3)
    # t_obs is the newest frame's capture time: up to the camera's latency (0.03 s) plus one frame period
    # (20 fps) older than the request, to which the simulated inference latency adds.
    camera_age = 0.03 + 1.0 / 20
    assert all(0.25 + 0.03 - 1e-6 <= lat <= 0.25 + camera_age + 1e-6 for lat in slow.rollout.execution.latencies)
    assert all(0.03 - 1e-6 <= lat <= camera_age + 1e-6 for lat in fast.rollout.execution.latencies)


def test_lockstep_eval_refuses_what_it_cannot_run(sim_rig, tiny_checkpoint, capsys):
    assert main(["eval", "--rig", "ur5_cb3_example", "--checkpoint", str(tiny_checkpoint), "--lockstep"]) == 2
    assert "runs simulated Push-T rigs only" in capsys.readouterr().err
    assert main(["eval", "--rig", str(sim_rig()), "--remote", "tcp://127.0.0.1:9", "--lockstep"]) == 2
    assert "give --checkpoint, not --remote" in capsys.readouterr().err


def test_the_checkpoints_steps_per_inference_is_the_default_and_a_caller_overrides_it(sim_rig, tiny_checkpoint,
                                                                                       tmp_path):
    from robot_stack.policy.checkpoint import export_for_inference

    every_two = export_for_inference(tiny_checkpoint, tmp_path / "spi2.ckpt", steps_per_inference=2)
    default = LockstepEvaluator(_config(sim_rig(), every_two)).episode(3)
    whole = LockstepEvaluator(replace(_config(sim_rig(), every_two),
                                      executor=ExecutorConfig(dt=0.1, action_delay_steps=2, steps_per_inference=8))
                              ).episode(3)
    # 2 s of 0.1 s steps: a new chunk about every 2 steps by default, every 8 when the caller says so
    assert default.rollout.execution.chunks >= 8 and whole.rollout.execution.chunks <= 4


def test_inpainting_sends_the_current_plan_with_every_request_after_the_first(sim_rig, tiny_checkpoint, capsys,
                                                                            monkeypatch):
    from robot_stack.server.policy_service import PolicyService

    seen = []
    real_infer = PolicyService.infer

    def spy(self, obs, planned=None, committed_steps=None):
        seen.append(None if planned is None else (len(planned), committed_steps))
        return real_infer(self, obs, planned, committed_steps)

    monkeypatch.setattr(PolicyService, "infer", spy)
    assert main(["eval", "--rig", str(sim_rig()), "--checkpoint", str(tiny_checkpoint), "--lockstep", "--workers",
                 "1", "--episodes", "1", "--max-duration", "2", "--chunking", "inpaint"]) == 0
    assert "success rate" in capsys.readouterr().out
    assert len(seen) >= 2 and seen[0] is None  # the first request has no plan to continue
    assert all(plan is not None and plan[0] >= 1 and 0 <= plan[1] <= plan[0] for plan in seen[1:])
    with pytest.raises(ConfigError, match="chunking"):
        ExecutorConfig(chunking="blend")


def test_the_checkpoints_chunking_is_the_default_and_a_caller_overrides_it(sim_rig, tiny_checkpoint, tmp_path,
                                                                           monkeypatch):
    from robot_stack.policy.checkpoint import export_for_inference
    from robot_stack.server.policy_service import PolicyService

    plans = []
    real_infer = PolicyService.infer

    def spy(self, obs, planned=None, committed_steps=None):
        plans.append(planned is not None)
        return real_infer(self, obs, planned, committed_steps)

    monkeypatch.setattr(PolicyService, "infer", spy)
    inpainting = export_for_inference(tiny_checkpoint, tmp_path / "inpaint.ckpt", chunking="inpaint")
    # 4 of 8 actions per chunk: each new chunk's actions overlap the current plan, so inpainting has one to send
    unchosen = replace(_config(sim_rig(), inpainting), executor=ExecutorConfig(dt=0.1, action_delay_steps=2,
                                                                               steps_per_inference=4, chunking=None))
    LockstepEvaluator(unchosen).episode(3)
    assert len(plans) >= 2 and all(plans[1:])  # the checkpoint's inpainting: every later request has a plan
    plans.clear()
    LockstepEvaluator(replace(unchosen, executor=replace(unchosen.executor, chunking="switch"))).episode(3)
    assert len(plans) >= 2 and not any(plans)  # the caller's switch wins
    plans.clear()
    LockstepEvaluator(replace(_config(sim_rig(), tiny_checkpoint), executor=unchosen.executor)).episode(3)
    assert not any(plans)  # a checkpoint that does not say: switch
