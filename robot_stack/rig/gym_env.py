"""The lockstep Push-T rig as a ``gymnasium`` environment: ``robot_stack/PushT-v0``.

>>> import gymnasium, robot_stack.rig.gym_env  # registers the id (or: "robot_stack.rig.gym_env:robot_stack/PushT-v0")
>>> env = gymnasium.make("robot_stack/PushT-v0", obs_type="lowdim")

One ``step`` is one policy step (``dt``, 0.1 s) of the lockstep simulator: the action — the TCP target xy
in the robot base frame, meters, as in the recorded datasets — is handed to the arm's controller for
``action_delay_steps`` steps after the observation it answers (the recorded timing convention), then the rig
runs ``dt`` of simulated time. Observations:

* ``obs_type="lowdim"``: ``float32 (20,)`` — the T's 9 keypoints (table frame, m) then the TCP xy (base
  frame, m), the ``push_t_lowdim`` policy's inputs;
* ``obs_type="image"``: a dict with one ``uint8 (H, W, 3)`` image per rig camera (``camera_<i>``, the
  camera's output image) and ``agent_pos`` (TCP xy).

Reward: ``min(1, coverage / 0.95)`` with coverage = area(T and goal) / area(goal), the original's; the
episode terminates when coverage reaches 0.95 and is truncated at the scene's time limit.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from robot_stack.data.collection import ACTION_DELAY_STEPS
from robot_stack.resources import rig_path
from robot_stack.rig.config import load_rig
from robot_stack.sim.lockstep import LockstepPushT
from robot_stack.sim.pusht.config import SUCCESS_COVERAGE
from robot_stack.sim.pusht.physics import N_KEYPOINTS

ENV_ID = "robot_stack/PushT-v0"


class PushTEnv(gymnasium.Env):
    """See the module docstring. ``rig``: a rig path or shipped name (default ``sim_pusht``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, obs_type: str = "lowdim", rig: str = "sim_pusht", dt: float = 0.1,
                 render_mode: str | None = None):
        if obs_type not in ("lowdim", "image"):
            raise ValueError(f"obs_type must be 'lowdim' or 'image', got {obs_type!r}")
        self.rig = load_rig(rig_path(rig))
        self.obs_type = obs_type
        self.dt = dt
        self.render_mode = render_mode
        ws = self.rig.robot.workspace
        xy_lo, xy_hi = np.array(ws.min[:2], np.float32), np.array(ws.max[:2], np.float32)
        self.action_space = spaces.Box(xy_lo, xy_hi)
        agent = spaces.Box(xy_lo, xy_hi)
        if obs_type == "lowdim":
            # keypoints stay on the walled table (table frame, centred): within its half-size plus the T
            reach = float(max(self.rig.scene.table_size)) / 2 + 0.2
            lo = np.concatenate([np.full(2 * N_KEYPOINTS, -reach, np.float32), xy_lo])
            hi = np.concatenate([np.full(2 * N_KEYPOINTS, reach, np.float32), xy_hi])
            self.observation_space = spaces.Box(lo, hi)
        else:
            cams = {f"camera_{i}": spaces.Box(0, 255, (c.image_size[1], c.image_size[0], 3), np.uint8)
                    for i, c in enumerate(self.rig.cameras)}
            self.observation_space = spaces.Dict({**cams, "agent_pos": agent})
        self.sim: LockstepPushT | None = None
        self._base_pose: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        scene_seed = int(self.np_random.integers(0, 2**31)) if seed is None else int(seed)
        cameras = self.rig.cameras if self.obs_type == "image" or self.render_mode else ()
        self.sim = LockstepPushT(self.rig.robot, self.rig.scene, cameras, seed=scene_seed)
        self.sim.scene.reset(scene_seed)
        self._base_pose = np.array(self.sim.arm.get_state()["actual_tcp_pose"], dtype=np.float64)
        if self.rig.planar_z is not None:
            self._base_pose[2] = self.rig.planar_z
        return self._observation(), self._info()

    def step(self, action) -> tuple[Any, float, bool, bool, dict]:
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        xy = np.asarray(action, dtype=np.float64).reshape(2)
        if not np.all(np.isfinite(xy)):
            raise ValueError(f"action must be a finite TCP xy, got {xy}")
        target = self._base_pose.copy()
        target[:2] = xy
        t_obs = float(self.sim.arm.get_state()["timestamp"])
        self.sim.schedule_waypoint(target, t_obs + ACTION_DELAY_STEPS * self.dt)
        self.sim.advance(self.dt)
        coverage = float(self.sim.scene.get_state()["goal_coverage"])
        return self._observation(), min(1.0, coverage / SUCCESS_COVERAGE), coverage >= SUCCESS_COVERAGE, False, \
            self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.sim is None or not self.sim.cameras:
            return None
        return np.asarray(self.sim.cameras[0].get()["color"])

    def _observation(self) -> Any:
        assert self.sim is not None
        scene, robot = self.sim.scene.get_state(), self.sim.arm.get_state()
        agent = np.asarray(robot["actual_tcp_pose"][:2], dtype=np.float32)
        if self.obs_type == "lowdim":
            return np.concatenate([np.asarray(scene["keypoints"], np.float32).ravel(), agent])
        images = {f"camera_{i}": np.asarray(buf.get()["color"]) for i, buf in enumerate(self.sim.cameras)}
        return {**images, "agent_pos": agent}

    def _info(self) -> dict:
        assert self.sim is not None
        scene = self.sim.scene.get_state()
        return {"coverage": float(scene["goal_coverage"]), "iou": float(scene["coverage"]),
                "success": bool(scene["goal_coverage"] >= SUCCESS_COVERAGE), "time": self.sim.now()}


def register_envs() -> None:
    """Register ``robot_stack/PushT-v0`` with gymnasium (idempotent): 600 steps, the scene's 60 s limit."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=PushTEnv, max_episode_steps=600)


register_envs()
