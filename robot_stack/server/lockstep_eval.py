"""Policy evaluation on the lockstep simulator: ``robot-stack eval --lockstep``.

Each episode runs the runtime's own evaluation loop (``run_evaluation``: observation assembler, receding
horizon executor, rollout loop, success rule and metrics) on a fresh ``LockstepPushT`` in simulated time. The
policy runs in this process; ``LockstepPolicyClient`` gives its chunk to the rollout loop a fixed simulated
``inference_latency`` after the request — the only stand-in for the runtime's policy process and sockets.
Episodes are independent (one fresh rig each, the policy's noise seeded from the scene seed), so results are
deterministic for a seed and the same whichever worker process ran them.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from robot_stack.config import ConfigError
from robot_stack.data.timing_convention import TimingConvention
from robot_stack.server.evaluation import EpisodeResult, EvalConfig, run_evaluation
from robot_stack.server.executor import ExecutorConfig
from robot_stack.server.policy_service import PolicyService
from robot_stack.server.rollout import RolloutConfig
from robot_stack.server.transport import ActionChunk
from robot_stack.sim.lockstep import LockstepPushT, LockstepRig

log = logging.getLogger(__name__)


class LockstepPolicyClient:
    """``PolicyClient``'s ``submit``/``poll``/``cancel``/``in_flight`` on the lockstep clock."""

    def __init__(self, service: PolicyService, sim: LockstepPushT, latency: float):
        if latency < 0:
            raise ConfigError(f"inference latency must be >= 0 s, got {latency}")
        self.service = service
        self.sim = sim
        self.latency = latency
        self._ids = itertools.count(1)
        self._pending: ActionChunk | None = None

    @property
    def in_flight(self) -> bool:
        return self._pending is not None

    def submit(self, obs: Mapping[str, np.ndarray], t_obs: float, timeout: float = 0.0,
               plan: tuple[np.ndarray, int] | None = None) -> int:
        if self._pending is not None:
            raise RuntimeError("a request is already in flight")
        actions, elapsed = self.service.infer(obs, *(plan or (None, None)))
        t_sent = self.sim.now()
        rid = next(self._ids)
        self._pending = ActionChunk(rid, actions, float(t_obs), t_sent, t_sent + self.latency, elapsed)
        return rid

    def poll(self, timeout: float = 0.0) -> ActionChunk | None:
        if self._pending is None:
            raise RuntimeError("poll() without a submitted request")
        arrives = self._pending.t_received
        if arrives > self.sim.now() + timeout:
            self.sim.advance(timeout)
            return None
        self.sim.run_until(arrives)
        chunk, self._pending = self._pending, None
        return chunk

    def cancel(self) -> None:
        self._pending = None


@dataclass(frozen=True)
class LockstepEvalConfig:
    """What every lockstep episode shares (picklable: it travels to the worker processes)."""

    checkpoint: str | None  # None when the evaluator is handed a policy service (training's rollouts)
    rig: LockstepRig
    executor: ExecutorConfig
    rollout: RolloutConfig
    base_z: float | None
    inference_latency: float = 0.08

    def __post_init__(self) -> None:
        if self.inference_latency < 0:
            raise ConfigError(f"--inference-latency must be >= 0 s, got {self.inference_latency}")


class LockstepEvaluator:
    """Runs episodes of one checkpoint in this process (the policy loaded once)."""

    def __init__(self, config: LockstepEvalConfig, service: PolicyService | None = None):
        from robot_stack.server.local import CheckpointService

        self.config = config
        self.service = service or CheckpointService(config.checkpoint, "cpu", config.executor.dt)()

    def episode(self, seed: int) -> EpisodeResult:
        """One episode on a fresh lockstep rig from the random start of ``seed``."""
        import torch

        cfg = self.config
        torch.manual_seed(seed)  # the denoising noise: deterministic per episode, whoever runs it
        sim = cfg.rig.build(seed)
        client = LockstepPolicyClient(self.service, sim, cfg.inference_latency)
        (result,) = run_evaluation(
            sim.arm, dict(enumerate(sim.cameras)), client, self.service.info,
            EvalConfig(episodes=1, seed=seed, base_z=cfg.base_z), cfg.executor, cfg.rollout,
            scene=sim.scene, clock=sim.now, sleep=sim.advance,
        )
        # The per-chunk outcomes stay here: the totals in ``execution`` are what the report uses.
        return replace(result, rollout=replace(result.rollout, outcomes=[]))


_WORKER: LockstepEvaluator | None = None


def success_rate_evaluator(config: LockstepEvalConfig, seeds: Sequence[int]) -> Callable[[object, TimingConvention], float]:
    """``evaluator(policy, timing) -> success rate`` over ``seeds`` in this process, for the trainer's rollouts;
    actions are executed with ``timing`` (the training data's), whatever ``config.executor`` says."""
    def evaluate(policy, timing: TimingConvention) -> float:
        executor = replace(config.executor, dt=timing.dt, action_delay_steps=timing.action_delay_steps)
        run = replace(config, executor=executor)
        evaluator = LockstepEvaluator(run, PolicyService(policy, timing.dt, timing.action_delay_steps))
        return float(np.mean([evaluator.episode(seed).success for seed in seeds]))

    return evaluate


def _init_worker(config: LockstepEvalConfig) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)  # one core per worker: workers, not threads, use the machine
    logging.getLogger("robot_stack").setLevel(logging.WARNING)
    _WORKER = LockstepEvaluator(config)


def _run_seed(seed: int) -> EpisodeResult:
    assert _WORKER is not None
    return _WORKER.episode(seed)


def evaluate_lockstep(config: LockstepEvalConfig, seeds: Sequence[int], workers: int | None = None,
                      on_result: Callable[[EpisodeResult], None] | None = None) -> list[EpisodeResult]:
    """Evaluate ``seeds`` (one episode each) with ``workers`` processes (default: the cores); results in
    seed order. ``on_result`` sees each result as it finishes (progress)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(seeds)))
    results: dict[int, EpisodeResult] = {}
    for result in _results(config, list(seeds), workers):
        results[result.seed] = result
        if on_result is not None:
            on_result(result)
    return [results[s] for s in seeds]


def _results(config: LockstepEvalConfig, seeds: list[int], workers: int) -> Iterator[EpisodeResult]:
    if workers == 1:
        import torch

        torch.set_num_threads(1)  # as in the workers: batch-1 inference gains little from threads
        evaluator = LockstepEvaluator(config)
        yield from (evaluator.episode(s) for s in seeds)
        return
    with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        yield from pool.imap_unordered(_run_seed, seeds)
