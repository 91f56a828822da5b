"""A recorded dataset in the Rerun viewer (``rerun-sdk``): ``robot-stack view DATASET``.

Everything goes on one ``time`` timeline: the episodes one after the other (each starting where the previous
ended plus ``GAP`` seconds), their steps at their recorded times, each camera's frames at their own capture
times. Also a ``step`` timeline (the replay-buffer row). Per episode:

    cameras/<name>             the episode's mp4 (logged once as an ``AssetVideo``) and a frame reference per
                               video frame at its capture time, so the viewer decodes the video itself
    pose/<axis>/action         the recorded action, per axis, on the same plot as ...
    pose/<axis>/tcp            ... the measured TCP pose (``robot_eef_pose``)
    gripper/<key>              gripper state (``gripper_*`` arrays), when recorded
    scene/<key>                scalar scene state (``scene_*``: coverage, success, ...), when recorded
    episodes                   a text line at each episode's start (index, steps, scene seed)

``rerun-sdk`` is the optional ``viewer`` extra, imported on use.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from robot_stack.config import ConfigError
from robot_stack.data.dataset import EpisodeDataset

log = logging.getLogger(__name__)

GAP = 1.0  # seconds between one episode's end and the next one's start on the time timeline
AXES = ("x", "y", "z", "rx", "ry", "rz")


class ViewerError(ConfigError):
    """The dataset cannot be shown; the message names what to fix."""


def _rerun() -> Any:
    try:
        import rerun
    except ImportError:
        raise ViewerError("the dataset viewer needs Rerun: pip install 'robot_stack[viewer]'") from None
    return rerun


def view_dataset(dataset: str | Path, episodes: Sequence[int] | None = None, save: str | Path | None = None,
                 show_progress: bool = True) -> int:
    """Log ``episodes`` (default: all) of the dataset to Rerun: into the ``.rrd`` file ``save``, or to a
    newly spawned viewer. Returns how many episodes were logged."""
    rr = _rerun()
    root = Path(dataset)
    with EpisodeDataset.open(root, "r") as folder:  # ReplayBufferError (one line) if it is not a dataset
        n = folder.n_episodes
        chosen = list(range(n)) if episodes is None else list(episodes)
        bad = [e for e in chosen if not 0 <= e < n]
        if bad:
            raise ViewerError(f"--episode {bad[0]}: {root} has episodes 0..{n - 1}")
        if not chosen:
            raise ViewerError(f"{root} has no complete episodes to show")
        recording = rr.RecordingStream("robot_stack", recording_id=str(root.resolve()))
        if save is not None:
            recording.save(str(save))
        else:
            recording.spawn()
        cameras = [c.get("name", str(i)) for i, c in enumerate(folder.camera_setup() or [])]
        seeds = folder.episode_seeds()
        offset = 0.0
        for episode in tqdm(chosen, desc="logging episodes", unit="episode", disable=not show_progress):
            offset = _log_episode(rr, recording, folder, episode, cameras, seeds.get(episode), offset) + GAP
        recording.flush()
        if save is not None:
            recording.disconnect()
    return len(chosen)


def _log_episode(rr: Any, recording: Any, folder: EpisodeDataset, episode: int, cameras: list[str],
                 seed: int | None, offset: float) -> float:
    """Log one episode starting at ``offset`` on the time timeline; returns where it ends."""
    buffer = folder.replay_buffer
    data = buffer.get_episode(episode)
    first_row = int(buffer.get_episode_slice(episode).start)
    length = len(next(iter(data.values())))
    if "timestamp" in data:
        step_times = np.asarray(data["timestamp"], np.float64)
        t0 = float(step_times[0])
    else:  # no time base: the steps at the timing convention's dt
        step_times = np.arange(length) * folder.timing_convention().dt
        t0 = 0.0
    times = offset + step_times - t0
    index = [rr.TimeColumn("time", duration=times), rr.TimeColumn("step", sequence=first_row + np.arange(length))]

    recording.set_time("time", duration=float(times[0]))
    recording.set_time("step", sequence=first_row)
    where = f", scene seed {seed}" if seed is not None else ""
    recording.log("episodes", rr.TextLog(f"episode {episode}: {length} steps{where}"))

    def scalars(path: str, values: np.ndarray) -> None:
        recording.send_columns(path, indexes=index, columns=rr.Scalars.columns(scalars=values.astype(np.float64)))

    for key, prefix in (("action", "action"), ("robot_eef_pose", "tcp")):
        if key in data:
            values = np.asarray(data[key]).reshape(length, -1)
            for i in range(min(values.shape[1], len(AXES))):
                scalars(f"pose/{AXES[i]}/{prefix}", values[:, i])
            if key == "action" and values.shape[1] > len(AXES):  # a gripper width column
                scalars("gripper/action_width", values[:, len(AXES)])
    for key, values in data.items():
        values = np.asarray(values)
        if values.ndim == 1 and (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
            if key.startswith("scene_"):
                scalars(f"scene/{key[len('scene_'):]}", values)
            elif key.startswith("gripper_"):
                scalars(f"gripper/{key[len('gripper_'):]}", values)

    for cam, name in enumerate(cameras):
        path = folder.video_path(episode, cam)
        if not path.is_file():
            log.warning("%s: missing; camera %s of episode %d not shown", path, name, episode)
            continue
        entity = f"cameras/{name}"
        asset = rr.AssetVideo(path=path)
        recording.log(entity, asset, static=False)
        video_times = asset.read_frame_timestamps_nanos()
        ts_file = folder.timestamps_path(episode, cam)
        # frames at their capture times (robot_stack's recordings), else at the video's own times from the
        # episode's first step (the original's layout)
        capture = np.load(ts_file) - t0 if ts_file.is_file() else video_times / 1e9
        if len(capture) != len(video_times):
            log.warning("%s: %d timestamps for %d frames; frames placed at the video's own times", path,
                        len(capture), len(video_times))
            capture = video_times / 1e9
        recording.send_columns(entity, indexes=[rr.TimeColumn("time", duration=offset + capture)],
                               columns=rr.VideoFrameReference.columns_nanos(video_times))
    return float(times[-1])


def check_live_target(target: str) -> None:
    """``ViewerError`` (one line) unless ``target`` is one ``LiveRerun`` takes and Rerun is installed."""
    if not (target == "spawn" or target.endswith(".rrd") or target.startswith("rerun+http")):
        raise ViewerError(f"--rerun {target!r}: give spawn, a rerun+http://HOST:PORT/proxy address or a FILE.rrd")
    if target.endswith(".rrd") and not Path(target).resolve().parent.is_dir():
        raise ViewerError(f"--rerun {target}: its folder does not exist")
    _rerun()


class LiveRerun:
    """The running rig streamed to Rerun while ``collect`` or ``eval`` runs (``--rerun``): each camera's newest
    frame (JPEG, at most ``max_fps`` per camera) at its capture time, the measured and target TCP pose per axis,
    the scene's and gripper's scalar state, and the status lines, all on the runtime clock's ``time`` timeline.
    A ``StatusDisplay`` like the preview window (``update(status)``), polled by the same loop; it reads no keys.

    ``target``: ``"spawn"`` (a new viewer), a ``rerun+http://...`` address of a running viewer, or a file
    ``*.rrd`` for machines without a screen.
    """

    def __init__(self, target: str, cameras: dict[str, Any], robot_state: Any, scene_state: Any = None,
                 gripper_state: Any = None, max_fps: float = 10.0):
        check_live_target(target)
        rr = _rerun()
        self._rr = rr
        self.recording = rr.RecordingStream("robot_stack_live")
        if target == "spawn":
            self.recording.spawn()
        elif target.endswith(".rrd"):
            self.recording.save(target)
        else:
            self.recording.connect_grpc(target)
        self.target = target
        self.cameras, self.robot_state = cameras, robot_state
        self.scene_state, self.gripper_state = scene_state, gripper_state
        self.min_period = 1.0 / max_fps
        self._last_frame = {name: -np.inf for name in cameras}
        self._last_state = -np.inf
        self._last_status: list[str] = []
        self.frames_logged = 0

    def update(self, status: Sequence[str]) -> list[str]:
        rec, rr = self.recording, self._rr
        if self.robot_state.count:
            states = self.robot_state.get_since(self._last_state)
            if len(states["timestamp"]):  # the servo cycles since the last update, as columns: one call per axis
                index = [rr.TimeColumn("time", duration=states["timestamp"])]
                for prefix, key in (("tcp", "actual_tcp_pose"), ("target", "target_tcp_pose")):
                    for i, axis in enumerate(AXES):
                        rec.send_columns(f"pose/{axis}/{prefix}", indexes=index,
                                         columns=rr.Scalars.columns(scalars=states[key][:, i].astype(np.float64)))
                self._last_state = float(states["timestamp"][-1])
        for prefix, buffer in (("scene", self.scene_state), ("gripper", self.gripper_state)):
            if buffer is not None and buffer.count:
                state = buffer.get()
                rec.set_time("time", duration=float(state["timestamp"]))
                for key, value in state.items():
                    value = np.asarray(value)
                    if key != "timestamp" and value.ndim == 0 and (np.issubdtype(value.dtype, np.number)
                                                                   or value.dtype == np.bool_):
                        rec.log(f"{prefix}/{key}", rr.Scalars(float(value)))
        for name, frames in self.cameras.items():
            if not frames.count:
                continue
            frame = frames.get()
            t = float(frame["timestamp"])
            if t - self._last_frame[name] >= self.min_period:
                rec.set_time("time", duration=t)
                rec.log(f"cameras/{name}", rr.Image(frame["color"]).compress(jpeg_quality=80))
                self._last_frame[name] = t
                self.frames_logged += 1
        if list(status) != self._last_status:
            self._last_status = list(status)
            rec.log("status", rr.TextLog(" | ".join(status)))
        return []

    def close(self) -> None:
        """Flush; a file target is complete after this."""
        self.recording.flush()
        if self.target.endswith(".rrd"):
            self.recording.disconnect()


class Displays:
    """Several ``StatusDisplay``s as one (the preview window and ``LiveRerun``): all updated, keys pooled."""

    def __init__(self, displays: Sequence[Any]):
        self.displays = list(displays)

    def update(self, status: Sequence[str]) -> list[str]:
        return [key for display in self.displays for key in display.update(status)]


def stream_rig(target: str, running: Any) -> LiveRerun:
    """``LiveRerun`` of a started rig (``robot_stack.rig.Rig``): its cameras, arm, scene and gripper."""
    return LiveRerun(target, {c.config.name: c.frames for c in running.cameras}, running.robot.state,
                     running.scene.state if running.scene is not None else None,
                     running.gripper.state if running.gripper is not None else None)
