"""``Dashboard``: replies of the UR dashboard server (port 29999, one text line per request and reply).

Covers what ur_rtde's ``DashboardClient`` and ``RTDEControlInterface`` ask: versions, serial number, remote
control, robot/safety mode, program state, stop, unlocking a protective stop, and powering on and releasing
the brakes after an emergency stop. Commands with no meaning for the simulated arm (loading .urp programs,
play/pause, power off) fail the way the real server reports a
failure, and unknown commands get its "could not understand" reply.
"""

from __future__ import annotations

from robot_stack.hardware.robot.rtde_loopback.controller import ROBOT_MODE_NAMES, LoopbackController

WELCOME = "Connected: Universal Robots Dashboard Server"


class Dashboard:
    """Maps one request line to its reply, acting on the loopback controller."""

    def __init__(self, controller: LoopbackController, serial_number: str = "20185500001", model: str = "UR5"):
        self.controller = controller
        self.serial_number = serial_number
        self.model = model

    def reply(self, line: str) -> tuple[str, bool]:
        """The reply to request ``line`` and whether the server closes the connection after it."""
        request = line.strip()
        cmd = request.lower()
        ctl = self.controller
        if cmd == "quit":
            return "Disconnected", True
        if cmd == "polyscopeversion":
            return f"URSoftware {ctl.version.text} (rtde loopback)", False
        if cmd == "get serial number":
            return self.serial_number, False
        if cmd == "get robot model":
            return self.model, False
        if cmd == "is in remote control":
            return "true", False
        if cmd == "robotmode":
            return f"Robotmode: {ROBOT_MODE_NAMES[ctl.robot_mode]}", False
        if cmd in ("safetymode", "safetystatus"):
            state = ("ROBOT_EMERGENCY_STOP" if ctl.emergency_stopped
                     else "PROTECTIVE_STOP" if ctl.is_protective_stopped() else "NORMAL")
            return f"{'Safetymode' if cmd == 'safetymode' else 'Safetystatus'}: {state}", False
        if cmd == "programstate":
            script = ctl.script
            if script.running:
                return f"PLAYING {script.program_name}", False
            return f"STOPPED {script.program_name or '<unnamed>'}", False
        if cmd == "running":
            return f"Program running: {'true' if ctl.program_running else 'false'}", False
        if cmd == "stop":
            ctl.stop_program("stop from the dashboard")
            return "Stopped", False
        if cmd in ("unlock protective stop", "restart safety"):
            ctl.unlock_protective_stop()
            return ("Protective stop releasing" if cmd.startswith("unlock") else "Restarting safety"), False
        if cmd == "power on":
            return ("Powering on" if ctl.power_on() else "Failed to execute: power on (emergency stop pressed)"), False
        if cmd == "brake release":
            return ("Brake releasing" if ctl.brake_release() else "Failed to execute: brake release (power on "
                    "first)"), False
        if cmd == "close popup":
            return "closing popup", False
        if cmd == "close safety popup":
            return "closing safety popup", False
        if cmd.startswith("popup "):
            return "showing popup", False
        if cmd.startswith("addtolog "):
            return "Added log message", False
        if cmd == "get loaded program":
            return "No program loaded", False
        if cmd.startswith("load "):
            return f"File not found: {request[5:].strip()}", False
        if cmd in ("play", "pause", "power off", "shutdown"):
            return f"Failed to execute: {cmd}", False
        return f"could not understand: '{request}'", False
