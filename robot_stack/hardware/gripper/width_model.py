"""``WidthModel``: the simulated fingers behind both gripper twins (the URCap socket loopback and ``SimGripper``).

Speed-limited, as a position-controlled parallel gripper behaves: the fingers move toward the requested
width at the commanded speed (capped by the model's range) and stop there, or on an object when closing onto
one. The force is clamped to the model's range and kept for the registers; it does not change the motion.
Time advances only through ``advance(dt)``, so the model runs in real time (the loopback) or in simulated time
(lockstep) alike. Activation takes ``activation_time``; commands before it are refused by the callers, as the
real gripper's firmware does.
"""

from __future__ import annotations

from robot_stack.hardware.gripper.config import ModelSpec


class WidthModel:
    """Finger width, velocity, activation and object contact of one simulated gripper."""

    def __init__(self, spec: ModelSpec, object_width: float | None = None, activation_time: float = 0.5):
        self.spec = spec
        self.object_width = object_width
        self.activation_time = activation_time
        self.width = spec.stroke
        self.velocity = 0.0
        self.target = spec.stroke
        self.speed = spec.speed_range[0]
        self.force = spec.force_range[0]
        self.moving = False
        self.object_contact = False
        self.activated = False
        self.fault = 0  # the Robotiq fault code (0: none); set by fault injection in tests
        self.activation_fault = 0  # fault injection: activating raises this fault code instead
        self._activating_for: float | None = None

    def activate(self) -> None:
        """Start activation (completes after ``activation_time`` of ``advance``)."""
        if self.activation_fault:
            self.fault = self.activation_fault
            return
        if not self.activated and self._activating_for is None:
            self._activating_for = 0.0
            if self.activation_time == 0:
                self._finish_activation()

    def reset(self) -> None:
        """Back to the reset state (not activated), as the real gripper after ACT 0; clears faults."""
        self.activated = False
        self._activating_for = None
        self.moving = False
        self.velocity = 0.0
        self.fault = 0

    @property
    def activating(self) -> bool:
        return self._activating_for is not None

    def command(self, width: float, speed: float, force: float) -> None:
        """Go to ``width`` at ``speed``, gripping with ``force``; values are clamped to the model's ranges."""
        lo, hi = self.spec.speed_range
        self.target = min(max(width, 0.0), self.spec.stroke)
        self.speed = min(max(speed, lo), hi)
        self.force = min(max(force, self.spec.force_range[0]), self.spec.force_range[1])
        self.object_contact = False
        self.moving = True

    def stop(self) -> None:
        """Stop the fingers where they are."""
        self.moving = False
        self.velocity = 0.0

    def advance(self, dt: float) -> None:
        """Move the simulated fingers forward by ``dt`` seconds."""
        if dt <= 0:
            return
        if self._activating_for is not None:
            self._activating_for += dt
            if self._activating_for >= self.activation_time:
                self._finish_activation()
            return
        if not self.moving or self.fault:
            self.velocity = 0.0
            return
        start = self.width
        step = self.speed * dt
        width = self.target if abs(self.target - start) <= step else start + step * (1 if self.target > start else -1)
        closing_onto = self.object_width is not None and self.target < self.object_width <= start
        if closing_onto and width <= self.object_width:
            width = self.object_width
            self.object_contact = True
            self.moving = False
        elif width == self.target:
            self.moving = False
        self.width = width
        self.velocity = (width - start) / dt

    def _finish_activation(self) -> None:
        self._activating_for = None
        self.activated = True
        self.target = self.width
