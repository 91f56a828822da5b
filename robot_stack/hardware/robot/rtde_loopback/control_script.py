"""``ControlScript``: robot-side emulation of ur_rtde's URScript control program (``rtde_control``).

ur_rtde's ``RTDEControlInterface`` uploads a URScript program through the script port and then drives it
through RTDE registers (offset 0, or 24 with ``FLAG_UPPER_RANGE_REGISTERS``):

* ``input_int_register_0`` holds the command id, ``input_int_register_1`` / ``input_double_register_0..`` its
  arguments; ``output_int_register_0`` is the program's state: 1 = ready for a command, 2 = done with it.
* Real-time commands (servoL, servoJ, speedL, ...) are executed every control cycle while present and the
  program stays ready; the client never waits for them.
* Any other command is executed once; when it has finished the program writes 2, and it becomes ready (1)
  again once the client clears the command register (command 0).

This class runs that loop once per control cycle against a ``LoopbackArm`` instead of interpreting URScript.
Emulated commands:

* motion: moveJ, moveJ_IK, moveL, moveL_FK (synchronous, or asynchronous with the script's progress
  register; streamed to the arm as servo setpoints along a trapezoidal-speed path: straight in joint space
  for moveJ, in tool space for moveL), stopL, stopJ (either also asynchronous), servoL, servoJ, servoStop,
  speedL, speedJ (the velocity is held, as the script's speed thread does, until speedStop or another
  motion), speedStop;
* queries, answered from the arm's kinematics: getForwardKinematics (current joints, or given joints and
  TCP), getInverseKinematics (near the current joints or a given ``qnear``; no solution is a runtime error,
  as URScript's ``get_inverse_kin`` raises), getInverseKinematicsHasSolution, isPoseWithinSafetyLimits
  (an IK solution inside the joint limits), isJointsWithinSafetyLimits, poseTrans, getTargetWaypoint,
  getActualToolFlangePose, getJacobian (at the current joints, as the script computes it), getTCPOffset,
  getStepTime, isSteady;
* settings: setPayload, setTcp (only to the arm's own TCP offset: the simulated arm's kinematics are fixed by
  its config), zeroFtSensor (the twin has no force sensor: nothing to zero), setWatchdog (action "stop"),
  kickWatchdog, triggerProtectiveStop, stopScript.

Any other command (force mode, jogging, freedrive, contact detection, ...) is treated like a
URScript runtime error: the program stops (ur_rtde then returns False and reports that the control script
is not running), the reason is logged with the command's name and ``failed_commands`` counts it (as it
counts commands with invalid arguments) — a command is never acknowledged without being executed.
A protective stop of the arm also ends the program, as on the robot; after the dashboard's
"unlock protective stop" the client re-uploads the script (``reuploadScript``).
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Callable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from robot_stack.hardware.robot.config import GAIN_RANGE, LOOKAHEAD_RANGE
from robot_stack.hardware.robot.kinematics import UR5Kinematics, matrix_to_rotvec, pose_to_matrix
from robot_stack.hardware.robot.rtde_loopback.arm import LoopbackArm
from robot_stack.hardware.robot.rtde_loopback.registers import Registers

log = logging.getLogger(__name__)

PROGRAM_NAME = "rtde_control"
STATE_READY = 1
STATE_DONE = 2

NO_CMD = 0
MOVEJ = 1
MOVEJ_IK = 2
MOVEL = 3
MOVEL_FK = 4
ZERO_FT_SENSOR = 8
SPEEDJ = 9
SPEEDL = 10
SERVOJ = 11
SPEED_STOP = 15
SERVO_STOP = 16
SET_PAYLOAD = 17
SERVOL = 24
GET_STEPTIME = 26
GET_TARGET_WAYPOINT = 28
SET_TCP = 29
GET_IK_NEAR = 30
PROTECTIVE_STOP = 31
STOPL = 33
STOPJ = 34
SET_WATCHDOG = 35
IS_POSE_SAFE = 36
IS_JOINTS_SAFE = 37
POSE_TRANS = 39
GET_TCP_OFFSET = 40
GET_FK = 43
GET_FK_OF = 44
GET_IK = 46
GET_FLANGE_POSE = 58
IK_HAS_SOLUTION = 60
IK_HAS_SOLUTION_NEAR = 61
GET_JACOBIAN = 70
# kickWatchdog(): ur_rtde sends it without waiting and its script has no case for it; writing the command
# register is what feeds the watchdog.
WATCHDOG = 99
IS_STEADY = 47
STOP_SCRIPT = 255

# Commands the script executes every cycle while present, answering "ready" (as listed in ur_rtde's script).
REALTIME_COMMANDS = frozenset({6, 9, 10, 11, 24, 25, 26, 27, 38, 58, 66, 67, 68, 69, 70, 71})

# ur_rtde's names of the command ids, for messages about commands the loopback does not emulate.
COMMAND_NAMES = {
    1: "moveJ", 2: "moveJ_IK", 3: "moveL", 4: "moveL_FK", 6: "forceMode", 7: "forceModeStop", 8: "zeroFtSensor",
    9: "speedJ", 10: "speedL", 11: "servoJ", 12: "servoC", 15: "speedStop", 16: "servoStop", 17: "setPayload",
    18: "teachMode", 19: "endTeachMode", 20: "forceModeSetDamping", 21: "forceModeSetGainScaling", 24: "servoL",
    25: "toolContact", 26: "getStepTime", 27: "getActualJointPositionsHistory", 28: "getTargetWaypoint",
    29: "setTcp", 30: "getInverseKinematics", 31: "triggerProtectiveStop", 33: "stopL", 34: "stopJ",
    35: "setWatchdog", 36: "isPoseWithinSafetyLimits", 37: "isJointsWithinSafetyLimits", 38: "getJointTorques",
    39: "poseTrans", 40: "getTCPOffset", 41: "jogStart", 42: "jogStop", 43: "getForwardKinematics",
    44: "getForwardKinematics", 45: "movePath", 46: "getInverseKinematics", 47: "isSteady",
    51: "moveUntilContact", 52: "freedriveMode", 53: "endFreedriveMode", 54: "getFreedriveStatus",
    62: "startContactDetection", 63: "stopContactDetection", 64: "readContactDetection",
    65: "setTargetPayload", 66: "directTorque", 99: "kickWatchdog", 255: "stopScript",
}

# moveL/moveJ are streamed as servo setpoints with tight tracking; done once the arm is this close and at rest.
_MOVE_LOOKAHEAD = 0.03
_MOVE_GAIN = 2000.0
_MOVE_POS_TOL = 2e-4  # m
_MOVE_ROT_TOL = 2e-3  # rad
_MOVE_JOINT_TOL = 2e-3  # rad
# speedL ramps the tool velocity itself; the joints then follow it as fast as their limits allow.
_SPEEDL_JOINT_ACCEL = 1e3
_MOVES = frozenset({MOVEJ, MOVEJ_IK, MOVEL, MOVEL_FK})
_QUERIES = frozenset({GET_FK, GET_FK_OF, GET_IK, GET_IK_NEAR, IK_HAS_SOLUTION, IK_HAS_SOLUTION_NEAR, IS_POSE_SAFE,
                      IS_JOINTS_SAFE, POSE_TRANS, GET_TARGET_WAYPOINT, GET_FLANGE_POSE, GET_JACOBIAN})
_MOVE_SETTLE_DECEL = 1.0  # m/s^2, servoStop at the end of a moveL
_MOVE_SETTLE_TIMEOUT = 2.0  # s after the profile ends
_OFFSET = re.compile(r"reg_offset_int\s*=\s*(?:#[^\n]*\n\s*)?(\d+)")


def command_name(cmd: int) -> str:
    """ur_rtde's name of command ``cmd``."""
    return f"{COMMAND_NAMES.get(cmd, 'unknown command')} (id {cmd})"


class _AsyncProgress:
    """Values of the script's asynchronous-progress register (``output_int_register_2``): operation id in
    bits 24-30, a write counter in bits 16-23, bit 15 set while an operation runs, its progress in bits 0-14.
    The script writes progress 0 when an asynchronous move or stop starts and -1 when it ends."""

    def __init__(self) -> None:
        self.writes = 0
        self.operation = 0

    def value(self, progress: int) -> int:
        self.writes = (self.writes + 1) % 128
        if progress == 0:
            self.operation = (self.operation + 1) % 128
        value = self.writes * 65536 + self.operation * 16777216
        if progress >= 0:
            value += min(progress, 32767) + 32768
        return value


class ControlScript:
    """The control program's state and its per-cycle command loop (see module docstring)."""

    def __init__(self, arm: LoopbackArm, registers: Registers, period: float, tcp_offset: Sequence[float]):
        self.arm = arm
        self.registers = registers
        self.period = period
        self.tcp_offset = np.asarray(tcp_offset, dtype=np.float64)
        self.running = False
        self.program_name = ""  # name of the last program started
        self.stop_reason = ""  # why the last program ended
        self.offset = 0
        self.payload_mass = 0.0
        self.payload_cog = (0.0, 0.0, 0.0)
        self.programs_started = 0
        self.failed_commands = 0
        self._executing = False
        self._pending: Callable[[], bool] | None = None  # non-real-time command in progress; True when done
        self._async_step: Callable[[], bool] | None = None  # asynchronous move/stop in progress; True when done
        self._progress = _AsyncProgress()
        self._speed: tuple[int, np.ndarray, float] | None = None  # (SPEEDJ | SPEEDL, target, acceleration)
        self._tool_velocity = np.zeros(6)  # speedL: the commanded tool velocity, ramped toward the target
        self._watchdog_timeout: float | None = None

    # -- program lifecycle ---------------------------------------------------------------------------------
    def load(self, source: str) -> bool:
        """Start the program in ``source`` (a URScript text); False (logged) if it cannot run here."""
        if f"def {PROGRAM_NAME}():" not in source:
            first = source.strip().splitlines()[0][:80] if source.strip() else "<empty>"
            log.warning(
                "rtde loopback: cannot run URScript program %r: only ur_rtde's %s script is emulated",
                first, PROGRAM_NAME,
            )
            return False
        if self.arm.is_protective_stopped():
            log.warning("rtde loopback: program %s not started: the arm is in protective stop", PROGRAM_NAME)
            return False
        if self.running:
            self.stop("replaced by a newly uploaded program")
        m = _OFFSET.search(source)
        self.offset = int(m.group(1)) if m else 0
        if self.offset not in (0, 24):
            log.warning("rtde loopback: register offset %d in %s is not 0 or 24; using 0", self.offset, PROGRAM_NAME)
            self.offset = 0
        self.arm.connect()
        self.running = True
        self.program_name = PROGRAM_NAME
        self.stop_reason = ""
        self.programs_started += 1
        self._executing = False
        self._pending = None
        self._async_step = None
        self._speed = None
        self._watchdog_timeout = None
        self._progress = _AsyncProgress()
        self._signal_async(-1)  # reset_async_progress(): no asynchronous operation running
        self._write_state(STATE_READY)
        log.info("rtde loopback: program %s started (register offset %d)", PROGRAM_NAME, self.offset)
        return True

    def stop(self, reason: str) -> None:
        """End the program (the arm decelerates to rest)."""
        if not self.running:
            return
        self.running = False
        self.stop_reason = reason
        self._pending = None
        self._async_step = None
        self._speed = None
        self._watchdog_timeout = None
        self.arm.stop_script()
        log.info("rtde loopback: program %s stopped: %s", self.program_name, reason)

    # -- one control cycle ---------------------------------------------------------------------------------
    def tick(self) -> None:
        """Run one cycle of the program's command loop (no-op while no program runs)."""
        if not self.running:
            return
        if self.arm.is_protective_stopped():
            self.stop("protective stop")
            return
        if self._watchdog_expired():
            return
        cmd = self.registers.input_int[self.offset]
        try:
            if cmd in REALTIME_COMMANDS:
                if self._execute(cmd):
                    self._write_state(STATE_READY)
            elif cmd == WATCHDOG:
                self._executing = False
                self._write_state(STATE_READY)
            elif cmd == NO_CMD:
                self._executing = False
                self._pending = None
                self._write_state(STATE_READY)
            elif not self._executing:
                self._executing = True
                self._execute(cmd)
            if self._pending is not None and self.running and self._pending():
                self._pending = None
                self._write_state(STATE_DONE)
            if self._async_step is not None and self.running and self._async_step():
                self._async_step = None
                self._signal_async(-1)
            if self._speed is not None and self.running and cmd not in (SPEEDJ, SPEEDL):
                self._apply_speed()  # the script's speed thread keeps the last velocity until speedStop
        except Exception as exc:  # noqa: BLE001 - the arm refused the arguments: a runtime error, not a crash
            log.debug("rtde loopback: %s raised", command_name(cmd), exc_info=True)
            self._runtime_error(cmd, f"the arm raised {exc!r}")

    def _watchdog_expired(self) -> bool:
        if self._watchdog_timeout is None:
            return False
        silent = time.monotonic() - self.registers.input_int_written_at[self.offset]
        if silent <= self._watchdog_timeout:
            return False
        self.stop(
            f"RTDE watchdog: input_int_register_{self.offset} not written for {silent:.3f} s "
            f"(limit {self._watchdog_timeout:.3f} s)"
        )
        return True

    def _write_state(self, state: int) -> None:
        self.registers.output_int[self.offset] = state

    def _signal_async(self, progress: int) -> None:
        self.registers.output_int[self.offset + 2] = self._progress.value(progress)

    def _out_double(self, values: Sequence[float]) -> None:
        self.registers.output_double[self.offset : self.offset + len(values)] = [float(v) for v in values]

    def _stop_async_move(self) -> None:
        """What the script's ``stop_async_move`` does: a running asynchronous operation is ended."""
        if self._async_step is not None:
            self._async_step = None
            self._signal_async(-1)

    def _in_double(self, first: int, n: int) -> np.ndarray:
        start = self.offset + first
        return np.asarray(self.registers.input_double[start : start + n], dtype=np.float64)

    def _in_int(self, index: int) -> int:
        return self.registers.input_int[self.offset + index]

    def _execute(self, cmd: int) -> bool:
        """Execute ``cmd``; a non-real-time command that takes time sets ``_pending``. False if the program ended."""
        if cmd in (SERVOL, SERVOJ):
            return self._servo(cmd)
        if cmd in (SPEEDJ, SPEEDL):
            return self._start_speed(cmd)
        if cmd in _MOVES:
            return self._move(cmd)
        if cmd in _QUERIES:
            return self._query(cmd)
        if cmd == GET_STEPTIME:
            self.registers.output_double[self.offset] = self.period
        elif cmd in (SERVO_STOP, STOPL, STOPJ, SPEED_STOP):
            decel = float(self._in_double(0, 1)[0])
            if not (math.isfinite(decel) and decel > 0):
                return self._runtime_error(cmd, f"deceleration must be positive, got {decel}")
            self._stop_async_move()
            joint_space = cmd == STOPJ or (cmd == SPEED_STOP and self._speed is not None and self._speed[0] == SPEEDJ)
            if cmd != SERVO_STOP:
                self._speed = None
            if joint_space:
                self.arm.stop_j(decel)
            elif cmd == SERVO_STOP:
                self.arm.servo_stop(decel)
            else:
                self.arm.stop_l(decel)
            if cmd in (STOPL, STOPJ) and self._in_int(1) == 1:  # asynchronous: done now, progress until at rest
                self._signal_async(0)
                self._async_step = self._at_rest
                self._pending = lambda: True
            else:
                self._pending = self._at_rest
        elif cmd == ZERO_FT_SENSOR:
            self._pending = lambda: True  # the twin has no force/torque sensor, so there is no offset to zero
        elif cmd == SET_PAYLOAD:
            mass, cx, cy, cz = self._in_double(0, 4)
            self.payload_mass = float(mass)
            if (cx, cy, cz) != (0.0, 0.0, 0.0):  # all zero keeps the current centre of gravity
                self.payload_cog = (float(cx), float(cy), float(cz))
            self._pending = lambda: True
        elif cmd == SET_TCP:
            tcp = self._in_double(0, 6)
            if not np.allclose(tcp, self.tcp_offset, rtol=0.0, atol=1e-9):
                return self._runtime_error(
                    cmd,
                    f"TCP {tcp.tolist()} differs from the simulated arm's tcp_offset {self.tcp_offset.tolist()} "
                    "(set tcp_offset in the arm's RobotConfig instead)",
                )
            self._pending = lambda: True
        elif cmd == GET_TCP_OFFSET:
            self.registers.output_double[self.offset : self.offset + 6] = self.tcp_offset.tolist()
            self._pending = lambda: True
        elif cmd == IS_STEADY:
            self.registers.output_int[self.offset + 1] = 1 if self._at_rest() else 0
            self._pending = lambda: True
        elif cmd == PROTECTIVE_STOP:
            self.arm.trigger_protective_stop("triggerProtectiveStop() from the RTDE client")
            self.stop("protective stop")
            return False
        elif cmd == SET_WATCHDOG:
            min_frequency = float(self._in_double(0, 1)[0])
            if not (math.isfinite(min_frequency) and min_frequency > 0):
                return self._runtime_error(cmd, f"watchdog frequency must be positive, got {min_frequency}")
            self._watchdog_timeout = 1.0 / min_frequency
            self._pending = lambda: True
        elif cmd == STOP_SCRIPT:
            self.stop("stopScript() from the RTDE client")
            return False
        else:
            return self._runtime_error(cmd, "not emulated by the RTDE loopback")
        return True

    def _at_rest(self) -> bool:
        return not np.any(self.arm.get_actual_qd())

    def _runtime_error(self, cmd: int, why: str) -> bool:
        """End the program like a URScript runtime error would (the client's command then returns False)."""
        self.failed_commands += 1
        log.error("rtde loopback: %s: %s; stopping the control program", command_name(cmd), why)
        self.stop(f"{command_name(cmd)}: {why}")
        return False

    # -- servo and speed ------------------------------------------------------------------------------------
    def _busy(self, cmd: int) -> bool:
        """A second motion while an asynchronous move or speed command controls the arm is a runtime error
        (on the robot: another thread is already controlling it)."""
        if self._async_step is not None or (self._speed is not None and self._speed[0] != cmd):
            what = "an asynchronous move or stop" if self._async_step is not None else command_name(self._speed[0])
            self._runtime_error(cmd, f"{what} is still controlling the arm (stop it first)")
            return True
        return False

    def _servo(self, cmd: int) -> bool:
        target = self._in_double(0, 6)
        speed, accel, dt, lookahead, gain = self._in_double(6, 5)
        if not (LOOKAHEAD_RANGE[0] <= lookahead <= LOOKAHEAD_RANGE[1] and GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]):
            return self._runtime_error(
                cmd, f"lookahead_time {lookahead} / gain {gain} outside {LOOKAHEAD_RANGE} / {GAIN_RANGE}"
            )
        if self._busy(cmd):
            return False
        servo = self.arm.servo_l if cmd == SERVOL else self.arm.servo_j
        if not servo(target, speed, accel, dt, lookahead, gain):
            self.stop(f"{COMMAND_NAMES[cmd]} to {np.round(target, 4).tolist()} refused by the arm")
            return False
        return True

    def _start_speed(self, cmd: int) -> bool:
        target = self._in_double(0, 6)
        accel = float(self._in_double(6, 1)[0])
        if not (np.all(np.isfinite(target)) and math.isfinite(accel) and accel > 0):
            return self._runtime_error(cmd, f"velocity {target.tolist()} / acceleration {accel} must be finite, "
                                            "the acceleration positive")
        if self._busy(cmd):  # the same speed command again just changes its target
            return False
        if self._speed is None:
            self._tool_velocity = self.arm.get_actual_tcp_speed()
        self._speed = (cmd, target, accel)
        return self._apply_speed()

    def _apply_speed(self) -> bool:
        cmd, target, accel = self._speed  # type: ignore[misc]
        if cmd == SPEEDJ:
            ok = self.arm.speed_j(target, accel)
        else:
            # speedl's acceleration applies to the tool: ramp the tool velocity (m/s^2 on the translation,
            # rad/s^2 on the rotation), then let the joints follow it through the Jacobian.
            delta = target - self._tool_velocity
            biggest = max(float(np.linalg.norm(delta[:3])), float(np.linalg.norm(delta[3:])))
            step = accel * self.period
            self._tool_velocity = target.copy() if biggest <= step else self._tool_velocity + delta * (step / biggest)
            jacobian = self.arm.kin.jacobian(self.arm.get_actual_q())
            qd = np.linalg.lstsq(jacobian, self._tool_velocity, rcond=None)[0]
            ok = self.arm.speed_j(qd, _SPEEDL_JOINT_ACCEL)
        if not ok:
            self.stop(f"{COMMAND_NAMES[cmd]} {np.round(target, 4).tolist()} refused by the arm")
        return ok

    # -- moveJ / moveL -------------------------------------------------------------------------------------
    def _move(self, cmd: int) -> bool:
        args = self._in_double(0, 6)
        speed, accel = (float(v) for v in self._in_double(6, 2))
        if not (np.all(np.isfinite(args)) and all(math.isfinite(v) and v > 0 for v in (speed, accel))):
            return self._runtime_error(cmd, f"target {args.tolist()}, speed {speed}, acceleration {accel}: must be "
                                            "finite, speed and acceleration positive")
        if self._speed is not None and self._busy(cmd):
            return False
        kin = self.arm.kin
        if cmd in (MOVEJ, MOVEL_FK) and not kin.within_limits(args):
            return self._runtime_error(cmd, f"joint target {np.round(args, 4).tolist()} is outside the joint limits")
        if cmd == MOVEJ_IK:
            q = kin.ik(args, self.arm.get_actual_q())
            if q is None:
                return self._runtime_error(cmd, f"no IK solution within the joint limits for {np.round(args, 4).tolist()}")
            args = q
        self._stop_async_move()
        if cmd in (MOVEJ, MOVEJ_IK):
            step = self._start_move_j(args, speed, accel)
        else:
            step = self._start_move_l(kin.fk(args) if cmd == MOVEL_FK else args, speed, accel)
        if self._in_int(1) == 1:  # asynchronous: the command is done at once, the move reports progress
            self._signal_async(0)
            self._async_step = step
            self._pending = lambda: True
        else:
            self._pending = step
        return True

    def _start_move_l(self, target: np.ndarray, speed: float, accel: float) -> Callable[[], bool]:
        """Begin a straight tool-space move; returns the per-cycle step that reports completion."""
        start = self.arm.get_actual_tcp_pose() if self._at_rest() else self.arm.get_target_tcp_pose()
        distance = float(np.linalg.norm(target[:3] - start[:3]))
        angle = float((Rotation.from_rotvec(start[3:]).inv() * Rotation.from_rotvec(target[3:])).magnitude())
        # Tool speed/acceleration apply to the position; a pure rotation uses them in rad/s, rad/s^2.
        length = distance if distance > 1e-6 else angle
        slerp = Slerp([0.0, 1.0], Rotation.from_rotvec(np.stack([start[3:], target[3:]])))

        def setpoint(fraction: float) -> bool:
            pose = np.concatenate([start[:3] + fraction * (target[:3] - start[:3]), slerp([fraction]).as_rotvec()[0]])
            return self.arm.servo_l(pose, speed, accel, self.period, _MOVE_LOOKAHEAD, _MOVE_GAIN)

        return self._stream("moveL", target, length, speed, accel, setpoint,
                            lambda: _reached(self.arm.get_actual_tcp_pose(), target))

    def _start_move_j(self, target: np.ndarray, speed: float, accel: float) -> Callable[[], bool]:
        """Begin a joint-space move (all joints start and stop together, the largest one at ``speed``)."""
        start = self.arm.get_actual_q() if self._at_rest() else self.arm.get_target_q()
        delta = target - start

        def setpoint(fraction: float) -> bool:
            return self.arm.servo_j(start + fraction * delta, speed, accel, self.period, _MOVE_LOOKAHEAD, _MOVE_GAIN)

        return self._stream("moveJ", target, float(np.max(np.abs(delta))), speed, accel, setpoint,
                            lambda: float(np.max(np.abs(self.arm.get_actual_q() - target))) <= _MOVE_JOINT_TOL)

    def _stream(self, name: str, target: np.ndarray, length: float, speed: float, accel: float,
                setpoint: Callable[[float], bool], reached: Callable[[], bool]) -> Callable[[], bool]:
        """The per-cycle step of a trapezoidal-speed move along ``setpoint(fraction)``: True once the arm has
        ``reached`` the target and come to rest (the program stops if it cannot get there)."""
        duration = _trapezoid_duration(length, max(speed, 1e-6), max(accel, 1e-6))
        elapsed = 0.0
        settling = False

        def step() -> bool:
            nonlocal elapsed, settling
            if settling:
                return self._at_rest()
            elapsed += self.period
            if elapsed > duration + _MOVE_SETTLE_TIMEOUT:
                self.stop(f"{name}: the arm did not reach {np.round(target, 4).tolist()} within {elapsed:.1f} s")
                return False
            fraction = _trapezoid_fraction(elapsed, duration, length, speed, accel)
            if not setpoint(fraction):
                self.stop(f"{name} setpoint at {fraction:.3f} of the way to {np.round(target, 4).tolist()} refused "
                          "by the arm")
                return False
            if fraction >= 1.0 and reached():
                self.arm.servo_stop(_MOVE_SETTLE_DECEL)
                settling = True
            return False

        return step

    # -- queries -------------------------------------------------------------------------------------------
    def _query(self, cmd: int) -> bool:
        """Kinematic queries, answered in the output registers like the script does."""
        kin = self.arm.kin
        args = self._in_double(0, 12)
        if cmd == GET_FK:
            self._out_double(kin.fk(self.arm.get_actual_q()))
        elif cmd == GET_FK_OF:  # given joints and TCP offset (all zero: the flange)
            self._out_double(UR5Kinematics(args[6:12]).fk(args[:6]))
        elif cmd == GET_FLANGE_POSE:
            self._out_double(UR5Kinematics().fk(self.arm.get_actual_q()))
        elif cmd == GET_JACOBIAN:
            # As the script writes it (ur_rtde reads it from controller 5.23 on): column by column, the first
            # four columns in registers 0-23, the last two in 36-47.
            if self.offset:
                return self._runtime_error(cmd, "the Jacobian needs the lower register range (offset 0)")
            flat = kin.jacobian(self.arm.get_actual_q()).T.reshape(-1)
            self.registers.output_double[0:24] = flat[:24].tolist()
            self.registers.output_double[36:48] = flat[24:].tolist()
        elif cmd == GET_TARGET_WAYPOINT:
            self._out_double(self.arm.get_target_tcp_pose())
        elif cmd == POSE_TRANS:
            self._out_double(_pose_of(pose_to_matrix(args[:6]) @ pose_to_matrix(args[6:12])))
        elif cmd == IS_JOINTS_SAFE:
            self.registers.output_int[self.offset + 1] = int(bool(np.all(np.isfinite(args[:6]))) and
                                                            kin.within_limits(args[:6]))
        else:  # IK: near the current joints (GET_IK, IK_HAS_SOLUTION, IS_POSE_SAFE) or a given qnear
            near = args[6:12] if cmd in (GET_IK_NEAR, IK_HAS_SOLUTION_NEAR) else self.arm.get_actual_q()
            q = kin.ik(args[:6], near) if np.all(np.isfinite(args[:6])) else None
            if cmd in (GET_IK, GET_IK_NEAR):
                if q is None:  # URScript's get_inverse_kin raises here
                    return self._runtime_error(cmd, f"no IK solution within the joint limits for "
                                                    f"{np.round(args[:6], 4).tolist()}")
                self._out_double(q)
            else:
                self.registers.output_int[self.offset + 1] = int(q is not None)
        if cmd not in REALTIME_COMMANDS:
            self._pending = lambda: True
        return True


def _trapezoid_duration(length: float, speed: float, accel: float) -> float:
    """Duration of a rest-to-rest move over ``length`` with speed and acceleration limits."""
    if length <= 0.0:
        return 0.0
    if length < speed * speed / accel:  # never reaches full speed: triangular profile
        return 2.0 * math.sqrt(length / accel)
    return length / speed + speed / accel


def _trapezoid_fraction(t: float, duration: float, length: float, speed: float, accel: float) -> float:
    """Fraction of the path covered at time ``t`` of a trapezoidal-speed move (1 once it is over)."""
    if t >= duration or length <= 0.0:
        return 1.0
    v_peak = min(speed, math.sqrt(length * accel))
    t_acc = v_peak / accel
    if t < t_acc:
        covered = 0.5 * accel * t * t
    elif t <= duration - t_acc:
        covered = 0.5 * accel * t_acc * t_acc + v_peak * (t - t_acc)
    else:
        remaining = duration - t
        covered = length - 0.5 * accel * remaining * remaining
    return min(max(covered / length, 0.0), 1.0)


def _reached(actual: np.ndarray, target: np.ndarray) -> bool:
    pos = float(np.linalg.norm(actual[:3] - target[:3]))
    rot = float((Rotation.from_rotvec(actual[3:]).inv() * Rotation.from_rotvec(target[3:])).magnitude())
    return pos <= _MOVE_POS_TOL and rot <= _MOVE_ROT_TOL


def _pose_of(matrix: np.ndarray) -> np.ndarray:
    return np.concatenate([matrix[:3, 3], matrix_to_rotvec(matrix[:3, :3])])
