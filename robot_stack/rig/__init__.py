"""Rigs: one YAML under ``hardware_configs/`` describes a whole station (arm, cameras, teleop, optional
simulated scene); ``load_rig`` validates it, ``preflight`` checks its devices from the parent in seconds, and
``start_rig`` runs its device processes under a supervisor.
"""

from robot_stack.rig.config import RigConfig, load_rig
from robot_stack.rig.preflight import preflight
from robot_stack.rig.runtime import Rig, start_rig

__all__ = ["Rig", "RigConfig", "load_rig", "preflight", "start_rig"]
