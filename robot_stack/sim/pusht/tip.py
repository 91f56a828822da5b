"""``TcpTip``: how the Push-T tip follows the arm, one physics tick at a time — shared by the scene process
(real time) and the lockstep simulator, so both move the tip identically.

The latest actual TCP pose's xy, mapped into the table frame, is the tip's target, and its height says
whether the tip is down (can push). Until a pose has arrived the tip is lifted; the first pose places it.
A non-finite pose is ignored (the tip keeps its last good target; counted) so a bad reading never
teleports the tip through the block.
"""

from __future__ import annotations

import logging

import numpy as np

from robot_stack.sim.pusht.config import SceneConfig
from robot_stack.sim.pusht.physics import PushTPhysics

log = logging.getLogger(__name__)


class TcpTip:
    """Drives ``physics`` from TCP poses: ``tick(pose, resets)`` once per physics period."""

    def __init__(self, config: SceneConfig, physics: PushTPhysics, name: str = "scene"):
        self.config = config
        self.physics = physics
        self.name = name
        self.bad_poses = 0
        self._last: tuple[np.ndarray, bool] | None = None
        self._placed = False

    def start(self, pose: np.ndarray | None, seed: int) -> None:
        """First reset, with the tip wherever the TCP is (lifted if there is no pose yet)."""
        tip = self._tip(pose)
        self._last = tip
        self.physics.reset(seed, None if tip is None else tip[0])
        self._placed = tip is not None
        self.physics.set_pusher_down(tip is not None and tip[1])

    def tick(self, pose: np.ndarray | None, resets: list[int] | tuple[int, ...] = ()) -> dict[str, np.ndarray]:
        """Apply queued resets (seeds), then step the physics one period toward the TCP's xy; returns the
        new scene state (``PushTPhysics.step``'s)."""
        tip = self._tip(pose) or self._last
        self._last = tip
        for seed in resets:
            self.physics.reset(int(seed), None if tip is None else tip[0])
        if tip is None:
            return self.physics.step(self.physics.state()["pusher_xy"], pusher_down=False)
        xy, down = tip
        if not self._placed:
            self.physics.set_pose(self.physics.block_pose, xy)
            self._placed = True
        return self.physics.step(xy, pusher_down=down)

    def _tip(self, pose: np.ndarray | None) -> tuple[np.ndarray, bool] | None:
        """Table-frame tip xy and whether it is down, from a TCP pose (None: no usable pose)."""
        if pose is None:
            return None
        if not np.all(np.isfinite(pose)):
            self.bad_poses += 1
            if self.bad_poses == 1:
                log.error("%s: ignoring non-finite robot TCP pose %s", self.name, pose)
            return None
        return self.config.base_to_table(pose[:2]), self.config.pusher_in_contact(float(pose[2]))
