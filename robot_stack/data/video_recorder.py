"""Recording camera streams to mp4 (H.264) with per-frame timestamps, without blocking capture.

Layout (the dataset's ``videos/<episode_idx>/``)::

    <camera_idx>.mp4              one video frame per recorded ring-buffer record, in capture order
    <camera_idx>.timestamps.npy   (N,) float64 capture timestamps (runtime clock), one per video frame

Video frame ``i`` was captured at ``timestamps[i]``; the mp4's own frame rate is nominal (``fps``), so
consumers align frames by the timestamps file, never by frame index times the rate (frames the camera
dropped are simply absent, not duplicated).

Why PyAV rather than OpenCV: PyAV's wheel bundles FFmpeg with ``libx264`` (checked at run time with
``av.codecs_available``), and it lets us set the pixel format (yuv420p, playable everywhere), the quality
(CRF) and the presentation timestamps explicitly, and it raises on every error. ``cv2.VideoWriter`` in the
opencv-python wheels cannot encode H.264 (no x264 for licensing reasons: it falls back to MPEG-4 Part 2 via
``mp4v``), exposes no quality/pixel-format control, and reports failures only as ``isOpened() == False``
or silently dropped writes. Without ``libx264`` we fall back to FFmpeg's ``mpeg4`` encoder (with a warning).

Never blocking capture: the camera process only writes to its ring buffer; ``VideoRecorder`` runs two
threads in the recording process. A reader pulls with ``get_since`` and copies each frame into a
``FrameSpool``; an encoder (lowest CPU priority) takes them from there. When encoding falls behind, frames
wait in the spool — in memory for the first ``ram_frames``, then in a file next to the video — and are
encoded later (at the latest in ``stop()``, which then takes longer), so a slow encoder costs disk space
and time, never frames or the control path. Only a reader that cannot keep up with the ring buffer loses
frames; those are counted (``recorder_dropped``, from frame-number gaps not explained by the camera's own
``dropped_frames``). The capture-to-encode lag is tracked and warned about, and ``stop()`` reports the lag,
the losses and how many frames went through the disk spool — nothing is lost silently.

Atomic files: both files are written under ``*.partial`` names and renamed on success (timestamps first,
so a present ``.mp4`` implies a complete pair). A crash or full disk leaves only ``.partial`` files in the
new episode's folder; earlier episodes are never touched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np

from robot_stack.data.frame_spool import FrameSpool
from robot_stack.runtime import SharedMemoryRingBuffer, StaleDataError, now, set_priority

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
DEFAULT_CRF = 21  # visually near-lossless for policy inputs at a few Mbit/s (640x480@30)
DEFAULT_PRESET = "veryfast"  # ~3 ms/frame at 640x480 on one core; slower presets only shrink files
_FALLBACK_BIT_RATE = 8_000_000


def encoder_threads(width: int, height: int) -> int:
    """Threads one H.264 encoder may use: 1 up to 640x480 (frame threading only adds overhead and competes
    with the control path there), else half the cores, at most 4: an encoding budget, not the whole machine."""
    if width * height <= 640 * 480:
        return 1
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class VideoRecordingError(RuntimeError):
    """A video could not be recorded (encoder failure, disk full, no frames); the message says which file."""


def timestamps_path(video_path: str | os.PathLike) -> Path:
    """``videos/3/0.mp4`` -> ``videos/3/0.timestamps.npy``."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.stem + ".timestamps.npy")


def pick_codec() -> str:
    """``libx264`` when this FFmpeg build has it, else ``mpeg4``."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class VideoStats:
    """Outcome of one recorded video."""

    path: Path
    frames: int
    first_timestamp: float
    last_timestamp: float
    codec: str
    camera_dropped: int = 0  # frames the camera lost while recording (its dropped_frames counter)
    recorder_dropped: int = 0  # frames overwritten in the ring buffer before the recorder read them
    max_lag: float = 0.0  # worst capture-to-encode delay, seconds (back-pressure)
    spooled: int = 0  # frames that waited for the encoder in the disk spool
    max_backlog: int = 0  # most frames waiting for the encoder at once

    @property
    def duration(self) -> float:
        return self.last_timestamp - self.first_timestamp


class VideoWriter:
    """Encodes RGB frames into one mp4 plus its timestamps file, atomically.

    ``write(image, timestamp)`` per frame, then ``close() -> VideoStats`` (renames into place) or
    ``abort()`` (removes the partial files). As a context manager it closes (commits) the file on a clean
    exit and aborts on an exception.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], codec: Optional[str] = None,
                 crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET, timestamps_file: bool = True):
        """``timestamps_file=False``: no ``.timestamps.npy`` (for formats whose frame times are the
        video's own constant-rate presentation times, e.g. a LeRobot export)."""
        self.path = Path(path)
        self._timestamps_file = timestamps_file
        if self.path.suffix != ".mp4":
            raise ValueError(f"video path must end in .mp4, got {self.path}")
        width, height = int(size[0]), int(size[1])
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"video size must be positive and even for yuv420p, got {width}x{height}")
        self.size = (width, height)
        self.fps = fps
        self.codec = codec or pick_codec()
        if self.codec != "libx264":
            log.warning("H.264 (libx264) is not available in this PyAV build; recording %s with %s",
                        self.path, self.codec)
        self._timestamps: list[float] = []
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(_partial(self.path)), "w", format="mp4")
        try:
            self._stream = self._container.add_stream(self.codec, rate=Fraction(fps).limit_denominator(1001))
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = "yuv420p"
            if self.codec == "libx264":
                self._stream.options = {"crf": str(crf), "preset": preset, "threads": str(encoder_threads(width, height))}
            else:
                self._stream.bit_rate = _FALLBACK_BIT_RATE
        except BaseException:
            self.abort()
            raise

    @property
    def frames(self) -> int:
        return len(self._timestamps)

    def write(self, image: np.ndarray, timestamp: float) -> None:
        """Append one HxWx3 uint8 RGB frame captured at ``timestamp`` (non-decreasing)."""
        if self._closed:
            raise RuntimeError(f"{self.path}: write after close")
        if image.shape != (self.size[1], self.size[0], 3) or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: expected a {self.size[0]}x{self.size[1]} RGB uint8 frame, "
                             f"got {image.dtype} {image.shape}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = len(self._timestamps)  # one tick of 1/fps per frame; real times go to the .npy
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._timestamps.append(float(timestamp))

    def close(self) -> VideoStats:
        """Flush the encoder and move both files into place; raises ``VideoRecordingError`` if no frames."""
        if self._closed:
            raise RuntimeError(f"{self.path}: already closed")
        if not self._timestamps:
            self.abort()
            raise VideoRecordingError(f"{self.path}: no frames were recorded")
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
            self._closed = True
            video_tmp, ts_path = _partial(self.path), timestamps_path(self.path)
            if self._timestamps_file:
                ts_tmp = _partial(ts_path)
                with open(ts_tmp, "wb") as f:  # a file object: np.save would append ".npy" to a name
                    np.save(f, np.asarray(self._timestamps, dtype=np.float64))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(ts_tmp, ts_path)
            _fsync(video_tmp)
            os.replace(video_tmp, self.path)
            _fsync(self.path.parent)
        except BaseException:
            self.abort()
            raise
        return VideoStats(self.path, len(self._timestamps), self._timestamps[0], self._timestamps[-1], self.codec)

    def abort(self) -> None:
        """Discard the partial files (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - already failing; the partial file is removed below
                pass
        for path in (_partial(self.path), _partial(timestamps_path(self.path))):
            path.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


class VideoRecorder:
    """Records one camera's ring buffer to ``path`` in background threads, from ``t_start`` to ``stop()``.

    The buffer must follow ``robot_stack.hardware.camera.camera_spec`` (``color``, ``timestamp``,
    ``frame_number``, ``dropped_frames``). Records with ``t_start < timestamp <= t_end`` are written.

    >>> rec = VideoRecorder(camera.frames, episode_dir / "0.mp4", fps=30, t_start=now())
    >>> rec.start(); ...; stats = rec.stop()   # stop(t_end) defaults to now()
    """

    def __init__(self, buffer: SharedMemoryRingBuffer, path: str | os.PathLike, fps: float,
                 t_start: Optional[float] = None, codec: Optional[str] = None, crf: int = DEFAULT_CRF,
                 poll_interval: Optional[float] = None, end_grace: float = 1.0, ram_frames: Optional[int] = None):
        """``ram_frames``: frames waiting for the encoder that stay in memory before the rest go to the disk
        spool (default: two seconds of video)."""
        height, width, _ = buffer.spec["color"][0]
        self.buffer = buffer
        self.path = Path(path)
        self.fps = fps
        self.t_start = now() if t_start is None else t_start
        self.end_grace = end_grace
        self._poll = poll_interval if poll_interval is not None else 0.5 / fps
        self._writer = VideoWriter(path, fps, (width, height), codec=codec, crf=crf)
        self._span = buffer.capacity / fps  # seconds of history the ring buffer holds
        self._t_end: Optional[float] = None
        self._stop = threading.Event()
        self._spool = FrameSpool((height, width, 3), self.path.with_name(self.path.name + ".spool"),
                                 int(2 * fps) if ram_frames is None else ram_frames)
        self._thread = threading.Thread(target=self._run, name=f"video-reader-{self.path.name}", daemon=True)
        self._encoder = threading.Thread(target=self._encode, name=f"video-{self.path}", daemon=True)
        self._read_done = threading.Event()
        self._aborted = False
        self._error: Optional[BaseException] = None
        self._last_number: Optional[int] = None
        self._last_dropped: Optional[int] = None
        self._baseline_ts = -float("inf")  # capture time of the reference frame (the newest before t_start)
        self._set_baseline()
        self.camera_dropped = 0
        self.recorder_dropped = 0
        self.max_lag = 0.0
        self._warned_at = -float("inf")

    def _set_baseline(self) -> None:
        """Remember the newest frame from before ``t_start``, so losses right at the start count too."""
        try:
            latest = self.buffer.get()
        except StaleDataError:
            return  # the camera has not published yet: the first recorded frame is the reference
        if latest["timestamp"] <= self.t_start:
            self._last_number, self._last_dropped = int(latest["frame_number"]), int(latest["dropped_frames"])
            self._baseline_ts = float(latest["timestamp"])

    def start(self) -> "VideoRecorder":
        self._thread.start()
        self._encoder.start()
        return self

    @property
    def frames(self) -> int:
        return self._writer.frames

    def stop(self, t_end: Optional[float] = None) -> VideoStats:
        """Write the frames captured up to ``t_end`` (default: now), finalize the files, return the stats.

        Waits until a frame newer than ``t_end`` shows up, or ``end_grace`` s past ``t_end`` if the camera
        stopped. Call it as the episode ends: frames the thread already wrote are kept even if ``t_end`` is
        older than them (the timestamps file says exactly what the video holds). Raises
        ``VideoRecordingError`` (files discarded) if encoding failed or nothing was recorded.
        """
        self._t_end = now() if t_end is None else t_end
        self._stop.set()
        self._thread.join()
        waiting = len(self._spool)
        if waiting and self._error is None:
            log.info("%s: encoding the %d frames still waiting for the encoder", self.path, waiting)
        self._encoder.join()  # it drains the spool first
        self._spool.close()
        if self._error is not None:
            self._writer.abort()
            raise VideoRecordingError(f"recording {self.path} failed: {self._error}") from self._error
        stats = self._writer.close()
        stats = VideoStats(stats.path, stats.frames, stats.first_timestamp, stats.last_timestamp, stats.codec,
                           self.camera_dropped, self.recorder_dropped, self.max_lag, self._spool.spilled,
                           self._spool.max_backlog)
        if self._spool.spilled:
            log.warning("%s: encoding fell behind capture (up to %.2f s); %d frames waited in the disk spool and "
                        "were encoded later, none lost", self.path, self.max_lag, self._spool.spilled)
        if self.camera_dropped or self.recorder_dropped:
            log.warning("%s: %d frames recorded; the camera dropped %d and the recorder lost %d (fell behind "
                        "the ring buffer)", self.path, stats.frames, self.camera_dropped, self.recorder_dropped)
        return stats

    def abort(self) -> None:
        """Stop without keeping anything (e.g. a discarded episode)."""
        self._t_end = -float("inf")
        self._aborted = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._spool.close()
        if self._encoder.is_alive():
            self._encoder.join()
        self._writer.abort()

    # -- thread --------------------------------------------------------------------------------------------
    def _run(self) -> None:
        # Newest timestamp seen (written, before t_start, or past t_end). Reading starts after the reference
        # frame, not at t_start: a frame captured just before t_start may be published (camera latency) only
        # after the recorder was created, and it must become the reference rather than count as lost.
        last_ts = self._baseline_ts
        try:
            while self._error is None:
                stopping = self._stop.is_set()
                records = self.buffer.get_since(last_ts)
                if len(records["timestamp"]):
                    last_ts = self._queue_frames(records)
                elif not stopping:
                    time.sleep(self._poll)
                if stopping:
                    if last_ts > self._t_end or now() > self._t_end + self.end_grace:
                        return
                    time.sleep(self._poll)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            log.error("recording %s failed: %s", self.path, exc)
            self._error = exc
        finally:
            self._read_done.set()

    def _encode(self) -> None:
        try:
            # Lowest priority, for this thread and the encoder threads it starts (the codec opens on the first
            # frame, here): encoding may fall behind, the control path and the policy must not.
            set_priority("background", f"video recorder {self.path.name}")
            while not self._aborted and self._error is None:
                item = self._spool.get(self._poll)
                if item is None:
                    if self._read_done.is_set() and not len(self._spool):
                        return
                    continue
                frame, timestamp = item
                self._writer.write(frame, timestamp)
                lag = now() - timestamp
                self.max_lag = max(self.max_lag, lag)
                if lag > self._span / 2 and now() - self._warned_at > 5.0:
                    self._warned_at = now()
                    log.warning("%s: video encoding is %.2f s behind capture; frames wait in %s and are encoded "
                                "later (nothing is lost)", self.path, lag, self._spool.path.name)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            if not self._aborted:
                log.error("recording %s failed: %s", self.path, exc)
                self._error = exc

    def _queue_frames(self, records: dict[str, np.ndarray]) -> float:
        """Hand the episode's new frames to the encoder (through the spool); returns the newest timestamp."""
        t_end = self._t_end if self._stop.is_set() else None
        for i, timestamp in enumerate(records["timestamp"]):
            if t_end is not None and timestamp > t_end:
                break
            if timestamp <= self.t_start:  # captured before the episode: only the new reference frame
                self._last_number = int(records["frame_number"][i])
                self._last_dropped = int(records["dropped_frames"][i])
                continue
            self._account(int(records["frame_number"][i]), int(records["dropped_frames"][i]))
            self._spool.put(records["color"][i], float(timestamp))
        return float(records["timestamp"][-1])

    def _account(self, number: int, dropped: int) -> None:
        if self._last_number is not None:
            camera = max(0, dropped - self._last_dropped)
            self.camera_dropped += camera
            self.recorder_dropped += max(0, number - self._last_number - 1 - camera)
        self._last_number, self._last_dropped = number, dropped
