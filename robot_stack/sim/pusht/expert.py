"""``ExpertTeleop``: a scripted Push-T demonstrator that turns scene state into tip (TCP xy) targets.

How it decides, at every call (closed loop, so robot lag and block slip are corrected as they happen):

1. *Where to push.* Candidate pushes are points on the T's edges with a push direction (along the inward
   normal or tilted inside the contact's friction cone). A quasi-static pushing model (ellipsoidal limit
   surface of a block with uniform table friction, sticking or sliding contact) predicts each push's block
   motion; the best push is the one whose motion best reduces the pose error (position, and orientation scaled
   by the footprint's mean radius), with a cost for the travel needed to get there. Near-best candidates are
   drawn at random, so demonstrations differ in which side they push from: multimodal data.
2. *Getting there.* The tip backs off the block, then follows the shortest collision-free route around the
   block's (inflated) convex hull to a pre-contact point; when both ways round are similar, a random side.
3. *Pushing.* The tip is steered to press the chosen contact point along the push direction by the predicted
   useful distance, slower as the block nears the goal; it re-chooses when the push stops paying off.

The output is a moving target ("carrot") advanced at a bounded speed and never more than ``max_lead`` ahead
of the tip, like a teleoperator's hand: smooth commands at any call rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np

from robot_stack.config import ConfigError
from robot_stack.sim.pusht.config import SceneConfig
from robot_stack.sim.pusht.geometry import (
    footprint_points,
    nearest_boundary_point,
    point_polygon_distance,
    polygon_area,
    segment_clearance,
    transform_points,
    wrap_angle,
)

# Geometry of the candidate set (block frame), meters / radians.
_CONTACT_SPACING = 0.006
_CORNER_MARGIN = 0.004
_PUSH_TILTS = (-0.3, 0.0, 0.3)
_RING_SIDES_PER_CORNER = 3
# A push is worth keeping while it is predicted to move the tip at least this far (m).
_MIN_USEFUL_PUSH = 0.001
_ARRIVED = 0.004  # at a waypoint / pre-contact point when this close (m)
_SLIP = 0.012  # the tip lost its contact when this far from it (m)


def demo_finished(scene_state: Mapping[str, np.ndarray], finish_coverage: float | None = None) -> bool:
    """Whether a demonstration has reached its end state: the scene's success, or, with ``finish_coverage``,
    the goal covered at least that much (demos that finish tighter than the success threshold teach the
    policy the last fine pushes; episodes that stop right at the threshold leave it just short)."""
    if finish_coverage is None:
        return bool(scene_state["success"])
    return float(scene_state["goal_coverage"]) >= finish_coverage


def check_finish_coverage(value: float | None) -> None:
    """Raise ConfigError unless ``value`` is None or a goal coverage in (0, 1]."""
    if value is not None and not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ConfigError(f"finish coverage must be in (0, 1], got {value!r}")


@dataclass(frozen=True)
class ExpertConfig:
    """Behaviour of the scripted expert; speeds in m/s, distances in m."""

    travel_speed: float = 0.15  # moving around the block
    push_speed: float = 0.08  # pushing, far from the goal
    fine_push_speed: float = 0.012  # pushing, at the goal
    push_gain: float = 2.0  # push speed per meter of (weighted) pose error, 1/s
    max_lead: float = 0.03  # the target never leads the tip by more than this
    standoff: float = 0.008  # gap between tip and block before a push starts
    clearance: float = 0.012  # gap kept to the block while going around it
    choice_tolerance: float = 0.06  # candidates scoring within this of the best are drawn at random
    travel_weight: float = 0.15  # score cost per 0.1 m of travel to reach a new contact
    switch_margin: float = 0.15  # keep the current push unless another scores this much better
    control_dt: float = 0.1  # assumed time between calls until the state timestamps tell

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"expert.{name} must be a finite number >= 0, got {value!r}")
        for name in ("travel_speed", "push_speed", "fine_push_speed", "max_lead", "control_dt"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"expert.{name} must be > 0")
        if self.fine_push_speed > self.push_speed:
            raise ConfigError("expert.fine_push_speed must not exceed expert.push_speed")


class ExpertTeleop:
    """Scripted Push-T expert. ``next_target(scene_state, robot_state)`` -> robot-base TCP xy to command.

    ``scene_state`` is a scene-state record (``SCENE_STATE_SPEC`` fields; table frame). ``reset(seed)`` at each
    episode start makes its random choices reproducible. Keep the TCP at ``SceneConfig.push_z`` height.
    It stops pushing once ``demo_finished(state, finish_coverage)``.
    """

    def __init__(self, scene: SceneConfig, config: ExpertConfig | None = None, seed: int = 0,
                 finish_coverage: float | None = None):
        check_finish_coverage(finish_coverage)
        self.scene = scene
        self.config = config or ExpertConfig()
        self.finish_coverage = finish_coverage
        self._goal = np.asarray(scene.goal_pose, dtype=np.float64)
        self._half = np.asarray(scene.table_size, dtype=np.float64) / 2
        self._outline = scene.block_outline
        footprint = footprint_points(scene.block_parts, 0.005)
        # Limit-surface radius: max friction torque / max friction force for uniform pressure.
        self._ls_radius = float(np.linalg.norm(footprint, axis=1).mean())
        self._build_candidates()
        self._ring = self._build_ring()
        self.reset(seed)

    # -- public ----------------------------------------------------------------------------------------
    def reset(self, seed: int) -> None:
        """Forget the current plan and reseed the random choices (call at each episode start)."""
        self._rng = np.random.default_rng(seed)
        self._forget_plan()

    def _forget_plan(self) -> None:
        self._mode = "approach"
        self._contact: int | None = None
        self._side: int | None = None
        self._target: np.ndarray | None = None
        self._last_time: float | None = None
        self._episode: int | None = None

    def next_target(self, scene_state: Mapping[str, np.ndarray],
                    robot_state: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Robot-base xy the TCP should move to now; ``robot_state`` (if given) supplies the actual TCP xy."""
        tip = None
        if robot_state is not None:
            tip = self.scene.base_to_table(np.asarray(robot_state[self.scene.robot_pose_key])[:2])
        return self.scene.table_to_base(self.plan(scene_state, tip))

    def plan(self, state: Mapping[str, np.ndarray], tip: np.ndarray | None = None) -> np.ndarray:
        """Table-frame xy target for the tip, given the scene state (and optionally a fresher tip position)."""
        pose = np.asarray(state["block_pose"], dtype=np.float64)
        tip = np.asarray(state["pusher_xy"] if tip is None else tip, dtype=np.float64)
        if not (np.all(np.isfinite(pose)) and np.all(np.isfinite(tip))):
            raise ValueError(f"scene state has non-finite values: block_pose {pose}, tip {tip}")
        if self._episode is not None and int(state["episode"]) != self._episode:
            self._forget_plan()  # the scene was reset under us: plan afresh (the random stream continues)
        self._episode = int(state["episode"])
        now = float(state["timestamp"])
        # Carrot speed is per second of scene time; a repeated state (dt 0) leaves the target where it is.
        dt = self.config.control_dt if self._last_time is None else min(max(now - self._last_time, 0.0), 0.5)
        self._last_time = now
        if self._target is None:
            self._target = tip.copy()
        if demo_finished(state, self.finish_coverage):
            self._mode, self._contact = "done", None
            desired, speed = tip, 0.0
        else:
            desired, speed = self._decide(pose, tip)
        return self._advance(desired, speed, dt, tip)

    # -- precomputation (block frame) ----------------------------------------------------------------------
    def _build_candidates(self) -> None:
        r, mu = self.scene.pusher_radius, self.scene.pusher_friction
        outline = self._outline
        points, normals, dirs = [], [], []
        for a, b in zip(outline, np.roll(outline, -1, axis=0)):
            edge = b - a
            length = float(np.linalg.norm(edge))
            n = np.array([edge[1], -edge[0]]) / length  # outward for a counter-clockwise outline
            count = max(1, int((length - 2 * _CORNER_MARGIN) / _CONTACT_SPACING) + 1)
            for t in np.linspace(_CORNER_MARGIN, length - _CORNER_MARGIN, count) / length:
                c = a + t * edge
                # The tip must fit: touching here, it may not overlap the rest of the T.
                if point_polygon_distance(c + n * r, outline) < r - 1e-6:
                    continue
                standoff = self.config.standoff
                if point_polygon_distance(c + n * (r + standoff), outline) < r + standoff - 1e-6:
                    continue
                for tilt in _PUSH_TILTS:
                    if abs(tilt) >= math.atan(mu):
                        continue  # outside the friction cone the tip would only slide along the edge
                    cs, sn = math.cos(tilt), math.sin(tilt)
                    u = np.array([-n[0] * cs + n[1] * sn, -n[0] * sn - n[1] * cs])
                    points.append(c)
                    normals.append(n)
                    dirs.append(u)
        self._c = np.array(points)
        self._n = np.array(normals)
        self._u = np.array(dirs)
        motion = np.array([self._push_motion(c, n, u) for c, n, u in zip(self._c, self._n, self._u)])
        self._v = motion[:, :2]  # block-frame velocity of the centroid per meter of tip travel
        self._w = motion[:, 2]  # rotation per meter of tip travel

    def _push_motion(self, c: np.ndarray, n: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Block twist (vx, vy, w) per unit tip motion ``u`` at contact ``c`` (outward normal ``n``).

        Ellipsoidal limit surface: a contact force f gives twist (f, (c x f) / R^2), R the limit-surface radius.
        With a sticking contact the body point at c moves with the tip; if the force that needs falls outside
        the friction cone, the contact slides and the force lies on the cone's edge.
        """
        mu, r2 = self.scene.pusher_friction, self._ls_radius**2
        perp = np.array([-c[1], c[0]])
        a = np.eye(2) + np.outer(perp, perp) / r2  # contact-point velocity = a @ f
        inward, tangent = -n, np.array([n[1], -n[0]])
        f = np.linalg.solve(a, u)
        fn, ft = float(f @ inward), float(f @ tangent)
        if fn <= 0:
            return np.zeros(3)
        if abs(ft) > mu * fn:
            f = inward + mu * math.copysign(1.0, ft) * tangent
            f *= float(u @ inward) / float((a @ f) @ inward)  # the normal velocity matches the tip's
        return np.array([f[0], f[1], float(perp @ f) / r2])

    def _build_ring(self) -> np.ndarray:
        """Waypoints around the block's convex hull, inflated by tip radius + clearance, counter-clockwise."""
        hull = cv2.convexHull(self._outline.astype(np.float32), clockwise=False).reshape(-1, 2).astype(np.float64)
        if polygon_area(hull) < 0:
            hull = hull[::-1]
        offset = self.scene.pusher_radius + self.config.clearance
        ring = []
        for i, v in enumerate(hull):
            prev_edge = v - hull[i - 1]
            next_edge = hull[(i + 1) % len(hull)] - v
            a0 = math.atan2(-prev_edge[0], prev_edge[1])  # outward normal angles of the two edges
            a1 = math.atan2(-next_edge[0], next_edge[1])
            a1 = a0 + wrap_angle(a1 - a0) % (2 * math.pi)
            for ang in np.linspace(a0, a1, _RING_SIDES_PER_CORNER):
                # Chords between points at `offset` stay at least offset*cos(step/2) away from the corner.
                ring.append(v + offset / math.cos((a1 - a0) / (2 * (_RING_SIDES_PER_CORNER - 1)))
                            * np.array([math.cos(ang), math.sin(ang)]))
        return np.array(ring)

    # -- decisions ---------------------------------------------------------------------------------------
    def _decide(self, pose: np.ndarray, tip: np.ndarray) -> tuple[np.ndarray, float]:
        cfg, r = self.config, self.scene.pusher_radius
        error = np.array([*(self._goal[:2] - pose[:2]), self._ls_radius * wrap_angle(self._goal[2] - pose[2])])
        err_norm = float(np.linalg.norm(error))
        c, s = math.cos(pose[2]), math.sin(pose[2])
        rot = np.array([[c, -s], [s, c]])
        motion = np.concatenate([self._v @ rot.T, self._ls_radius * self._w[:, None]], axis=1)
        gain = motion @ error
        push = np.clip(gain / np.maximum(np.sum(motion**2, axis=1), 1e-12), 0.0, 0.1)
        residual = np.sum((error - push[:, None] * motion) ** 2, axis=1) / max(err_norm**2, 1e-12)
        touch = transform_points(self._c + self._n * r, pose)
        pre = transform_points(self._c + self._n * (r + cfg.standoff), pose)
        reachable = np.all(np.abs(pre) <= self._half - r, axis=1) & (push > _MIN_USEFUL_PUSH)
        if not reachable.any():
            return tip, 0.0  # nothing useful to do from here (the block is jammed in a corner)
        push_speed = float(np.clip(cfg.push_gain * err_norm, cfg.fine_push_speed, cfg.push_speed))
        k = self._contact
        if k is not None and self._mode == "push":
            slipped = float(np.linalg.norm(tip - touch[k])) > _SLIP
            best = float(residual[reachable].min())
            if reachable[k] and not slipped and residual[k] <= best + cfg.switch_margin:
                return touch[k] + transform_points(self._u[k], np.array([0.0, 0.0, pose[2]])) * push[k], push_speed
        # Choose a new push: predicted residual plus the cost of getting there; near-best drawn at random.
        travel = np.linalg.norm(pre - tip, axis=1)
        score = np.where(reachable, residual + cfg.travel_weight * travel / 0.1, np.inf)
        near_best = np.flatnonzero(score <= score.min() + cfg.choice_tolerance)
        k = int(self._rng.choice(near_best))
        if k != self._contact:
            self._side = None  # a new route: pick its side afresh
        self._contact = k
        if float(np.linalg.norm(tip - touch[k])) < _SLIP and float(np.linalg.norm(tip - pre[k])) < cfg.standoff + _SLIP:
            self._mode = "push"  # already there (sliding along the same face): keep pushing
            return touch[k] + transform_points(self._u[k], np.array([0.0, 0.0, pose[2]])) * push[k], push_speed
        self._mode = "approach"
        return self._approach(pose, tip, pre[k]), cfg.travel_speed

    def _approach(self, pose: np.ndarray, tip: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Next point on a collision-free route from the tip to the pre-contact point ``goal``."""
        cfg, r = self.config, self.scene.pusher_radius
        outline = transform_points(self._outline, pose)
        if float(np.linalg.norm(tip - goal)) < _ARRIVED:
            self._mode = "push"
            return goal
        gap = point_polygon_distance(tip, outline)
        if gap < r + cfg.clearance / 4:
            # Too close to move sideways without dragging the block: back off along the surface normal.
            away = tip - nearest_boundary_point(tip, outline)
            if gap <= 0 or not np.any(away):
                away = tip - pose[:2]
            return self._clamp(tip + away / max(float(np.linalg.norm(away)), 1e-9) * cfg.clearance)
        safe = r + min(cfg.clearance / 4, cfg.standoff / 2)
        if segment_clearance(tip, goal, outline)[0] >= safe:
            return goal
        route = self._route(outline, pose, tip, goal, safe)
        if route is None:
            return goal  # boxed in by the walls: go straight and let the push sort it out
        for point in route:
            if float(np.linalg.norm(point - tip)) > _ARRIVED * 2:
                return point
        return goal

    def _route(self, outline: np.ndarray, pose: np.ndarray, tip: np.ndarray, goal: np.ndarray,
               safe: float) -> list[np.ndarray] | None:
        """Shortest route tip -> ring -> goal, either way round the block; None if walls block both ways."""
        ring = transform_points(self._ring, pose)
        m = len(ring)
        on_table = np.all(np.abs(ring) <= self._half - self.scene.pusher_radius, axis=1)
        from_tip = (segment_clearance(np.repeat(tip[None], m, 0), ring, outline) >= safe) & on_table
        to_goal = (segment_clearance(ring, np.repeat(goal[None], m, 0), outline) >= safe) & on_table
        routes: dict[int, tuple[float, list[np.ndarray]]] = {}
        for direction in (1, -1):
            best: tuple[float, list[np.ndarray]] | None = None
            for i in np.flatnonzero(from_tip):
                length = float(np.linalg.norm(ring[i] - tip))
                path = [ring[i]]
                j = i
                for _ in range(m):
                    if to_goal[j]:
                        total = length + float(np.linalg.norm(goal - ring[j]))
                        if best is None or total < best[0]:
                            best = (total, path + [goal])
                        break
                    nxt = (j + direction) % m
                    if not on_table[nxt]:
                        break
                    length += float(np.linalg.norm(ring[nxt] - ring[j]))
                    path = path + [ring[nxt]]
                    j = nxt
            if best is not None:
                routes[direction] = best
        if not routes:
            return None
        if len(routes) == 2 and max(routes[1][0], routes[-1][0]) < 1.3 * min(routes[1][0], routes[-1][0]):
            if self._side is None:
                self._side = int(self._rng.choice((1, -1)))  # similar either way: vary the demos
            return routes[self._side][1]
        return min(routes.values(), key=lambda route: route[0])[1]

    # -- output ------------------------------------------------------------------------------------------
    def _advance(self, desired: np.ndarray, speed: float, dt: float, tip: np.ndarray) -> np.ndarray:
        """Move the carrot toward ``desired`` at ``speed``, keeping it within ``max_lead`` of the tip."""
        assert self._target is not None
        step = desired - self._target
        dist = float(np.linalg.norm(step))
        max_step = speed * dt
        if dist > max_step:
            step *= max_step / dist
        target = self._target + step
        lead = target - tip
        lead_norm = float(np.linalg.norm(lead))
        if lead_norm > self.config.max_lead:
            target = tip + lead * (self.config.max_lead / lead_norm)
        self._target = self._clamp(target)
        return self._target.copy()

    def _clamp(self, xy: np.ndarray) -> np.ndarray:
        limit = self._half - self.scene.pusher_radius
        return np.clip(xy, -limit, limit)

