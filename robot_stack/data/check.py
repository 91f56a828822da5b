"""``check_dataset``: what a dataset folder holds and every inconsistency in it, without changing anything.

Reported per episode: steps, duration, scene seed, and per camera the video's frame count (demuxed from
the container) against its ``.timestamps.npy``. Problems (the dataset would train on something wrong or
fail to load): a corrupt ``episode_ends``, a missing video or timestamps file, a frame count that does not
match its timestamps, timestamps that go backwards, a camera missing from an episode, step timestamps that
go backwards. Notes (harmless, repaired by the next write-mode open): rows or video folders left by an
interrupted episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from robot_stack.config import ConfigError
from robot_stack.data.dataset import VIDEO_DIR_NAME, EpisodeDataset


@dataclass
class DatasetReport:
    """The outcome of ``check_dataset``: ``lines`` to print, ``problems`` (empty when consistent)."""

    root: Path
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        out = [*self.lines]
        out += [f"note: {n}" for n in self.notes]
        out += [f"PROBLEM: {p}" for p in self.problems]
        out.append(f"{self.root}: " + ("consistent" if self.ok else f"{len(self.problems)} problem(s)"))
        return "\n".join(out)


def count_video_frames(path: Path) -> int:
    """Frames in a video file, counted by demuxing (no decoding). ``ConfigError`` if it cannot be read."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except (av.FFmpegError, IndexError) as exc:
        raise ConfigError(f"{path} is not a readable video ({exc})") from None


def check_dataset(root: str | Path) -> DatasetReport:
    """Inspect the dataset at ``root`` (read-only). ``ConfigError`` only if ``root`` holds no dataset at all."""
    root = Path(root)
    report = DatasetReport(root)
    if not root.is_dir():
        raise ConfigError(f"no dataset folder at {root}")
    try:
        dataset = EpisodeDataset.open(root, "r")
    except ConfigError as exc:
        if "corrupt" not in str(exc):
            raise
        report.problems.append(str(exc))
        return report
    with dataset:
        _check_open(dataset, report)
    return report


def _check_open(dataset: EpisodeDataset, report: DatasetReport) -> None:
    buffer = dataset.replay_buffer
    seeds = dataset.episode_seeds()
    cameras = _camera_ids(dataset)
    report.lines.append(f"{report.root}: {dataset.n_episodes} episode(s), {buffer.n_steps} step(s), "
                        f"{len(cameras)} camera(s), keys: {', '.join(buffer.keys())}")
    for index in range(dataset.n_episodes):
        data = buffer.get_episode(index, ["timestamp"] if "timestamp" in buffer.keys() else [])
        rows = buffer.get_episode_slice(index)
        steps = rows.stop - rows.start
        parts = [f"episode {index}: {steps} steps"]
        if "timestamp" in data:
            ts = data["timestamp"]
            parts.append(f"{ts[-1] - ts[0]:.1f} s")
            if np.any(np.diff(ts) <= 0):
                report.problems.append(f"episode {index}: step timestamps do not increase")
        if index in seeds:
            parts.append(f"seed {seeds[index]}")
        for camera in cameras:
            parts.append(_check_video(dataset, index, camera, report))
        report.lines.append(", ".join(parts))
    _note_leftovers(dataset, report)


def _camera_ids(dataset: EpisodeDataset) -> list[int]:
    """Camera ids over all episodes' video folders (each episode should have every one)."""
    ids: set[int] = set()
    for index in range(dataset.n_episodes):
        folder = dataset.episode_dir(index)
        if folder.is_dir():
            ids |= {int(p.stem) for p in folder.glob("*.mp4") if p.stem.isdigit()}
    return sorted(ids)


def _check_video(dataset: EpisodeDataset, index: int, camera: int, report: DatasetReport) -> str:
    video, stamps = dataset.video_path(index, camera), dataset.timestamps_path(index, camera)
    where = f"episode {index} camera {camera}"
    if not video.is_file():
        report.problems.append(f"{where}: {video} is missing")
        return f"camera {camera}: no video"
    try:
        frames = count_video_frames(video)
    except ConfigError as exc:
        report.problems.append(f"{where}: {exc}")
        return f"camera {camera}: unreadable video"
    if not stamps.is_file():
        report.problems.append(f"{where}: {stamps} is missing (frames cannot be matched to steps by time)")
        return f"camera {camera}: {frames} frames, no timestamps"
    times = np.load(stamps)
    if len(times) != frames:
        report.problems.append(f"{where}: the video has {frames} frames but {stamps.name} has {len(times)} timestamps")
    if np.any(np.diff(times) <= 0):
        report.problems.append(f"{where}: video timestamps do not increase")
    return f"camera {camera}: {frames} frames / {len(times)} timestamps"


def _note_leftovers(dataset: EpisodeDataset, report: DatasetReport) -> None:
    buffer = dataset.replay_buffer
    if buffer.stored_rows > buffer.n_steps:
        report.notes.append(f"{buffer.stored_rows - buffer.n_steps} row(s) after the last complete episode (an interrupted "
                            "episode; removed by the next write-mode open)")
    video_root = dataset.root / VIDEO_DIR_NAME
    if video_root.is_dir():
        stale = sorted(p.name for p in video_root.iterdir()
                       if p.name.startswith(".") or (p.name.isdigit() and int(p.name) >= dataset.n_episodes))
        if stale:
            report.notes.append(f"video folder(s) {', '.join(stale)} belong to no episode (removed by the next "
                                "write-mode open)")

