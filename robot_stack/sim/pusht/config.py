"""``SceneConfig``: the Push-T task (block, goal, success threshold) and where its table sits in the robot frame.

The scene lives in the *table frame*: origin at the centre of the play area, z up, x/y rotated by
``table_yaw`` about the robot base z axis. Positions are meters, angles radians. The simulated pusher is the
end-effector tip: its table-frame xy is the robot TCP xy mapped through this frame, and it touches the table
(and can push the block) only while the TCP is lower than ``table_z + contact_height``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_stack.config import ConfigError


# Scene seeds at or above this are held out for evaluation: `robot-stack collect` starts at 0 and warns
# before reaching them, `robot-stack eval` starts here, so nobody evaluates on the scenes trained on.
HELD_OUT_SEED_START = 100_000
# Seeds for choosing among checkpoints during training (rollouts): neither demonstration nor evaluation seeds.
SELECTION_SEED_START = 90_000
# The original Push-T success threshold on the scene's goal_coverage (area(T and goal) / area(goal)).
SUCCESS_COVERAGE = 0.95

@dataclass(frozen=True)
class SceneConfig:
    """Push-T scene: geometry, physics, task definition and the table-to-robot-base mapping."""

    # Robot base frame xy of the table frame origin (the centre of the play area), meters.
    table_center: tuple[float, float] = (0.45, 0.0)
    # Rotation of the table frame about the base z axis, radians.
    table_yaw: float = 0.0
    # Play-area size along table x and y, meters; walls surround it.
    table_size: tuple[float, float] = (0.5, 0.5)
    # Base-frame z of the table surface, meters.
    table_z: float = 0.0
    # The tip pushes while TCP z <= table_z + contact_height (the block's height); above it passes over.
    contact_height: float = 0.03
    # Radius of the end-effector tip (the pusher disc), meters.
    pusher_radius: float = 0.015
    # T block: the bar's length and thickness, and the stem's length (the stem is as wide as the bar is thick).
    bar_length: float = 0.12
    bar_thickness: float = 0.03
    stem_length: float = 0.09
    block_mass: float = 0.1
    # Coulomb friction coefficients: block-table (sliding resistance) and pusher-block (contact).
    table_friction: float = 0.3
    pusher_friction: float = 0.5
    # Goal pose of the block [x, y, theta] in the table frame (theta: rotation of the block frame).
    goal_pose: tuple[float, float, float] = (0.0, 0.0, math.pi / 4)
    # Success when coverage (IoU of the block with the goal region) reaches this. Block and goal have equal
    # areas, so IoU 0.9 equals 94.7 % of the goal covered — the original Push-T's "> 95 % covered".
    success_threshold: float = 0.9
    # Episode time limit, seconds (collect/eval end an unsolved episode after it).
    time_limit: float = 60.0
    # Physics rate, Hz, and the fastest the simulated tip may move (it follows the TCP, which the arm's
    # controller already limits; this only bounds jumps, e.g. when the TCP is teleported).
    physics_hz: float = 100.0
    max_pusher_speed: float = 1.0
    # Random resets put the block centre at least this far inside the table edges, meters (poses that would
    # cross a wall are redrawn).
    reset_margin: float = 0.1
    # Key of the actual TCP pose [x, y, z, rx, ry, rz] in the robot controller's state ring buffer.
    robot_pose_key: str = "actual_tcp_pose"

    def __post_init__(self) -> None:
        for name in ("pusher_radius", "bar_length", "bar_thickness", "stem_length", "block_mass",
                     "contact_height", "physics_hz", "max_pusher_speed", "time_limit"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in ("table_friction", "pusher_friction", "reset_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be >= 0, got {value!r}")
        values = (*self.table_center, self.table_yaw, *self.table_size, self.table_z, *self.goal_pose)
        if not all(math.isfinite(v) for v in values):
            raise ConfigError("table_center, table_yaw, table_size, table_z and goal_pose must be finite numbers")
        if self.bar_thickness >= self.bar_length:
            raise ConfigError(
                f"bar_thickness ({self.bar_thickness}) must be smaller than bar_length ({self.bar_length}) "
                "for the block to be a T"
            )
        if not 0.0 < self.success_threshold <= 1.0:
            raise ConfigError(f"success_threshold is an IoU and must be in (0, 1], got {self.success_threshold}")
        extent = self.block_radius
        free = min(self.table_size) / 2 - self.reset_margin
        if min(self.table_size) <= 0 or free <= 0:
            raise ConfigError(
                f"table_size {list(self.table_size)} leaves no room for random block positions with "
                f"reset_margin {self.reset_margin}; enlarge the table or reduce reset_margin"
            )
        half = np.asarray(self.table_size) / 2
        if np.any(np.abs(self.goal_pose[:2]) + extent > half):
            raise ConfigError(
                f"goal_pose {list(self.goal_pose)} puts the block (reach {extent:.3f} m from its centre) "
                f"outside the {self.table_size[0]} x {self.table_size[1]} m table; move the goal inward"
            )

    # -- derived geometry --------------------------------------------------------------------------------
    @property
    def block_centroid_offset(self) -> float:
        """Distance from the bar/stem junction line down to the T's centroid (block frame origin), meters."""
        bar = self.bar_length * self.bar_thickness
        stem = self.bar_thickness * self.stem_length
        return (stem * self.stem_length / 2 - bar * self.bar_thickness / 2) / (bar + stem)

    @property
    def block_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """The T as two convex rectangles (bar, stem), each (4, 2) counter-clockwise, in the block frame.

        Block frame: origin at the centroid, the bar along x on the +y side, the stem pointing to -y.
        """
        half_l, t, s = self.bar_length / 2, self.bar_thickness, self.stem_length
        dy = self.block_centroid_offset  # shift so the centroid is the origin
        bar = np.array([[-half_l, 0.0], [half_l, 0.0], [half_l, t], [-half_l, t]]) + (0.0, dy)
        stem = np.array([[-t / 2, -s], [t / 2, -s], [t / 2, 0.0], [-t / 2, 0.0]]) + (0.0, dy)
        return bar, stem

    @property
    def block_outline(self) -> np.ndarray:
        """The T's outline, (8, 2) counter-clockwise, in the block frame."""
        bar, stem = self.block_parts
        return np.array([stem[0], stem[1], stem[2], bar[1], bar[2], bar[3], bar[0], stem[3]])

    @property
    def block_radius(self) -> float:
        """Distance from the block centroid to its farthest corner, meters."""
        return float(np.max(np.linalg.norm(self.block_outline, axis=1)))

    # -- frames --------------------------------------------------------------------------------------------
    def base_to_table(self, xy: np.ndarray) -> np.ndarray:
        """Map robot-base xy (..., 2) to table-frame xy."""
        c, s = math.cos(self.table_yaw), math.sin(self.table_yaw)
        return (np.asarray(xy, dtype=np.float64) - np.asarray(self.table_center)) @ np.array([[c, -s], [s, c]])

    def table_to_base(self, xy: np.ndarray) -> np.ndarray:
        """Map table-frame xy (..., 2) to robot-base xy."""
        c, s = math.cos(self.table_yaw), math.sin(self.table_yaw)
        return np.asarray(xy, dtype=np.float64) @ np.array([[c, s], [-s, c]]) + np.asarray(self.table_center)

    @property
    def push_z(self) -> float:
        """A base-frame TCP z for pushing: the tip halfway up the block."""
        return self.table_z + self.contact_height / 2

    def pusher_in_contact(self, tcp_z: float) -> bool:
        """Whether a TCP at base-frame height ``tcp_z`` is low enough to push the block."""
        return tcp_z <= self.table_z + self.contact_height
