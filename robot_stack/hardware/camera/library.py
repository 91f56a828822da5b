"""Loading the RealSense library on demand, with one clear line when it cannot load.

``pyrealsense2`` is a compiled extension that needs the system's ``libusb-1.0``; a machine without it
(a fresh server, a CI container) must still run every rig that has no RealSense camera. So nothing in the
stack imports it at package import time: the RealSense driver modules are loaded only when a rig names a
``driver: realsense`` camera (or ``robot-stack cameras`` runs), through ``load_realsense_driver``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from robot_stack.config import ConfigError


class RealSenseUnavailable(ConfigError):
    """``pyrealsense2`` (or the system library it needs) cannot be loaded on this machine."""


def load_realsense_driver(module: str = "realsense", needed_by: str = "a RealSense camera") -> ModuleType:
    """Import ``robot_stack.hardware.camera.<module>`` (which imports ``pyrealsense2``).

    Raises ``RealSenseUnavailable`` whose one-line message names what to install.
    """
    try:
        return importlib.import_module(f"robot_stack.hardware.camera.{module}")
    except ImportError as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "libusb" in text:
            fix = "install the system library libusb-1.0 (Debian/Ubuntu: apt-get install libusb-1.0-0)"
        elif "pyrealsense2" in text:
            fix = "install pyrealsense2 (pip install pyrealsense2)"
        else:
            fix = "check the pyrealsense2 installation (pip install --force-reinstall pyrealsense2)"
        raise RealSenseUnavailable(f"{needed_by} needs pyrealsense2, which cannot load ({text}): {fix}") from None
