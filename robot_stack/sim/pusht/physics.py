"""``PushTPhysics``: the 2-D Push-T scene — a T block on a walled table pushed by a kinematic disc (the tip).

Units are meters/seconds in the table frame (see ``SceneConfig``). The block slides with Coulomb table
friction integrated over its footprint (it stops soon after the pusher lets go, and turns about the right
point when pushed off-centre, as on a real table) and the
pusher is kinematic: it moves toward a target xy at most ``max_pusher_speed`` fast and is never pushed back.
Everything is deterministic for a given seed and sequence of targets.

Scene state is a plain record ``{field: np.ndarray}`` with the fields of ``SCENE_STATE_SPEC``; the same
record travels through the scene process's ring buffer, so pure-physics and multiprocess code read it alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pymunk

from robot_stack.sim.pusht.config import SceneConfig
from robot_stack.sim.pusht.geometry import (
    footprint_points,
    iou,
    point_polygon_distance,
    polygon_area,
    transform_points,
    wrap_angle,
)

N_KEYPOINTS = 9
# Ring-buffer record of the scene state. Poses/positions are in the table frame.
SCENE_STATE_SPEC: dict[str, tuple[tuple[int, ...], Any]] = {
    "block_pose": ((3,), np.float64),  # [x, y, theta] of the block frame (origin at the T's centroid)
    "pusher_xy": ((2,), np.float64),  # centre of the tip disc
    "pusher_down": ((), np.bool_),  # tip low enough to push (TCP below table_z + contact_height)
    "coverage": ((), np.float64),  # IoU of the block with the goal region, 0..1
    # area(block and goal) / area(goal): the original Diffusion Policy Push-T metric (success at >= 0.95)
    "goal_coverage": ((), np.float64),
    # the T's 8 outline corners and its centroid (table frame): the low-dim policy's view of the block
    "keypoints": ((N_KEYPOINTS, 2), np.float64),
    "success": ((), np.bool_),  # coverage >= success_threshold
    "episode": ((), np.int64),  # number of resets so far (changes when a reset took effect)
    "seed": ((), np.int64),  # seed of the last reset
    "timestamp": ((), np.float64),  # runtime clock in the scene process; sim time since reset in pure physics
}

_GRAVITY = 9.81
# Contacts may overlap this much before being corrected. pymunk's default (0.1) assumes pixel units;
# in meters it would let the pusher sink 10 cm into the block.
_COLLISION_SLOP = 2e-4
_SOLVER_ITERATIONS = 30
_WALL_RADIUS = 0.01
_FOOTPRINT_SPACING = 0.005  # table-friction elements, meters
# Random starts that already cover the goal this well would make trivial demonstrations.
_MAX_START_COVERAGE = 0.5
# Free space kept between the random pusher start and the block, meters.
_START_CLEARANCE = 0.01
_MAX_RESET_TRIES = 10_000


class PushTPhysics:
    """The Push-T physics scene. ``reset(seed)``, then ``step(target_xy)`` once per ``1 / physics_hz`` s."""

    def __init__(self, config: SceneConfig):
        self.config = config
        self.dt = 1.0 / config.physics_hz
        self._parts = config.block_parts
        self._outline = config.block_outline
        self._keypoints = np.vstack([self._outline, np.zeros((1, 2))])  # block frame: origin = centroid
        self._goal = np.asarray(config.goal_pose, dtype=np.float64)
        self._half = np.asarray(config.table_size, dtype=np.float64) / 2
        self._space = pymunk.Space()
        self._space.collision_slop = _COLLISION_SLOP
        self._space.iterations = _SOLVER_ITERATIONS
        self._add_walls()
        self._block = self._add_block()
        self._pusher_body = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self._pusher = pymunk.Circle(self._pusher_body, config.pusher_radius)
        self._pusher.friction = config.pusher_friction  # arbiter friction = product; the block's is 1
        self._space.add(self._pusher_body, self._pusher)
        self._footprint = footprint_points(self._parts, _FOOTPRINT_SPACING)
        self._footprint_sq = float(np.sum(self._footprint**2))
        self._friction_decel = config.table_friction * _GRAVITY
        self._block.velocity_func = self._apply_table_friction
        self._time = 0.0
        self._iou_cache: tuple[np.ndarray, float] | None = None
        self._episode = 0
        self._seed = -1
        self._pusher_down = True

    # -- construction --------------------------------------------------------------------------------------
    def _add_walls(self) -> None:
        hx, hy = self._half + _WALL_RADIUS  # the walls' inner faces are the table edges
        corners = [(-hx, -hy), (hx, -hy), (hx, hy), (-hx, hy)]
        for a, b in zip(corners, corners[1:] + corners[:1]):
            wall = pymunk.Segment(self._space.static_body, a, b, _WALL_RADIUS)
            wall.friction = 0.5
            self._space.add(wall)

    def _add_block(self) -> pymunk.Body:
        body = pymunk.Body()
        total = sum(abs(polygon_area(p)) for p in self._parts)
        shapes = []
        for part in self._parts:
            shape = pymunk.Poly(body, [tuple(v) for v in part])
            shape.mass = self.config.block_mass * abs(polygon_area(part)) / total
            shape.friction = 1.0
            shapes.append(shape)
        self._space.add(body, *shapes)
        return body

    def _apply_table_friction(self, body: pymunk.Body, gravity: Any, damping: float, dt: float) -> None:
        """Coulomb friction of the block's footprint on the table, integrated over footprint elements.

        Each element slows by mu*g*dt along its own velocity (to rest, never past it); the block takes the
        summed impulse and angular impulse. So a push far from the centroid turns the block the way a real
        sliding part does, and a block that slows down stops exactly.
        """
        pymunk.Body.update_velocity(body, gravity, damping, dt)
        v = np.array(body.velocity)
        w = body.angular_velocity
        if w == 0.0 and not v.any():
            return
        c, s = math.cos(body.angle), math.sin(body.angle)
        perp = self._footprint @ np.array([[-s, c], [-c, -s]])  # z x r for each element, table frame
        vel = v + w * perp
        speed = np.sqrt(np.einsum("ij,ij->i", vel, vel))
        cut = np.minimum(speed, self._friction_decel * dt) / np.maximum(speed, 1e-12)
        dv = -vel * cut[:, None]
        body.velocity = tuple(v + dv.mean(axis=0))
        body.angular_velocity = w + float(np.einsum("ij,ij->", perp, dv)) / self._footprint_sq

    # -- episode -------------------------------------------------------------------------------------------
    def reset(self, seed: int, pusher_xy: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Start an episode: a random block pose from ``seed``; the pusher at ``pusher_xy`` or random.

        The block never starts overlapping the pusher or the walls, nor already covering the goal by more
        than ``_MAX_START_COVERAGE``. The same seed (and pusher position) gives the same start.
        """
        rng = np.random.default_rng(seed)
        cfg = self.config
        if pusher_xy is None:
            pusher_xy = rng.uniform(-self._half + cfg.pusher_radius, self._half - cfg.pusher_radius)
        pusher_xy = np.asarray(pusher_xy, dtype=np.float64)
        free = self._half - cfg.reset_margin
        for _ in range(_MAX_RESET_TRIES):
            pose = np.array([*rng.uniform(-free, free), rng.uniform(-math.pi, math.pi)])
            corners = transform_points(self._outline, pose)
            if np.any(np.abs(corners) > self._half):
                continue
            if point_polygon_distance(pusher_xy, corners) < cfg.pusher_radius + _START_CLEARANCE:
                continue
            if iou(self._parts, pose, self._goal) >= _MAX_START_COVERAGE:
                continue
            break
        else:
            raise RuntimeError(
                f"no valid random block pose found in {_MAX_RESET_TRIES} tries; the table "
                f"{list(cfg.table_size)} m is too small for the block and pusher"
            )
        self.set_pose(pose, pusher_xy)
        self._time = 0.0
        self._episode += 1
        self._seed = int(seed)
        return self.state()

    def set_pose(self, block_pose: np.ndarray, pusher_xy: np.ndarray) -> None:
        """Place the block and pusher (at rest) without stepping the physics."""
        self._block.position = (float(block_pose[0]), float(block_pose[1]))
        self._block.angle = float(block_pose[2])
        self._block.velocity = (0.0, 0.0)
        self._block.angular_velocity = 0.0
        self._pusher_body.position = (float(pusher_xy[0]), float(pusher_xy[1]))
        self._pusher_body.velocity = (0.0, 0.0)
        self._space.reindex_shapes_for_body(self._block)
        self._space.reindex_shapes_for_body(self._pusher_body)

    def set_pusher_down(self, down: bool) -> None:
        """Lower (True) or lift (False) the tip; a lifted tip passes over the block."""
        if down != self._pusher_down:
            self._pusher.sensor = not down  # sensors detect but never collide
            self._pusher_down = bool(down)

    def step(self, target_xy: np.ndarray, pusher_down: bool = True) -> dict[str, np.ndarray]:
        """Advance ``1 / physics_hz`` s with the pusher moving toward ``target_xy`` (table frame).

        ``pusher_down`` False lifts the tip: it still moves but passes over the block. A tip lowered onto the
        block rests on top of it (stays lifted) until it is lowered clear of the block.
        """
        target = np.asarray(target_xy, dtype=np.float64)
        if target.shape != (2,) or not np.all(np.isfinite(target)):
            raise ValueError(f"pusher target must be 2 finite numbers, got {target_xy!r}")
        delta = target - np.asarray(self._pusher_body.position)
        dist = float(np.hypot(*delta))
        max_step = self.config.max_pusher_speed * self.dt
        if dist > max_step:
            delta *= max_step / dist
        if pusher_down and not self._pusher_down and self._tip_over_block():
            pusher_down = False
        self.set_pusher_down(pusher_down)
        self._pusher_body.velocity = (float(delta[0] / self.dt), float(delta[1] / self.dt))
        self._space.step(self.dt)
        self._time += self.dt
        return self.state()

    def _tip_over_block(self) -> bool:
        outline = transform_points(self._outline, self.block_pose)
        return point_polygon_distance(np.asarray(self._pusher_body.position), outline) < self.config.pusher_radius

    def state(self) -> dict[str, np.ndarray]:
        """The current scene state as a ``SCENE_STATE_SPEC`` record (timestamp: sim time since reset)."""
        pose = self.block_pose
        if self._iou_cache is None or not np.array_equal(self._iou_cache[0], pose):
            # The block rests most of the time: the exact polygon clipping is redone only when it moved.
            self._iou_cache = (pose, iou(self._parts, pose, self._goal))
        coverage = self._iou_cache[1]
        return {
            "block_pose": pose,
            "pusher_xy": np.array(self._pusher_body.position, dtype=np.float64),
            "pusher_down": np.bool_(self._pusher_down),
            "coverage": np.float64(coverage),
            # block and goal are the same shape: intersection / area = 2 IoU / (1 + IoU)
            "goal_coverage": np.float64(2.0 * coverage / (1.0 + coverage)),
            "keypoints": transform_points(self._keypoints, pose),
            "success": np.bool_(coverage >= self.config.success_threshold),
            "episode": np.int64(self._episode),
            "seed": np.int64(self._seed),
            "timestamp": np.float64(self._time),
        }

    @property
    def block_pose(self) -> np.ndarray:
        """Block pose [x, y, theta] in the table frame, theta wrapped to [-pi, pi)."""
        x, y = self._block.position
        return np.array([x, y, wrap_angle(self._block.angle)], dtype=np.float64)

