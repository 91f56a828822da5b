"""Latency calibration of a running rig: ``robot-stack calibrate latency``.

What is measured, all on the runtime clock and against the arm's own measured TCP (the one reference every
rig has):

* **Arm command latency**: from handing a waypoint to the controller until the controller's own target
  starts moving (``target_tcp_pose`` in the state stream): the command queue hop plus the servo cycle, and on
  a real arm the RTDE hop. Small steps are commanded at random phases of the servo cycle, so the mean over
  them is not quantised by the cycle. This is what the executor's ``robot_latency`` stands for.
* **Arm tracking lag**: how much later the measured TCP follows a commanded constant-velocity motion. The
  arm sweeps a triangle wave along base x (timestamped waypoints, each scheduled ahead, so the plan itself
  is on time); on the straight parts a lagging arm is exactly ``lag * speed`` behind the plan, so the lag is
  the median of ``(plan - measured) / speed`` there (corners excluded). For servoL it is the servo's time
  constant (the twin models ``lookahead_time * 300 / gain``).
* **Camera latency** (per camera) during the same sweep: the time shift for which a linear function of the
  frames' leading principal-component scores best explains the measured TCP x at the frame timestamps
  minus the shift (least squares, R^2) is the frame timestamps' offset (timestamp minus the time the image
  shows: ~0 when a camera stamps its frames at capture, as the RealSense hardware clock and the twins do).
  The latency is receive time minus the time the image shows: the mean ``receive_timestamp - timestamp``
  plus that offset.
* **Policy inference latency** (with a checkpoint): requests through the same policy process and socket as
  ``eval``, with observations of the policy's shapes (denoising time does not depend on their values).

The result is written to ``calibration/<rig>/latency.yaml`` (``LatencyCalibration``); ``eval`` reads it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import yaml

from robot_stack.config import ConfigError, load_dataclass, read_yaml
from robot_stack.data.replay import move_to
from robot_stack.hardware.robot.controller import RobotClient
from robot_stack.resources import shipped_dir
from robot_stack.runtime import RecordStream, SharedMemoryRingBuffer, now, precise_wait

log = logging.getLogger(__name__)

LATENCY_FILE = "latency.yaml"  # in calibration/<rig>/, beside the cameras' calibration files

_WAYPOINT_PERIOD = 0.02  # s between the sweep's waypoints
_WAYPOINT_AHEAD = 0.1  # s each waypoint is scheduled before its time: the plan is never late
_CORNER_EXCLUDE = 0.35  # s after each corner of the triangle wave left out of the lag estimate
_MAX_SHIFT = 0.3  # s: camera offsets searched in [-_MAX_SHIFT, _MAX_SHIFT]
_MIN_FIT = 0.9  # R^2 below which a camera is taken not to see the motion
_STEP_SIZE = 0.005  # m per command-latency step
_MOVED = 1e-5  # m: the controller's target counts as moving


class CalibrationError(RuntimeError):
    """The rig could not be calibrated (the arm did not move, a camera did not see the motion, ...)."""


@dataclass(frozen=True)
class CameraLatency:
    """One camera: ``latency`` = receive time - the time the image shows; ``timestamp_offset`` = frame
    timestamp - the time the image shows; ``fit``: how well the images followed the arm (R^2, 0..1)."""

    latency: float
    timestamp_offset: float
    fit: float


@dataclass(frozen=True)
class InferenceLatency:
    """Request -> chunk received, over ``requests`` requests (s)."""

    median: float
    p95: float
    max: float
    requests: int


@dataclass(frozen=True)
class LatencyCalibration:
    """A rig's measured latencies (seconds); ``calibration/<rig>/latency.yaml``."""

    rig: str
    command_latency: float  # mean
    command_latency_max: float  # what the executor's on-time rule needs (its robot_latency)
    tracking_lag: float
    cameras: Mapping[str, CameraLatency] = field(default_factory=dict)
    inference: InferenceLatency | None = None
    source: str = ""

    def __post_init__(self) -> None:
        values = [self.command_latency, self.command_latency_max, self.tracking_lag]
        values += [c.latency for c in self.cameras.values()]
        if not all(math.isfinite(v) and 0 <= v < 10 for v in values):
            raise ConfigError(f"latencies must be finite, in [0, 10) s: got {values}")

    def summary(self) -> str:
        """Human-readable lines."""
        lines = [f"arm: command latency {self.command_latency * 1e3:.1f} ms (max {self.command_latency_max * 1e3:.1f} ms), "
                 f"tracking lag {self.tracking_lag * 1e3:.1f} ms"]
        lines += [f"camera {name}: latency {c.latency * 1e3:.1f} ms, timestamp offset {c.timestamp_offset * 1e3:+.1f} ms "
                  f"(R^2 {c.fit:.4f})" for name, c in self.cameras.items()]
        if self.inference is not None:
            i = self.inference
            lines.append(f"policy inference: median {i.median * 1e3:.1f} ms, p95 {i.p95 * 1e3:.1f} ms, "
                         f"max {i.max * 1e3:.1f} ms over {i.requests} requests")
        return "\n".join(lines)


def latency_path(rig: str, root: str | Path | None = None) -> Path:
    """``<root>/<rig>/latency.yaml`` (default root: the shipped ``calibration/``)."""
    return (shipped_dir("calibration") if root is None else Path(root)) / rig / LATENCY_FILE


def save_latency(calibration: LatencyCalibration, path: str | Path) -> None:
    """Write ``calibration`` as YAML (plain floats)."""
    data = asdict(calibration)
    data["cameras"] = {k: dict(v) for k, v in data["cameras"].items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def load_latency(path: str | Path) -> LatencyCalibration:
    """Read a latency calibration (``ConfigError`` naming the file and key on any problem)."""
    data, where = dict(read_yaml(path)), str(path)
    cameras = data.get("cameras") or {}
    if not isinstance(cameras, Mapping):
        raise ConfigError(f"{where}: cameras must map camera names to their latencies")
    # the config loader converts nested dataclasses, not mappings of them
    data["cameras"] = {str(k): load_dataclass(CameraLatency, v, f"{where}: cameras.{k}") for k, v in cameras.items()}
    return load_dataclass(LatencyCalibration, data, where)


def find_latency(rig: str, root: str | Path | None = None) -> LatencyCalibration | None:
    """The rig's latency calibration if it has one."""
    path = latency_path(rig, root)
    return load_latency(path) if path.is_file() else None


def triangle(t: np.ndarray, amplitude: float, period: float) -> np.ndarray:
    """A triangle wave starting at 0 and rising: +-``amplitude``, ``period`` s per cycle."""
    phase = np.mod(np.asarray(t, dtype=np.float64) / period + 0.25, 1.0)
    return amplitude * (1.0 - 4.0 * np.abs(phase - 0.5))


def tracking_lag(t_plan: float, amplitude: float, period: float, times: np.ndarray, measured: np.ndarray) -> float:
    """The lag (s) of ``measured`` (positions relative to the sweep's centre at ``times``) behind the triangle
    wave started at ``t_plan``: the median of ``(plan - measured) / velocity`` on the straight parts."""
    rel = times - t_plan
    plan = triangle(rel, amplitude, period)
    speed = 4.0 * amplitude / period
    since_corner = np.mod(rel + period / 4, period / 2)  # corners at period/4 + k period/2
    rising = np.mod(rel + period / 4, period) < period / 2
    steady = (since_corner > _CORNER_EXCLUDE) & (rel > period / 4) & (rel < rel.max() - 0.05)
    if steady.sum() < 10:
        raise CalibrationError("too few arm states on the straight parts of the sweep: lengthen it (--cycles)")
    velocity = np.where(rising, speed, -speed)
    return float(np.median((plan[steady] - measured[steady]) / velocity[steady]))


def image_features(images: np.ndarray, components: int = 8) -> np.ndarray:
    """(N, components): each frame's scores on the leading principal components of the sequence (grey, about
    160 px wide). A small motion changes the pixels nearly linearly in the displacement, so a linear
    combination of a few scores follows the arm's position; more than one, because a moving shape's pixels
    are not linear in it over a whole sweep."""
    gray = images.astype(np.float32).mean(axis=-1) if images.ndim == 4 else images.astype(np.float32)
    step = max(1, gray.shape[2] // 160)
    flat = gray[:, ::step, ::step].reshape(len(gray), -1)
    flat = flat - flat.mean(axis=0)
    u, sv, _ = np.linalg.svd(flat, full_matrices=False)
    if sv[0] <= 0:
        raise CalibrationError("the frames do not change: the camera does not see the arm move")
    k = min(components, len(sv))
    return u[:, :k] * sv[:k]


def timestamp_offset(frame_times: np.ndarray, features: np.ndarray, times: np.ndarray,
                     positions: np.ndarray) -> tuple[float, float]:
    """(offset, R^2): the shift ``d`` for which a least-squares linear function of the frames' ``features``
    best explains the measured ``positions`` at ``frame_times - d`` (0.5 ms grid over +-``_MAX_SHIFT``)."""
    keep = (frame_times - _MAX_SHIFT >= times[0]) & (frame_times + _MAX_SHIFT <= times[-1])
    if keep.sum() < 4 * features.shape[1]:
        raise CalibrationError("too few camera frames during the sweep: lengthen it (--cycles)")
    design = np.column_stack([features[keep], np.ones(int(keep.sum()))])
    shifts = np.arange(-_MAX_SHIFT, _MAX_SHIFT + 1e-9, 0.0005)
    r2 = np.empty(len(shifts))
    for i, d in enumerate(shifts):
        x = np.interp(frame_times[keep] - d, times, positions)
        coef, *_ = np.linalg.lstsq(design, x, rcond=None)
        r2[i] = 1.0 - float(np.sum((design @ coef - x) ** 2)) / max(float(np.sum((x - x.mean()) ** 2)), 1e-18)
    best = int(np.argmax(r2))
    return float(shifts[best]), float(r2[best])


def command_latency(robot: RobotClient, start: np.ndarray, steps: int = 20, seed: int = 0) -> np.ndarray:
    """Times (s) from ``schedule_waypoint`` until the controller's target moves, for ``steps`` small
    back-and-forth steps sent at random phases of the servo cycle (from rest at ``start``)."""
    rng = np.random.default_rng(seed)
    delays = []
    for i in range(steps):
        pose = start.copy()
        pose[0] += _STEP_SIZE if i % 2 == 0 else 0.0
        precise_wait(now() + 0.25 + float(rng.uniform(0.0, 0.02)))  # at rest again, at a random phase
        before = robot.get_state()["target_tcp_pose"].copy()
        stream = RecordStream(robot.state, now(), ("target_tcp_pose",))
        t_sent = now()
        robot.schedule_waypoint(pose, t_sent + 0.2)
        deadline = t_sent + 1.0
        while now() < deadline:
            states = stream.poll()
            moved = np.linalg.norm(states["target_tcp_pose"][:, :3] - before[:3], axis=1) > _MOVED \
                if len(states["timestamp"]) else np.zeros(0, bool)
            if moved.any():
                delays.append(float(states["timestamp"][int(np.argmax(moved))]) - t_sent)
                break
            precise_wait(now() + 0.001)
        else:
            raise CalibrationError("the controller's target did not move within 1 s of a command "
                                   "(is the arm in protective stop or the command rejected?)")
    precise_wait(now() + 0.25)
    return np.asarray(delays)


def sweep(robot: RobotClient, centre: np.ndarray, amplitude: float, period: float, cycles: int,
          streams: Mapping[str, RecordStream]) -> tuple[float, dict[str, np.ndarray], dict[str, dict]]:
    """Sweep the TCP along base x around ``centre`` (a triangle wave) while fetching ``streams`` (e.g. the
    cameras'); returns (the wave's start time, the arm states, each stream's records) of the sweep."""
    t0 = now() + 2 * _WAYPOINT_AHEAD
    duration = cycles * period
    states = RecordStream(robot.state, now(), ("actual_tcp_pose",))
    for stream in streams.values():
        stream.t = now()
    t = now()
    while t < t0 + duration + _WAYPOINT_AHEAD:
        t_k = t + _WAYPOINT_AHEAD
        pose = centre.copy()
        pose[0] += float(triangle(np.asarray(max(t_k - t0, 0.0)), amplitude, period))
        robot.schedule_waypoint(pose, t_k)
        states.fetch()
        for stream in streams.values():
            stream.fetch()
        precise_wait(t + _WAYPOINT_PERIOD)
        t = now()
    precise_wait(now() + 0.3)
    return t0, states.poll(), {name: stream.poll() for name, stream in streams.items()}


def calibrate_latency(robot: RobotClient, cameras: Mapping[str, SharedMemoryRingBuffer], centre: Sequence[float],
                      rig: str, amplitude: float = 0.03, period: float = 2.0, cycles: int = 3,
                      infer: Callable[[], float] | None = None, inference_requests: int = 30,
                      progress: Callable[[str], None] = print) -> LatencyCalibration:
    """Measure the latencies of a running rig (see the module docstring). The arm first moves slowly to
    ``centre`` (a pose where +-``amplitude`` along base x is free to move and, on a scene rig, above the
    table) and returns there. ``infer``: one policy request, returning its latency (s)."""
    centre = np.asarray(centre, dtype=np.float64)
    progress(f"moving to the calibration pose {np.round(centre, 3).tolist()}")
    move_to(robot, centre)
    progress("arm command latency: 20 small steps")
    cmd = command_latency(robot, centre)
    move_to(robot, centre)
    progress(f"sweeping +-{amplitude * 100:.0f} cm along x for {cycles * period:.0f} s")
    streams = {name: RecordStream(buf, now(), ("receive_timestamp", "color")) for name, buf in cameras.items()}
    t0, states, frames = sweep(robot, centre, amplitude, period, cycles, streams)
    times, x = states["timestamp"], states["actual_tcp_pose"][:, 0] - centre[0]
    if np.ptp(x) < amplitude:
        raise CalibrationError(f"the arm moved {np.ptp(x) * 100:.1f} cm of the {2 * amplitude * 100:.0f} cm sweep "
                               "(rejected commands or speed limits?)")
    lag = tracking_lag(t0, amplitude, period, times, x)
    results = {}
    for name, recorded in frames.items():
        if len(recorded["timestamp"]) < 20:
            raise CalibrationError(f"camera {name!r} delivered {len(recorded['timestamp'])} frames during the sweep")
        offset, fit = timestamp_offset(recorded["timestamp"], image_features(recorded["color"]), times, x)
        if fit < _MIN_FIT:
            raise CalibrationError(f"camera {name!r} does not see the arm's motion clearly (R^2 {fit:.2f}): "
                                   "point it at the arm, or leave it out with --camera")
        transport = float(np.mean(recorded["receive_timestamp"] - recorded["timestamp"]))
        results[name] = CameraLatency(transport + offset, offset, fit)
    inference = None
    if infer is not None:
        progress(f"policy inference: {inference_requests} requests")
        infer()  # warm-up, not counted
        samples = np.array([infer() for _ in range(inference_requests)])
        inference = InferenceLatency(float(np.median(samples)), float(np.percentile(samples, 95)),
                                     float(samples.max()), inference_requests)
    move_to(robot, centre)
    return LatencyCalibration(rig, float(cmd.mean()), float(cmd.max()), lag, results, inference, source=f"robot-stack calibrate latency, {cycles} "
                              f"sweeps of +-{amplitude} m at {4 * amplitude / period:.3f} m/s")
