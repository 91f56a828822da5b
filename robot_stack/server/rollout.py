"""``run_rollout``: the robot-side policy loop of one episode (observe -> infer -> execute), on started parts.

Each iteration: when the executor says the next inference is due and none is in flight, assemble the
observation history and submit it; while a request is in flight, wait (briefly) for its chunk and hand it
to the executor. The loop never blocks longer than ``tick`` so ``should_end`` and ``on_tick`` (preview,
recording) run regularly, and the robot side stays in control whatever the server does:

* server slow: a request still unanswered after the timeout is counted (``inference_timeouts``) but not
  given up: its chunk, when it comes, is used — the executor drops the actions whose time has passed and
  runs the rest (resending would only put the next request behind the same slow server, and under load
  the arm would never move). The timeout adapts: ``inference_timeout``, or twice the slowest recent
  latency when that is longer. Only after ``ABANDON_FACTOR`` timeouts is the request abandoned (the server
  is presumed lost) and a new one sent with fresh data;
* server gone: ``submit`` fails at once (counted), retried every ``retry_interval``;
* server returns an error or a bad chunk: counted, retried with fresh data.

Meanwhile the executor keeps handing over the current plan's actions on time, then the arm holds the last
waypoint: it holds within one chunk's duration of losing the policy. When the loop itself ends (episode
over, or the robot-side process dies), nothing more is handed over and the arm holds within the
executor's ``lookahead``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from robot_stack.config import ConfigError
from robot_stack.runtime import now
from robot_stack.server.executor import ChunkOutcome, ExecutionStats, RecedingHorizonExecutor
from robot_stack.server.messages import MessageError
from robot_stack.server.observation import ObservationAssembler, StaleObservationError
from robot_stack.server.transport import PolicyClient, PolicyTimeout, RemoteError

log = logging.getLogger(__name__)

ABANDON_FACTOR = 5  # a request unanswered for this many timeouts is given up (the server is presumed lost)
_LATENCY_WINDOW = 10  # recent request-to-chunk times the adaptive timeout looks at


@dataclass
class RolloutConfig:
    """Loop limits (seconds)."""

    max_duration: float = 60.0
    inference_timeout: float = 1.0
    retry_interval: float = 0.1
    tick: float = 0.005

    def __post_init__(self) -> None:
        if min(self.max_duration, self.inference_timeout, self.retry_interval, self.tick) <= 0:
            raise ConfigError("max_duration, inference_timeout, retry_interval and tick must be > 0")


@dataclass
class RolloutStats:
    """What happened in one episode's loop; ``execution`` holds the scheduling totals."""

    end_reason: str = ""
    duration: float = 0.0
    execution: ExecutionStats = field(default_factory=ExecutionStats)
    refused_observations: int = 0  # stale/misaligned/unsendable: no inference from them
    inference_timeouts: int = 0  # requests still unanswered after the (adaptive) timeout
    late_chunks: int = 0  # chunks that came after the timeout (their future actions were still used)
    abandoned_requests: int = 0  # requests given up after ABANDON_FACTOR timeouts
    server_unreachable: int = 0
    server_errors: int = 0
    outcomes: list[ChunkOutcome] = field(default_factory=list)


def run_rollout(
    assembler: ObservationAssembler,
    client: PolicyClient,
    executor: RecedingHorizonExecutor,
    config: RolloutConfig,
    should_end: Callable[[], str | None] = lambda: None,
    on_tick: Callable[[], None] | None = None,
    clock: Callable[[], float] = now,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutStats:
    """Run the policy until ``should_end()`` returns a reason or ``max_duration`` passes; returns stats.

    ``clock``/``sleep`` are the time base (the lockstep simulator passes its simulated clock and advance)."""
    stats = RolloutStats(execution=executor.stats)
    t_start = clock()
    next_inference = t_start
    t_submitted = 0.0
    timed_out = False  # the in-flight request passed the timeout (counted once)
    recent: deque[float] = deque(maxlen=_LATENCY_WINDOW)  # request-to-chunk times
    problem: str | None = None  # the current failure, logged once when it starts and once when it clears

    def timeout() -> float:
        return max(config.inference_timeout, 2.0 * max(recent, default=0.0))

    def fail(kind: str, message: str, retry_at: float) -> float:
        nonlocal problem
        if problem != kind:
            log.warning("policy %s: %s; the arm holds after its current plan", kind, message)
            problem = kind
        return retry_at

    if client.in_flight:
        client.cancel()  # a previous episode's request: its reply must not drive this episode
    while True:
        t = clock()
        reason = should_end()
        if reason is None and t - t_start >= config.max_duration:
            reason = "max_duration"
        if reason is not None:
            stats.end_reason = reason
            break
        executor.dispatch()
        if on_tick is not None:
            on_tick()
        if not client.in_flight and t >= next_inference:
            try:
                obs, t_obs = assembler.assemble()
                plan = executor.plan_for(t_obs) if executor.config.chunking == "inpaint" else None
                client.submit(obs, t_obs, plan=plan)
                t_submitted = clock()
                timed_out = False
            except StaleObservationError as exc:
                stats.refused_observations += 1
                next_inference = fail("stale observation", str(exc), t + config.retry_interval)
            except PolicyTimeout as exc:
                stats.server_unreachable += 1
                next_inference = fail("server unreachable", str(exc), t + config.retry_interval)
            except MessageError as exc:
                stats.refused_observations += 1
                next_inference = fail("unsendable observation", str(exc), t + config.retry_interval)
        if client.in_flight:
            try:
                chunk = client.poll(config.tick)
            except RemoteError as exc:
                stats.server_errors += 1
                next_inference = fail("server error", str(exc), clock() + config.retry_interval)
                continue
            waited = clock() - t_submitted
            if chunk is not None:
                if problem is not None:
                    log.info("policy recovered (%s cleared)", problem)
                    problem = None
                stats.late_chunks += timed_out
                recent.append(waited)
                stats.outcomes.append(executor.accept(chunk))
                next_inference = executor.next_inference_time(chunk)
            elif waited >= ABANDON_FACTOR * timeout():
                client.cancel()
                stats.abandoned_requests += 1
                next_inference = fail("lost", f"no chunk within {waited:.2f} s; sending a fresh request", clock())
            elif waited >= timeout() and not timed_out:
                timed_out = True
                stats.inference_timeouts += 1
                fail("timeout", f"no chunk within {timeout():.2f} s; still waiting for it", clock())
        else:
            sleep(max(0.0, min(config.tick, next_inference - clock())))
    if client.in_flight:
        client.cancel()
    executor.finish()
    stats.duration = clock() - t_start
    return stats
