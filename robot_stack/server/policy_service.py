"""``PolicyService``: what the policy server does with a request, independent of the transport.

It wraps a policy object with the Diffusion Policy interface (``n_obs_steps``, ``n_action_steps``,
``horizon``, ``action_dim``, ``obs_shapes``, ``predict_action(obs_dict)``), checks each observation against
that interface (exact keys, shapes, float dtypes) before the policy sees it, and returns the first batch
element's action chunk as float64 numpy. ``PolicyInfo`` is the interface as it travels to clients.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import numpy as np

from robot_stack.server.messages import CHUNKING_MODES, PLANNED_ACTION, MessageError


class Policy(Protocol):
    """The interface the server needs from a policy (``robot_stack.policy.DiffusionPolicy`` has it; its
    optional ``steps_per_inference`` attribute is the actions per chunk it is meant to execute)."""

    n_obs_steps: int
    n_action_steps: int
    horizon: int
    action_dim: int
    obs_shapes: Mapping[str, tuple[int, ...]]

    def predict_action(self, obs_dict: Mapping[str, Any]) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class PolicyInfo:
    """A policy's interface: observation keys/shapes per step, history length, chunk length, action size.

    ``obs_shapes`` values are ``(C, H, W)`` for cameras (keys ``camera_<i>``) and ``(D,)`` for low-dim keys
    (the leading ``D`` columns are used). ``dt`` is the control period the policy was trained at and
    ``action_delay_steps`` the timing convention of its actions (action ``k`` of a chunk is meant for
    ``t_obs + (k + action_delay_steps) * dt``), when known (``robot_stack.data.timing_convention``).
    ``steps_per_inference`` is how many actions of each chunk it is meant to execute before re-planning
    (None: the whole chunk), and ``chunking`` how its chunks are meant to be joined (None: switch); both
    the executor's defaults.
    """

    n_obs_steps: int
    n_action_steps: int
    horizon: int
    action_dim: int
    obs_shapes: dict[str, tuple[int, ...]]
    dt: float | None = None
    action_delay_steps: int | None = None
    steps_per_inference: int | None = None
    chunking: str | None = None

    @classmethod
    def of(cls, policy: Policy, dt: float | None = None, action_delay_steps: int | None = None) -> "PolicyInfo":
        """The interface of a policy object."""
        return cls(
            n_obs_steps=int(policy.n_obs_steps),
            n_action_steps=int(policy.n_action_steps),
            horizon=int(policy.horizon),
            action_dim=int(policy.action_dim),
            obs_shapes={str(k): tuple(int(d) for d in v) for k, v in policy.obs_shapes.items()},
            dt=dt,
            action_delay_steps=action_delay_steps,
            # optional in the interface: a policy without it runs whole chunks
            steps_per_inference=getattr(policy, "steps_per_inference", None),
            chunking=getattr(policy, "chunking", None),
        )

    def neutral_observation(self) -> dict[str, np.ndarray]:
        """An observation history of this interface's shapes: mid-grey images, zero low-dim values (for
        warm-up and timing: the denoising time does not depend on the values)."""
        return {key: np.full((self.n_obs_steps, *shape), 0.5 if len(shape) == 3 else 0.0, np.float32)
                for key, shape in self.obs_shapes.items()}

    def to_meta(self) -> dict[str, Any]:
        """Plain-JSON form for an ``info`` message."""
        return {
            "n_obs_steps": self.n_obs_steps,
            "n_action_steps": self.n_action_steps,
            "horizon": self.horizon,
            "action_dim": self.action_dim,
            "obs_shapes": {k: list(v) for k, v in self.obs_shapes.items()},
            "dt": self.dt,
            "action_delay_steps": self.action_delay_steps,
            "steps_per_inference": self.steps_per_inference,
            **({} if self.chunking is None else {"chunking": self.chunking}),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "PolicyInfo":
        """Parse an ``info`` message's meta (already type-checked by ``messages.decode``)."""
        for key in ("n_obs_steps", "n_action_steps", "horizon", "action_dim"):
            if not 1 <= meta[key] <= 10_000:
                raise MessageError("bad_meta", f"info '{key}' must be in [1, 10000], got {meta[key]}")
        shapes = meta["obs_shapes"]
        parsed: dict[str, tuple[int, ...]] = {}
        for key, shape in shapes.items():
            ok = isinstance(shape, list) and len(shape) in (1, 3)
            ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 100_000 for d in shape)
            if not ok:
                raise MessageError("bad_meta", f"info obs_shapes['{key}'] must be [C, H, W] or [D], got {shape!r:.80}")
            parsed[key] = tuple(shape)
        if not parsed:
            raise MessageError("bad_meta", "info obs_shapes is empty")
        dt = meta["dt"]
        if dt is not None and not 0.0 < dt <= 10.0:
            raise MessageError("bad_meta", f"info dt must be in (0, 10] s, got {dt}")
        delay = meta["action_delay_steps"]
        if delay is not None and not 0 <= delay <= 100:
            raise MessageError("bad_meta", f"info action_delay_steps must be in [0, 100], got {delay}")
        steps = meta["steps_per_inference"]
        if steps is not None and not 1 <= steps <= meta["n_action_steps"]:
            raise MessageError("bad_meta", f"info steps_per_inference must be in [1, n_action_steps], got {steps}")
        chunking = meta.get("chunking")
        if chunking is not None and chunking not in CHUNKING_MODES:
            raise MessageError("bad_meta", f"info chunking must be one of {list(CHUNKING_MODES)}, got {chunking!r:.40}")
        return cls(meta["n_obs_steps"], meta["n_action_steps"], meta["horizon"], meta["action_dim"], parsed,
                   None if dt is None else float(dt), delay, steps, chunking)

    def check_observation(self, obs: Mapping[str, np.ndarray]) -> None:
        """Raise ``MessageError('bad_observation')`` unless ``obs`` has exactly this policy's keys and shapes.

        Each value is one observation history (no batch axis): ``(n_obs_steps, *shape)``; low-dim arrays may
        have more columns than used.
        """
        missing = sorted(set(self.obs_shapes) - set(obs))
        unknown = sorted(set(obs) - set(self.obs_shapes))
        if missing or unknown:
            raise MessageError("bad_observation", f"observation keys: missing {missing}, unexpected {unknown}")
        for key, shape in self.obs_shapes.items():
            value = obs[key]
            if value.dtype.kind != "f":
                raise MessageError("bad_observation", f"'{key}' must be float (images in [0, 1]), got {value.dtype}")
            want = f"({self.n_obs_steps}, {', '.join(map(str, shape))})"
            ok = value.ndim == 1 + len(shape) and value.shape[0] == self.n_obs_steps
            ok = ok and (value.shape[1:] == shape if len(shape) == 3 else value.shape[-1] >= shape[0])
            if not ok:
                raise MessageError("bad_observation", f"'{key}' must have shape {want}, got {value.shape}")


class PolicyService:
    """Serves one policy: ``info()`` and ``infer(obs)``; used by ``PolicyServer`` (local and remote mode)."""

    def __init__(self, policy: Policy, dt: float | None = None, action_delay_steps: int | None = None):
        self.policy = policy
        self.info = PolicyInfo.of(policy, dt, action_delay_steps)
        # Inpainting needs a policy whose predict_action takes the previous plan (DiffusionPolicy does).
        self.takes_plans = "planned" in inspect.signature(policy.predict_action).parameters

    def warmup(self) -> float:
        """Run one inference on a neutral observation (first calls allocate/compile); returns its seconds."""
        return self.infer(self.info.neutral_observation())[1]

    def infer(self, obs: Mapping[str, np.ndarray], planned: np.ndarray | None = None,
              committed_steps: int | None = None) -> tuple[np.ndarray, float]:
        """Run the policy on one observation history; returns (actions (n_action_steps, Da), seconds taken).

        ``planned`` (K, Da) and ``committed_steps``: the previous plan for this chunk's first K steps, of which
        that many are committed; the chunk is then sampled continuing it (``DiffusionPolicy.predict_action``).
        Raises ``MessageError`` for observations or plans that do not fit the policy, and whatever the
        policy raises (``ValueError`` for bad values, ``RuntimeError`` for non-finite outputs).
        """
        self.info.check_observation(obs)
        plan = self._check_plan(planned, committed_steps)
        # Batch of one; copies, since decoded arrays are read-only views of the received frames.
        batch = {key: np.array(value, dtype=np.float32)[None] for key, value in obs.items()}
        t0 = time.perf_counter()
        out = self.policy.predict_action(batch, **plan)
        elapsed = time.perf_counter() - t0
        action = _to_numpy(out["action"])
        expected = (1, self.info.n_action_steps, self.info.action_dim)
        if action.shape != expected:
            raise RuntimeError(f"policy returned actions of shape {action.shape}, its interface says {expected}")
        return action[0].astype(np.float64), elapsed


    def _check_plan(self, planned: np.ndarray | None, committed_steps: int | None) -> dict[str, Any]:
        """``predict_action``'s plan arguments (none without a plan); ``MessageError('bad_plan')`` if unusable."""
        if planned is None:
            if committed_steps is not None:
                raise MessageError("bad_plan", f"committed_steps without a '{PLANNED_ACTION}' array")
            return {}
        if not self.takes_plans:
            raise MessageError("bad_plan", "this policy does not take a previous plan (inpainting); use switch chunking")
        info = self.info
        room = info.horizon - info.n_obs_steps + 1
        if planned.dtype.kind != "f" or planned.ndim != 2 or planned.shape[1] != info.action_dim or \
                not 1 <= planned.shape[0] <= room:
            raise MessageError("bad_plan", f"'{PLANNED_ACTION}' must be float (K <= {room}, {info.action_dim}), "
                               f"got {planned.dtype} {planned.shape}")
        if not np.isfinite(planned).all():
            raise MessageError("bad_plan", f"'{PLANNED_ACTION}' holds NaN/inf")
        steps = len(planned) if committed_steps is None else committed_steps
        if not 0 <= steps <= len(planned):
            raise MessageError("bad_plan", f"committed_steps must be in [0, {len(planned)}], got {committed_steps}")
        return {"planned": np.array(planned, dtype=np.float32)[None], "committed_steps": steps}


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)
