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
