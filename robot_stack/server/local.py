"""Local mode: the policy runs in its own ``DeviceProcess``, served over a private ZeroMQ ipc socket.

The robot side talks to it with the same ``PolicyClient`` as to a remote ``robot-stack serve``, so local
and remote mode share every line of the request/timeout/drop logic; only the endpoint differs. Inference
in its own process keeps the GIL-heavy denoising loop away from the control loop's timing.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from robot_stack.runtime import DeviceProcess
from robot_stack.server.policy_service import PolicyInfo, PolicyService
from robot_stack.server.transport import PolicyServer

# Poll period of the serving loop: how quickly a stop request is noticed; requests are answered at once.
_POLL_S = 0.05


class CheckedCheckpoint(NamedTuple):
    """What ``CheckpointService.check`` learns: the interface, the scene seeds trained on, and how the
    training images were made (per camera; None if the checkpoint does not say)."""

    info: PolicyInfo
    trained_seeds: list[int]
    cameras: list[dict] | None


@dataclass(frozen=True)
class CheckpointService:
    """Picklable factory of a ``PolicyService`` for a checkpoint (what ``PolicyProcess`` runs by default).

    The policy's ``dt`` and action timing come from the checkpoint (``convention``; the original's when it
    has none); ``dt`` given here overrides the period.
    """

    checkpoint: str
    device: str = "cpu"
    dt: float | None = None

    def __call__(self) -> PolicyService:
        _, policy, dt, delay = self._load()
        return PolicyService(policy.to(self.device).eval(), dt, delay)

    def check(self) -> CheckedCheckpoint:
        """Load the checkpoint in this process, on the CPU (``ConfigError`` naming the file if it is unreadable,
        damaged or from another config)."""
        from robot_stack.policy.checkpoint import checkpoint_cameras

        payload, policy, dt, delay = self._load()
        seeds = [int(s) for s in payload.get("train_state", {}).get("scene_seeds", [])]
        return CheckedCheckpoint(PolicyInfo.of(policy, dt, delay), seeds, checkpoint_cameras(payload))

    def _load(self) -> tuple[dict, Any, float, int]:
        """(payload, policy on the CPU, dt, action_delay_steps): the timing is the checkpoint's, ``dt`` overriding."""
        # torch is imported only where a policy runs
        from robot_stack.policy.checkpoint import checkpoint_timing, load_checkpoint, policy_from_payload

        payload = load_checkpoint(self.checkpoint)
        timing = checkpoint_timing(payload, self.checkpoint)
        policy = policy_from_payload(payload, source=self.checkpoint)
        return payload, policy, self.dt or timing.dt, timing.action_delay_steps


def private_ipc_endpoint() -> str:
    """A fresh ipc endpoint in the temp dir (a socket file only this user's processes use)."""
    return f"ipc://{tempfile.gettempdir()}/robot_stack_policy_{os.getpid()}_{uuid.uuid4().hex[:8]}.sock"


class PolicyProcess(DeviceProcess):
    """Serves ``make_service()`` (a picklable callable, e.g. ``CheckpointService``) on ``endpoint``.

    ``endpoint`` defaults to a private ipc socket; connect a ``PolicyClient`` to ``process.endpoint``.
    ``token`` is optional here since an ipc socket is only reachable from this machine.
    """

    startup_timeout = 120.0  # loading a checkpoint (torch import, CUDA init) can take a while
    priority_role = "policy"  # its latency decides how many actions arrive stale

    def __init__(self, make_service: Callable[[], PolicyService], endpoint: str | None = None,
                 token: str | None = None, name: str = "policy"):
        super().__init__(name=name)
        self.make_service = make_service
        self.endpoint = endpoint or private_ipc_endpoint()
        self.token = token
        self._server: PolicyServer | None = None

    def setup(self) -> None:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        if cores and torch.get_num_threads() > cores:
            torch.set_num_threads(cores)  # pinned to fewer cores: more threads would only contend for them
        service = self.make_service()
        service.warmup()  # lazy allocations happen now, not in the first real request
        self._server = PolicyServer(service, bind=self.endpoint, token=self.token)

    def step(self) -> None:
        assert self._server is not None
        self._server.serve_once(_POLL_S)

    def teardown(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.endpoint.startswith("ipc://"):
            try:
                os.unlink(self.endpoint[len("ipc://"):])
            except FileNotFoundError:
                pass
