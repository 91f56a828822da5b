"""Simulated Push-T: a T block pushed by the end-effector tip on a table, its renderer and a scripted expert.

- ``SceneConfig``: the ``scene:`` section of a sim rig YAML (task, physics, table placement in the base frame).
- ``PushTPhysics``: the deterministic 2-D physics (pure, no processes); state records follow
  ``SCENE_STATE_SPEC``.
- ``SceneProcess``: the physics as a runtime device whose tip follows the robot's actual TCP.
- ``SceneRenderer`` / ``render``: camera images of the scene (``"top"`` and ``"oblique"`` views).
- ``ExpertTeleop``: a scripted demonstrator, scene state -> TCP xy target.
"""

from robot_stack.sim.pusht.config import HELD_OUT_SEED_START, SceneConfig
from robot_stack.sim.pusht.expert import ExpertConfig, ExpertTeleop, demo_finished
from robot_stack.sim.pusht.physics import SCENE_STATE_SPEC, PushTPhysics
from robot_stack.sim.pusht.process import COMMAND_SPEC, SceneProcess
from robot_stack.sim.pusht.render import VIEWS, SceneRenderer, render

__all__ = [
    "HELD_OUT_SEED_START",
    "COMMAND_SPEC",
    "SCENE_STATE_SPEC",
    "VIEWS",
    "ExpertConfig",
    "ExpertTeleop",
    "PushTPhysics",
    "SceneConfig",
    "SceneProcess",
    "SceneRenderer",
    "demo_finished",
    "render",
]
