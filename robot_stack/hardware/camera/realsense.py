"""Intel RealSense cameras through ``pyrealsense2``: live by serial, replay of a recording, or a software device.

Why sensors + ``rs.syncer`` rather than ``rs.pipeline``: the pipeline only opens devices it can find in a
context, and in librealsense 2.59 a ``software_device`` added to a context is not returned by
``query_devices`` (so ``pipeline.start`` says "No device connected"). Opening the device's sensors directly
and sending their frames into one syncer is what the pipeline does internally, and it works identically for
USB devices, playback devices (``context.load_device(file)``) and software devices, so tests and the
benchmark run the exact code that runs on the robot. Depth is aligned to color with ``rs.align``.

Time: see ``clock_mapping`` — each frame's capture timestamp is on the runtime clock.

Recording and playback: ``record_file`` wraps the live device in ``rs.recorder`` (this librealsense build
writes ROS2 ``.db3`` files); ``playback_file`` replays one, rebased to the runtime clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pyrealsense2 as rs

from robot_stack.config import ConfigError
from robot_stack.hardware.camera.clock_mapping import FrameClock
from robot_stack.hardware.camera.config import CameraConfig
from robot_stack.hardware.camera.interface import (
    Camera,
    CameraNotFoundError,
    CameraTimeout,
    EndOfStream,
    Frame,
    UnsupportedStreamError,
)
from robot_stack.runtime import now

log = logging.getLogger(__name__)

DeviceSource = Callable[[], Sequence[rs.device]]

# Framesets the syncer holds while we convert one: enough to absorb a hiccup, small to keep latency low.
_SYNC_QUEUE_SIZE = 2
_POLL_MS = 100


def connected_devices() -> list[rs.device]:
    """The RealSense devices connected to this machine (USB)."""
    return list(rs.context().query_devices())


def _info(device: rs.device, key: rs.camera_info, default: str = "") -> str:
    return device.get_info(key) if device.supports(key) else default


@dataclass(frozen=True)
class CameraInfo:
    """Identity of a connected RealSense."""

    serial: str
    model: str
    firmware: str
    usb_type: str  # e.g. "3.2"; "" when not reported

    @classmethod
    def of(cls, device: rs.device) -> "CameraInfo":
        return cls(
            serial=_info(device, rs.camera_info.serial_number),
            model=_info(device, rs.camera_info.name),
            firmware=_info(device, rs.camera_info.firmware_version),
            usb_type=_info(device, rs.camera_info.usb_type_descriptor),
        )

    @property
    def is_usb2(self) -> bool:
        return self.usb_type.startswith("2")

    def __str__(self) -> str:
        usb = f", USB {self.usb_type}" if self.usb_type else ""
        return f"{self.serial} ({self.model}, firmware {self.firmware or '?'}{usb})"


def list_cameras(devices: Optional[DeviceSource] = None) -> list[CameraInfo]:
    """Serial, model, firmware and USB type of every connected RealSense (empty list if none)."""
    return [CameraInfo.of(d) for d in (devices or connected_devices)()]


def find_device(serial: str, devices: Optional[DeviceSource] = None) -> rs.device:
    """The connected device with ``serial``; ``CameraNotFoundError`` listing what is connected otherwise."""
    found = list((devices or connected_devices)())
    for device in found:
        if _info(device, rs.camera_info.serial_number) == serial:
            return device
    if not found:
        raise CameraNotFoundError(f"RealSense serial {serial!r} not found: no RealSense connected "
                                  "(check the USB cable; `robot-stack cameras` lists connected cameras)")
    connected = "; ".join(str(CameraInfo.of(d)) for d in found)
    raise CameraNotFoundError(f"RealSense serial {serial!r} not found; connected: {connected}. "
                              "Fix the 'serial' of this camera in the rig YAML")


def _video_modes(sensors: Sequence[rs.sensor], stream: rs.stream, fmt: rs.format) -> list[rs.video_stream_profile]:
    modes = []
    for sensor in sensors:
        for profile in sensor.get_stream_profiles():
            if profile.stream_type() == stream and profile.format() == fmt and profile.is_video_stream_profile():
                modes.append(profile.as_video_stream_profile())
    return modes


def _describe(modes: Sequence[rs.video_stream_profile]) -> str:
    labels = sorted({(m.width(), m.height(), m.fps()) for m in modes})
    return ", ".join(f"{w}x{h}@{fps}" for w, h, fps in labels) or "none"


def describe_color_modes(device: rs.device) -> str:
    """The RGB color modes a device supports, e.g. ``"640x480@6, 640x480@15, 640x480@30, ..."``."""
    return _describe(_video_modes(device.query_sensors(), rs.stream.color, rs.format.rgb8))


def _owner(sensors: Sequence[rs.sensor], profile: rs.stream_profile) -> rs.sensor:
    for sensor in sensors:
        if any(p.unique_id() == profile.unique_id() for p in sensor.get_stream_profiles()):
            return sensor
    raise RuntimeError(f"no sensor provides {profile}")  # cannot happen: profiles come from these sensors


class RealSenseCamera(Camera):
    """A RealSense (live, ``playback_file`` or software device from ``devices``) implementing ``Camera``.

    ``devices`` returns the devices to look the serial up in (default: the USB devices); tests and the
    benchmark pass a ``SyntheticRealSense``.
    """

    def __init__(self, config: CameraConfig, devices: Optional[DeviceSource] = None):
        if config.driver != "realsense":
            raise ConfigError(f"camera '{config.name}': RealSenseCamera needs driver: realsense, got {config.driver}")
        self.config = config
        self._devices = devices
        self._device: Optional[rs.device] = None
        self._context: Optional[rs.context] = None  # keeps a playback device's context alive
        self._playback: Optional[rs.playback] = None
        self._started: list[rs.sensor] = []
        self._opened: list[rs.sensor] = []
        self._syncer: Optional[rs.syncer] = None
        self._align: Optional[rs.align] = None
        self._depth_to_mm = 1.0
        self._clock = FrameClock(rebase=config.playback_file is not None)
        self.info: Optional[CameraInfo] = None

    # -- open ----------------------------------------------------------------------------------------------
    def open(self) -> None:
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        cfg = self.config
        device = self._open_playback() if cfg.playback_file is not None else find_device(cfg.serial, self._devices)
        self.info = CameraInfo.of(device)
        if self.info.is_usb2:
            log.warning("camera '%s' (%s) is on a USB 2 port: bandwidth limits it to low resolutions/frame rates "
                        "and may drop frames; plug it into a USB 3 port with a USB 3 cable", cfg.name, self.info)
        if cfg.record_file is not None:
            Path(cfg.record_file).parent.mkdir(parents=True, exist_ok=True)
            device = rs.recorder(str(cfg.record_file), device)
        self._device = device
        sensors = list(device.query_sensors())
        profiles = [self._select_color(sensors)]
        if cfg.depth:
            profiles.append(self._select_depth(sensors, profiles[0]))
        if self._playback is None:
            self._apply_controls(_owner(sensors, profiles[0]))
            for sensor in sensors:
                if sensor.supports(rs.option.global_time_enabled):
                    sensor.set_option(rs.option.global_time_enabled, 1)
        self._syncer = rs.syncer(_SYNC_QUEUE_SIZE)
        by_sensor: dict[int, tuple[rs.sensor, list[rs.stream_profile]]] = {}
        for profile in profiles:
            sensor = _owner(sensors, profile)
            by_sensor.setdefault(id(sensor), (sensor, []))[1].append(profile)
        for sensor, sensor_profiles in by_sensor.values():
            sensor.open(sensor_profiles)
            self._opened.append(sensor)
            sensor.start(self._syncer)
            self._started.append(sensor)
        if cfg.depth:
            self._align = rs.align(rs.stream.color)
        log.info("camera '%s' streaming from %s: %s", cfg.name, self.info, ", ".join(str(p) for p in profiles))

    def _open_playback(self) -> rs.device:
        cfg = self.config
        path = Path(cfg.playback_file)
        if not path.is_file():
            raise ConfigError(f"camera '{cfg.name}': playback_file {str(path)!r} does not exist")
        self._context = rs.context()
        try:
            device = self._context.load_device(str(path))
        except RuntimeError as exc:
            raise ConfigError(f"camera '{cfg.name}': cannot read playback_file {str(path)!r}: {exc}") from None
        recorded = _info(device, rs.camera_info.serial_number)
        if cfg.serial is not None and recorded != cfg.serial:
            raise CameraNotFoundError(f"camera '{cfg.name}': playback_file {str(path)!r} was recorded from serial "
                                      f"{recorded!r}, but the config says serial {cfg.serial!r}")
        self._playback = device.as_playback()
        self._playback.set_real_time(cfg.playback_real_time)
        return device

    def _unsupported(self, what: str, modes: Sequence[rs.video_stream_profile]) -> UnsupportedStreamError:
        cfg = self.config
        hint = " (the camera is on USB 2, which offers fewer modes: use a USB 3 port)" if self.info.is_usb2 else ""
        return UnsupportedStreamError(
            f"camera '{cfg.name}' ({self.info.serial}) cannot stream {what} {cfg.resolution[0]}x{cfg.resolution[1]}"
            f"@{cfg.fps}{hint}; supported: {_describe(modes)}")

    def _select_color(self, sensors: Sequence[rs.sensor]) -> rs.video_stream_profile:
        width, height = self.config.resolution
        modes = _video_modes(sensors, rs.stream.color, rs.format.rgb8)
        for mode in modes:
            if (mode.width(), mode.height(), mode.fps()) == (width, height, self.config.fps):
                return mode
        raise self._unsupported("color", modes)

    def _select_depth(self, sensors: Sequence[rs.sensor], color: rs.video_stream_profile) -> rs.video_stream_profile:
        """Depth at the color fps: the color's resolution if offered, else the largest (it is aligned anyway)."""
        modes = [m for m in _video_modes(sensors, rs.stream.depth, rs.format.z16) if m.fps() == color.fps()]
        if not modes:
            raise self._unsupported("depth", _video_modes(sensors, rs.stream.depth, rs.format.z16))
        same = [m for m in modes if (m.width(), m.height()) == (color.width(), color.height())]
        mode = same[0] if same else max(modes, key=lambda m: m.width() * m.height())
        depth_sensor = _owner(sensors, mode)
        units = depth_sensor.get_option(rs.option.depth_units) if depth_sensor.supports(rs.option.depth_units) else 0.001
        self._depth_to_mm = units * 1000.0
        return mode

    def _apply_controls(self, sensor: rs.sensor) -> None:
        """Exposure, gain and white balance on the color sensor, each checked against the device's range."""
        cfg = self.config
        settings: list[tuple[rs.option, float, str]] = []
        if cfg.exposure == "auto":
            settings.append((rs.option.enable_auto_exposure, 1, "exposure"))
        else:
            settings += [(rs.option.enable_auto_exposure, 0, "exposure"), (rs.option.exposure, cfg.exposure, "exposure")]
            if cfg.gain is not None:
                settings.append((rs.option.gain, cfg.gain, "gain"))
        if cfg.white_balance == "auto":
            settings.append((rs.option.enable_auto_white_balance, 1, "white_balance"))
        else:
            settings += [(rs.option.enable_auto_white_balance, 0, "white_balance"),
                         (rs.option.white_balance, cfg.white_balance, "white_balance")]
        for option, value, key in settings:
            if not sensor.supports(option):
                if option in (rs.option.enable_auto_exposure, rs.option.enable_auto_white_balance) and value == 1:
                    continue  # "auto" on a sensor without the control: nothing to do
                raise ConfigError(f"camera '{cfg.name}': {key}: this camera's color sensor has no {option.name} control")
            rng = sensor.get_option_range(option)
            if not rng.min <= value <= rng.max:
                raise ConfigError(f"camera '{cfg.name}': {key} {value:g} is outside the device range "
                                  f"[{rng.min:g}, {rng.max:g}] (step {rng.step:g}, default {rng.default:g})")
            sensor.set_option(option, float(value))

    # -- streaming -----------------------------------------------------------------------------------------
    def read(self, timeout: float) -> Frame:
        if self._syncer is None:
            raise RuntimeError(f"camera '{self.config.name}' is not open")
        deadline = now() + timeout
        while True:
            remaining_ms = int(min(_POLL_MS, max(0.0, deadline - now()) * 1000)) + 1
            ok, frames = self._syncer.try_wait_for_frames(remaining_ms)
            if ok:
                frame = self._convert(frames, now())
                if frame is not None:
                    return frame
            elif self._playback is not None and self._playback.current_status() == rs.playback_status.stopped:
                raise EndOfStream(f"camera '{self.config.name}': end of {self.config.playback_file}")
            if now() >= deadline:
                raise CameraTimeout(f"camera '{self.config.name}' ({self.info}): no frame for {timeout:.1f} s")

    def _convert(self, frames: rs.composite_frame, receive_time: float) -> Optional[Frame]:
        """Copy a frameset out of librealsense; ``None`` for an incomplete one (first frames of a stream)."""
        if self._align is not None:
            if not frames.get_depth_frame() or not frames.get_color_frame():
                return None
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        depth = None
        if self._align is not None:
            raw = np.asanyarray(frames.get_depth_frame().get_data())
            depth = raw.copy() if self._depth_to_mm == 1.0 else np.clip(
                np.rint(raw * self._depth_to_mm), 0, np.iinfo(np.uint16).max).astype(np.uint16)
        timestamp = self._clock.capture_time(color.get_timestamp(), color.get_frame_timestamp_domain().name,
                                             receive_time)
        return Frame(color=np.array(color.get_data(), copy=True), depth=depth, timestamp=timestamp,
                     receive_timestamp=receive_time, frame_number=int(color.get_frame_number()))

    def close(self) -> None:
        for sensor in reversed(self._started):
            try:
                sensor.stop()
            except RuntimeError as exc:
                log.warning("camera '%s': stopping %s failed: %s", self.config.name, sensor, exc)
        for sensor in reversed(self._opened):
            try:
                sensor.close()
            except RuntimeError as exc:
                log.warning("camera '%s': closing %s failed: %s", self.config.name, sensor, exc)
        # Dropping the last reference to a recorder is what finalizes its file.
        self._started, self._opened = [], []
        self._syncer = self._align = self._playback = self._device = self._context = None
