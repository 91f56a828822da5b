"""LeRobotDataset (codebase v3.0) export and import of robot_stack datasets.

``export_lerobot(DATASET, OUT)`` writes LeRobot's layout::

    OUT/meta/info.json                                  schema (features, fps, path templates, counts)
    OUT/meta/stats.json                                 mean/std/min/max/count (+ quantiles) per feature
    OUT/meta/tasks.parquet                              task strings -> task_index
    OUT/meta/episodes/chunk-000/file-000.parquet        per episode: length, data/video file and offsets
    OUT/data/chunk-CCC/file-FFF.parquet                 one row per step, many episodes per file
    OUT/videos/<video key>/chunk-CCC/file-FFF.mp4       one frame per step, many episodes per file
    OUT/meta/robot_stack.json                           what LeRobot's schema cannot hold (LeRobot ignores it)

Feature names: ``robot_eef_pose`` -> ``observation.state``, ``action`` -> ``action``, camera ``i`` ->
``observation.images.<camera name>``, the step's runtime-clock ``timestamp`` (float64) ->
``observation.timestamp``, every other array ``<key>`` -> ``observation.<key>`` (arrays of more than one
dimension flattened). LeRobot's own ``timestamp`` is ``frame_index / fps`` (its videos are constant-rate
and decoded at those times); ``index``, ``episode_index``, ``frame_index`` and ``task_index`` are LeRobot's
standard bookkeeping. fps is ``1 / dt`` of the dataset's timing convention and must be an integer.

Each step's video frame is the one robot_stack's training reader uses for that step
(``robot_stack.data.step_frames``: matched by time), so the export holds one frame per step at fps.
Not written: the per-episode ``stats/...`` columns of ``meta/episodes`` (LeRobot's loader drops them;
``meta/stats.json`` holds the dataset's statistics).

``import_lerobot(SRC, OUT)`` reads a v3.0 LeRobot dataset into robot_stack's layout. When
``meta/robot_stack.json`` is there (an export of ours) every array comes back with its key, dtype and shape
and the dataset's attributes (camera setup, timing convention, scene seeds) are restored. Otherwise
(LeRobot's own datasets) ``observation.<name>`` becomes ``<name>`` (dots to underscores; the whole name
where that would collide), ``timestamp`` becomes the step time, each video feature a camera, the tasks are
kept in the ``lerobot`` attribute, and no timing convention is recorded (readers then assume the original
Diffusion Policy's and say so). The imported videos hold one frame per step; their timestamps files carry
the step times.

Both build the result in a hidden sibling folder and rename it into place, so an interrupted run never leaves
a half-written dataset under the requested name.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np
from tqdm import tqdm

from robot_stack.config import ConfigError
from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.step_frames import episode_step_frames, video_frames
from robot_stack.data.video_recorder import VideoWriter

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
SIDECAR = "meta/robot_stack.json"
_SIDECAR_FORMAT = 1
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's default)
DATA_FILE_MB = 100  # a data file is closed once it passes this size (LeRobot's default)
VIDEO_FILE_MB = 200  # likewise for a video file
_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
_EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
_TASKS_PATH = "meta/tasks.parquet"
# LeRobot's bookkeeping columns: structure, not data.
_BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
_STATE_KEY, _STATE_FEATURE = "robot_eef_pose", "observation.state"
_POSE_NAMES = ["x", "y", "z", "rx", "ry", "rz"]
_QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
# A video frame this close (in frame periods) to a step's time counts as that step's frame.
_FRAME_MATCH = 0.25


class LeRobotFormatError(ConfigError):
    """A dataset cannot be exported or imported; the message names the file or setting to fix."""


def _parquet() -> tuple[Any, Any, Any]:
    """pyarrow and pandas, imported on use: they are the optional ``lerobot`` extra."""
    try:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LeRobotFormatError("LeRobot export/import needs pyarrow and pandas: pip install "
                                 "'robot_stack[lerobot]'") from None
    return pa, pq, pd


# -- export -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportSummary:
    """What ``export_lerobot`` wrote."""

    path: Path
    episodes: int
    frames: int
    fps: int
    features: tuple[str, ...]


def export_lerobot(dataset: str | Path, out: str | Path, task: str | None = None, robot_type: str = "ur5",
                   show_progress: bool = True) -> ExportSummary:
    """Write the robot_stack dataset at ``dataset`` as a LeRobotDataset v3.0 at ``out`` (a new folder).

    ``task``: the natural-language task of every episode (default: the dataset folder's name)."""
    pa, pq, pd = _parquet()
    src, out = Path(dataset), Path(out)
    _check_new_folder(out)
    with EpisodeDataset.open(src, "r") as folder:  # ReplayBufferError (one line) if it is not a dataset
        buffer = folder.replay_buffer
        if buffer.n_episodes == 0:
            raise LeRobotFormatError(f"{src} has no complete episodes to export")
        timing = folder.timing_convention()
        fps = round(1.0 / timing.dt)
        if abs(fps * timing.dt - 1.0) > 1e-6:
            raise LeRobotFormatError(f"{src}: dt {timing.dt} s is not 1/integer, but LeRobot datasets need an "
                                     "integer fps; resample the dataset first")
        task = task if task is not None else src.resolve().name
        names = _feature_names(buffer.keys())
        cameras = _camera_keys(folder, buffer.n_episodes)
        tmp = _sibling(out, "export")
        try:
            episodes, frames, info = _write_export(tmp, folder, names, cameras, fps, task, robot_type,
                                                   show_progress, pa, pq, pd)
            sidecar = {
                "format": _SIDECAR_FORMAT,
                "source": str(src.resolve()),
                "arrays": {feature: {"key": key, "dtype": buffer[key].dtype.str, "shape": list(buffer[key].shape[1:])}
                           for key, feature in names.items()},
                "cameras": [feature for feature, _ in cameras],
                "attrs": _plain(dict(buffer.attrs)),
            }
            _write_json(tmp / SIDECAR, sidecar)
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info("exported %d episodes (%d frames, %d fps) of %s to %s", episodes, frames, fps, src, out)
    return ExportSummary(out, episodes, frames, fps, tuple(info["features"]))


def _feature_names(keys: list[str]) -> dict[str, str]:
    """robot_stack array key -> LeRobot feature name."""
    names = {}
    for key in keys:
        if key == _STATE_KEY:
            names[key] = _STATE_FEATURE
        elif key == "action":
            names[key] = "action"
        else:
            names[key] = f"observation.{key}"  # includes timestamp -> observation.timestamp (runtime clock)
    return names


def _camera_keys(folder: EpisodeDataset, n_episodes: int) -> list[tuple[str, int]]:
    """(LeRobot video key, camera index) per camera; cameras come from the recorded setup or the videos."""
    setup = folder.camera_setup()
    if setup is not None:
        count = len(setup)
        labels = [str(c.get("name", "")) for c in setup]
    else:  # the original's recordings do not describe their cameras: count the videos of episode 0
        count = len(list(folder.episode_dir(0).glob("*.mp4"))) if folder.episode_dir(0).is_dir() else 0
        labels = []
    if len(labels) != count or len(set(labels)) != count or not all(re.fullmatch(r"[A-Za-z0-9_\-]+", n) for n in labels):
        labels = [f"camera_{i}" for i in range(count)]
    for cam in range(count):
        missing = [e for e in range(n_episodes) if not folder.video_path(e, cam).is_file()]
        if missing:
            raise LeRobotFormatError(f"{folder.video_path(missing[0], cam)} is missing (camera {cam} of "
                                     f"{len(missing)} episode(s)); run `robot-stack dataset check {folder.root}`")
    return [(f"observation.images.{label}", cam) for cam, label in enumerate(labels)]


def _write_export(tmp: Path, folder: EpisodeDataset, names: dict[str, str], cameras: list[tuple[str, int]],
                  fps: int, task: str, robot_type: str, show_progress: bool, pa: Any, pq: Any, pd: Any
                  ) -> tuple[int, int, dict]:
    buffer = folder.replay_buffer
    n_episodes = buffer.n_episodes
    data_files = _RollingFiles(tmp, _DATA_PATH, DATA_FILE_MB)
    video_files = {feature: _RollingFiles(tmp, _VIDEO_PATH.replace("{video_key}", feature), VIDEO_FILE_MB)
                   for feature, _ in cameras}
    writers: dict[str, VideoWriter] = {}
    codecs: dict[str, str] = {}  # the codec each video feature was encoded with, as FFmpeg names it
    video_offsets = {feature: 0 for feature, _ in cameras}  # frames already in the current video file
    image_stats = {feature: _ImageStats() for feature, _ in cameras}
    episode_rows: list[dict] = []
    columns_all: dict[str, list[np.ndarray]] = {names[k]: [] for k in buffer.keys()}
    pq_writer = None
    index = 0
    try:
        for ep in tqdm(range(n_episodes), desc="exporting episodes", unit="episode", disable=not show_progress):
            data = buffer.get_episode(ep, copy=True)
            length = int(buffer.episode_lengths[ep])
            row: dict[str, Any] = {"episode_index": ep, "tasks": [task], "length": length}
            table = _episode_table(data, names, ep, index, length, fps, pa)
            for key in buffer.keys():
                columns_all[names[key]].append(np.asarray(data[key]).reshape(length, -1))
            path, chunk, file = data_files.current()
            if pq_writer is not None and data_files.full():
                pq_writer.close()
                pq_writer = None
                path, chunk, file = data_files.next()
            if pq_writer is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                pq_writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            pq_writer.write_table(table)
            data_files.note(path)
            row.update({"data/chunk_index": chunk, "data/file_index": file,
                        "dataset_from_index": index, "dataset_to_index": index + length})
            steps = np.asarray(data["timestamp"], np.float64) if "timestamp" in data else None
            for feature, cam in cameras:
                frames = episode_step_frames(folder.video_path(ep, cam), folder.timestamps_path(ep, cam), steps)
                files = video_files[feature]
                if feature in writers and files.full():
                    writers.pop(feature).close()
                    files.next()
                    video_offsets[feature] = 0
                vpath, vchunk, vfile = files.current()
                if feature not in writers:
                    h, w = frames.shape[1:3]
                    writers[feature] = VideoWriter(vpath, fps, (w, h), timestamps_file=False)
                    codecs[feature] = av.codec.Codec(writers[feature].codec, "w").canonical_name
                start = video_offsets[feature]
                for i, frame in enumerate(frames):
                    writers[feature].write(frame, (start + i) / fps)
                    image_stats[feature].add(frame)
                video_offsets[feature] = start + length
                files.note_partial(vpath)
                row.update({f"videos/{feature}/chunk_index": vchunk, f"videos/{feature}/file_index": vfile,
                            f"videos/{feature}/from_timestamp": start / fps,
                            f"videos/{feature}/to_timestamp": (start + length) / fps})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            episode_rows.append(row)
            index += length
        for writer in writers.values():
            writer.close()
        writers.clear()
    finally:
        if pq_writer is not None:
            pq_writer.close()
        for writer in writers.values():  # only after a failure: the finished ones were closed above
            writer.abort()

    features: dict[str, dict] = {}
    for feature, _ in cameras:
        h, w = image_stats[feature].shape
        features[feature] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                             "info": {"video.height": h, "video.width": w, "video.codec": codecs[feature],
                                      "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                                      "video.channels": 3, "has_audio": False}}
    for key in buffer.keys():
        feature = names[key]
        width = int(np.prod(buffer[key].shape[1:], dtype=np.int64)) if buffer[key].ndim > 1 else 1
        features[feature] = {"dtype": np.dtype(buffer[key].dtype).name, "shape": [width],
                             "names": _POSE_NAMES if feature == _STATE_FEATURE and width == 6 else None}
    for name in _BOOKKEEPING:
        features[name] = {"dtype": "float32" if name == "timestamp" else "int64", "shape": [1], "names": None}

    stats = {feature: _array_stats(np.concatenate(columns_all[feature])) for feature in columns_all}
    stats.update({feature: s.result() for feature, s in image_stats.items()})
    _write_json(tmp / "meta/stats.json", stats)
    pd.DataFrame({"task_index": [0]}, index=pd.Index([task], name="task")).to_parquet(tmp / _TASKS_PATH)
    episodes_table = pa.Table.from_pylist(episode_rows)
    (tmp / _EPISODES_PATH).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(episodes_table, tmp / _EPISODES_PATH)
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": n_episodes,
        "total_frames": index, "total_tasks": 1, "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": VIDEO_FILE_MB, "fps": fps, "splits": {"train": f"0:{n_episodes}"},
        "data_path": _DATA_PATH, "video_path": _VIDEO_PATH if cameras else None, "features": features,
    }
    _write_json(tmp / "meta/info.json", info)
    return n_episodes, index, info


def _episode_table(data: dict[str, np.ndarray], names: dict[str, str], episode: int, index: int, length: int,
                   fps: int, pa: Any) -> Any:
    """One episode's rows: every array (flattened to a fixed-size list, scalars as scalars) + bookkeeping."""
    columns, fields = [], []
    for key, arr in data.items():
        arr = np.asarray(arr)
        flat = arr.reshape(length, -1)
        if arr.ndim == 1:
            col = pa.array(flat[:, 0])
        else:
            col = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        columns.append(col)
        fields.append(names[key])
    frame = np.arange(length, dtype=np.int64)
    extra = {"timestamp": pa.array((frame / fps).astype(np.float32)), "frame_index": pa.array(frame),
             "episode_index": pa.array(np.full(length, episode, np.int64)),
             "index": pa.array(frame + index), "task_index": pa.array(np.zeros(length, np.int64))}
    for name, col in extra.items():
        columns.append(col)
        fields.append(name)
    return pa.Table.from_arrays(columns, names=fields)


class _RollingFiles:
    """Path of the current chunk-CCC/file-FFF file of one kind; moves on once the file passes ``limit_mb``."""

    def __init__(self, root: Path, template: str, limit_mb: int):
        self.root, self.template, self.limit = root, template, limit_mb * 1024 * 1024
        self.chunk = self.file = 0
        self._written: Path | None = None

    def current(self) -> tuple[Path, int, int]:
        return self.root / self.template.format(chunk_index=self.chunk, file_index=self.file), self.chunk, self.file

    def next(self) -> tuple[Path, int, int]:
        self.file += 1
        if self.file >= CHUNKS_SIZE:
            self.chunk, self.file = self.chunk + 1, 0
        self._written = None
        return self.current()

    def note(self, path: Path) -> None:
        self._written = path

    def note_partial(self, path: Path) -> None:
        # A video being written lives under VideoWriter's partial name until it is closed.
        self._written = path.with_name(path.name + ".partial")

    def full(self) -> bool:
        return self._written is not None and self._written.is_file() and self._written.stat().st_size >= self.limit


class _ImageStats:
    """Per-channel statistics of frames in [0, 1], shaped (3, 1, 1) as LeRobot's are. Kept as a histogram of
    the 256 levels per channel: exact, and far cheaper than float sums over every pixel."""

    def __init__(self) -> None:
        self.hist = np.zeros((3, 256), np.int64)
        self.frames = 0
        self.shape = (0, 0)

    def add(self, frame: np.ndarray) -> None:
        for c in range(3):
            self.hist[c] += np.bincount(frame[..., c].ravel(), minlength=256)
        self.frames += 1
        self.shape = frame.shape[:2]

    def result(self) -> dict[str, Any]:
        levels = np.arange(256) / 255.0
        n = self.hist.sum(1)
        mean = (self.hist * levels).sum(1) / n
        std = np.sqrt(np.maximum((self.hist * levels ** 2).sum(1) / n - mean ** 2, 0.0))
        present = self.hist > 0
        low = levels[present.argmax(1)]
        high = levels[255 - present[:, ::-1].argmax(1)]

        def col(v: np.ndarray) -> list:
            return np.asarray(v, np.float64).reshape(3, 1, 1).tolist()

        return {"mean": col(mean), "std": col(std), "min": col(low), "max": col(high), "count": [self.frames]}


def _array_stats(values: np.ndarray) -> dict[str, Any]:
    v = values.astype(np.float64)
    stats = {"mean": v.mean(0), "std": v.std(0), "min": v.min(0), "max": v.max(0), "count": np.array([len(v)])}
    for q in _QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(v, q, axis=0)
    return {k: np.asarray(s).tolist() for k, s in stats.items()}


# -- import -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportSummary:
    """What ``import_lerobot`` wrote."""

    path: Path
    episodes: int
    steps: int
    keys: tuple[str, ...]
    cameras: tuple[str, ...]
    from_robot_stack: bool  # the source carried meta/robot_stack.json (an export of ours)


def import_lerobot(source: str | Path, out: str | Path, show_progress: bool = True) -> ImportSummary:
    """Read the LeRobotDataset v3.0 at ``source`` into a new robot_stack dataset at ``out``."""
    pa, pq, _ = _parquet()
    src, out = Path(source), Path(out)
    _check_new_folder(out)
    info = _read_info(src)
    fps = info["fps"]
    features: dict[str, dict] = info["features"]
    sidecar = _read_json(src / SIDECAR) if (src / SIDECAR).is_file() else None
    video_keys = [k for k, f in features.items() if f.get("dtype") == "video"]
    others = [k for k, f in features.items() if f.get("dtype") == "image"]
    if others:
        raise LeRobotFormatError(f"{src}: features {others} store images in parquet (dtype 'image'); only video "
                                 "features are supported: re-encode them as videos with LeRobot first")
    if sidecar is not None:
        try:
            arrays = {feature: (str(spec["key"]), np.dtype(spec["dtype"]), tuple(int(n) for n in spec["shape"]))
                      for feature, spec in sidecar["arrays"].items()}
            video_keys = [str(k) for k in sidecar["cameras"]]
            attrs = dict(sidecar["attrs"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LeRobotFormatError(f"{src / SIDECAR} is damaged ({type(exc).__name__}: {exc}); delete it to "
                                     "import the dataset as a plain LeRobot dataset") from None
    else:
        arrays = _foreign_arrays(src, features)
    missing = [f for f in list(arrays) + video_keys if f not in features]
    if missing:
        raise LeRobotFormatError(f"{src}/meta/info.json lacks features {missing} named in {SIDECAR}")
    episodes = _read_episodes(src, pq)
    table = _read_data(src, pq, pa, [f for f in arrays] + ["index", "episode_index", "timestamp"])
    index = np.asarray(table.column("index").to_numpy(), np.int64)
    order = np.argsort(index, kind="stable")
    if not np.array_equal(index[order], np.arange(len(index))):
        raise LeRobotFormatError(f"{src}/data: the frames' `index` column is not 0..{len(index) - 1}")
    # Every column once, in `index` order: an episode is then rows dataset_from_index:dataset_to_index.
    columns = {feature: _column(table, feature, dtype, shape, pa)[order]
               for feature, (_, dtype, shape) in arrays.items()}
    episode_of_row = np.asarray(table.column("episode_index").to_numpy(), np.int64)[order]
    lerobot_times = np.asarray(table.column("timestamp").to_numpy(), np.float64)[order]
    tmp = _sibling(out, "import")
    try:
        with EpisodeDataset.open(tmp, "a") as dataset:
            if sidecar is not None:
                for name, value in attrs.items():
                    dataset.replay_buffer.attrs[name] = value
            else:
                dataset.record_setup([_foreign_camera(k, features[k], fps) for k in video_keys], None)
                dataset.replay_buffer.attrs["lerobot"] = {
                    "source": str(src.resolve()), "fps": fps, "robot_type": info.get("robot_type"),
                    "cameras": video_keys, "keys": {f: spec[0] for f, spec in arrays.items()},
                    "tasks": {str(e["episode_index"]): list(e.get("tasks") or []) for e in episodes}}
            # An export of ours carries the runtime-clock step times; otherwise LeRobot's timestamp is the step time.
            own_times = sidecar is not None and any(spec[0] == "timestamp" for spec in arrays.values())
            frame_sources = {k: _EpisodeFrames(src, info, k) for k in video_keys}
            steps = 0
            for ep in tqdm(episodes, desc="importing episodes", unit="episode", disable=not show_progress):
                lo, hi = int(ep["dataset_from_index"]), int(ep["dataset_to_index"])
                if hi - lo != int(ep["length"]) or not np.all(episode_of_row[lo:hi] == ep["episode_index"]):
                    raise LeRobotFormatError(f"{src}: episode {ep['episode_index']}'s rows {lo}:{hi} do not match "
                                             "its length or episode_index")
                data = {key: columns[feature][lo:hi] for feature, (key, _, _) in arrays.items()}
                step_times = data["timestamp"].astype(np.float64) if own_times else lerobot_times[lo:hi]
                staging = dataset.new_staging_dir()
                for cam, key in enumerate(video_keys):
                    frames = frame_sources[key].episode(ep, hi - lo)
                    h, w = frames[0].shape[:2]
                    with VideoWriter(staging / f"{cam}.mp4", fps, (w, h)) as writer:
                        for frame, t in zip(frames, step_times):
                            writer.write(frame, float(t))
                if sidecar is None:  # LeRobot's timestamp becomes the step time the readers align by
                    data["timestamp"] = step_times
                dataset.commit_episode(data, staging if video_keys else None)
                steps += hi - lo
            keys = tuple(dataset.replay_buffer.keys())
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("imported %d episodes (%d steps) of %s into %s", len(episodes), steps, src, out)
    return ImportSummary(out, len(episodes), steps, keys, tuple(video_keys), sidecar is not None)


def _read_info(src: Path) -> dict:
    path = src / "meta/info.json"
    if not path.is_file():
        raise LeRobotFormatError(f"{src} is not a LeRobot dataset: no meta/info.json")
    info = _read_json(path)
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise LeRobotFormatError(f"{src} is a LeRobot {version or 'unversioned'} dataset; only v3.x is read: "
                                 "convert it with LeRobot's lerobot.datasets.v30.convert_dataset_v21_to_v30 first")
    fps = info.get("fps")
    if not isinstance(fps, int) or fps <= 0 or not isinstance(info.get("features"), dict):
        raise LeRobotFormatError(f"{path}: needs a positive integer fps and a features table")
    return info


def _foreign_arrays(src: Path, features: dict[str, dict]) -> dict[str, tuple[str, np.dtype, tuple]]:
    """LeRobot feature -> (robot_stack key, dtype, per-step shape) for a dataset that is not an export of ours."""
    arrays: dict[str, tuple[str, np.dtype, tuple]] = {}
    skipped = []
    for name, spec in features.items():
        if spec.get("dtype") in ("video", "image") or name in _BOOKKEEPING:
            continue
        try:
            dtype = np.dtype(spec["dtype"])
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "biuf":
            skipped.append(name)
            continue
        shape = tuple(spec.get("shape") or (1,))
        key = name.removeprefix("observation.").replace(".", "_")
        if key == "timestamp" or key in {k for k, _, _ in arrays.values()}:
            key = name.replace(".", "_")  # LeRobot's timestamp is the step time; never two arrays on one key
        arrays[name] = (key, dtype, () if shape == (1,) else shape)
    if skipped:
        log.warning("%s: features %s are not numeric arrays and are not imported", src, skipped)
    return arrays


def _foreign_camera(key: str, spec: dict, fps: int) -> dict:
    shape = spec.get("shape") or [0, 0, 3]
    names = spec.get("names") or ["height", "width", "channels"]
    h, w = (shape[0], shape[1]) if list(names)[:2] != ["width", "height"] else (shape[1], shape[0])
    return {"name": key.removeprefix("observation.images."), "driver": "lerobot", "resolution": [w, h],
            "crop": None, "image_size": [w, h], "fps": fps}


def _parquet_files(src: Path, folder: str) -> list[Path]:
    files = sorted((src / folder).glob("chunk-*/file-*.parquet"))
    if not files:
        raise LeRobotFormatError(f"{src} has no {folder}/chunk-*/file-*.parquet")
    return files


def _read_episodes(src: Path, pq: Any) -> list[dict]:
    rows = []
    for f in _parquet_files(src, "meta/episodes"):
        table = pq.read_table(f)
        keep = [c for c in table.column_names if not c.startswith("stats/")]
        rows.extend(table.select(keep).to_pylist())
    rows.sort(key=lambda r: r["episode_index"])
    if [r["episode_index"] for r in rows] != list(range(len(rows))):
        raise LeRobotFormatError(f"{src}/meta/episodes: episode indices are not 0..{len(rows) - 1}")
    return rows


def _read_data(src: Path, pq: Any, pa: Any, columns: list[str]) -> Any:
    tables = []
    for f in _parquet_files(src, "data"):
        table = pq.read_table(f)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise LeRobotFormatError(f"{f} lacks the column(s) {missing}")
        tables.append(table.select(columns))
    return pa.concat_tables(tables)


def _column(table: Any, feature: str, dtype: np.dtype, shape: tuple, pa: Any) -> np.ndarray:
    """A column as (rows, *shape) ``dtype``; list columns hold the flattened values."""
    col = table.column(feature).combine_chunks()
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        values = np.asarray(col.flatten().to_numpy(zero_copy_only=False)).reshape(len(col), -1)
    else:
        values = np.asarray(col.to_numpy(zero_copy_only=False)).reshape(len(col), 1)
    width = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if values.shape[1] != width:
        raise LeRobotFormatError(f"data column {feature} has {values.shape[1]} values per frame; its feature "
                                 f"says shape {list(shape) or [1]}")
    return values.astype(dtype, copy=False).reshape((len(values), *shape))


class _EpisodeFrames:
    """Frames of one video feature, episode by episode, decoded in one pass per video file."""

    def __init__(self, src: Path, info: dict, key: str):
        self.src, self.key, self.fps = src, key, info["fps"]
        self._decoders: dict[Path, Iterator[tuple[float, np.ndarray]]] = {}
        self._pending: dict[Path, tuple[float, np.ndarray] | None] = {}
        self.template = info.get("video_path")
        if not self.template:
            raise LeRobotFormatError(f"{src}/meta/info.json has video feature {key} but no video_path")

    def episode(self, ep: dict, length: int) -> list[np.ndarray]:
        """The ``length`` frames of ``ep``: frame k is the one presented at from_timestamp + k / fps."""
        try:
            chunk, file = int(ep[f"videos/{self.key}/chunk_index"]), int(ep[f"videos/{self.key}/file_index"])
            start = float(ep[f"videos/{self.key}/from_timestamp"])
        except (KeyError, TypeError) as exc:
            raise LeRobotFormatError(f"{self.src}/meta/episodes: episode {ep['episode_index']} has no "
                                     f"videos/{self.key}/{exc} entry") from None
        path = self.src / self.template.format(video_key=self.key, chunk_index=chunk, file_index=file)
        if not path.is_file():
            raise LeRobotFormatError(f"{path} is missing (video {self.key} of episode {ep['episode_index']})")
        frames = []
        period = 1.0 / self.fps
        for k in range(length):
            want = start + k * period
            while True:
                item = self._next(path)
                if item is None:
                    raise LeRobotFormatError(f"{path} ends before episode {ep['episode_index']}'s frame {k} "
                                             f"(t = {want:.3f} s)")
                t, image = item
                if t < want - _FRAME_MATCH * period:
                    self._pending[path] = None  # a frame of an earlier episode or a skipped one: drop it
                    continue
                if t > want + _FRAME_MATCH * period:
                    raise LeRobotFormatError(f"{path} has no frame at {want:.3f} s (episode {ep['episode_index']}, "
                                             f"frame {k}; the next is at {t:.3f} s)")
                self._pending[path] = None
                frames.append(image)
                break
        return frames

    def _next(self, path: Path) -> tuple[float, np.ndarray] | None:
        if self._pending.get(path) is not None:
            return self._pending[path]
        if path not in self._decoders:
            self._decoders[path] = _decode_timed(path)
        item = next(self._decoders[path], None)
        self._pending[path] = item
        return item


def _decode_timed(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    for t, image in video_frames(path):
        if t is None:
            raise LeRobotFormatError(f"{path}: a frame has no presentation time")
        yield float(t), image


# -- shared -------------------------------------------------------------------------------------------------

def _check_new_folder(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LeRobotFormatError(f"--out {out} already exists and is not an empty folder; give a new folder")


def _sibling(out: Path, what: str) -> Path:
    """A hidden folder next to ``out`` to build in (same filesystem, so the final rename is atomic)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir():
            out.rmdir()  # empty (checked): replaced by the finished folder
        tmp = out.parent / f".{out.name}.{what}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise LeRobotFormatError(f"--out {out}: cannot write there: {exc.strerror or exc}") from None
    return tmp


def _plain(value: Any) -> Any:
    """zarr attributes as plain JSON values."""
    return json.loads(json.dumps(value))


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LeRobotFormatError(f"cannot read {path}: {exc}") from None
