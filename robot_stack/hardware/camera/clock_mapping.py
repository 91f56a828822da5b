"""Mapping RealSense frame timestamps onto the runtime clock (``time.monotonic()`` seconds).

librealsense stamps every frame in one of three domains (``frame.get_frame_timestamp_domain()``):

* ``global_time`` (the default for D400 with metadata): the device's hardware timestamp of the exposure,
  converted by librealsense into the *host's wall clock* in milliseconds (it continuously fits the device
  clock against ``system_clock``). So ``t_wall = ts / 1000`` is when the image was exposed, in
  ``time.time()`` seconds. We convert wall to monotonic with an offset ``time.time() - time.monotonic()``
  sampled by ``WallToMonotonic``: each sample brackets ``time.time()`` between two ``monotonic()`` reads
  and keeps the narrowest of a few tries (error below ~10 us), and the offset is re-sampled every second so
  an NTP slew or step of the wall clock is followed within a second. Transport and driver latency need no
  correction: the timestamp already refers to the exposure.
* ``system_time``: the host wall-clock time when the frame *arrived* (no metadata available). Mapped the
  same way; it is later than the exposure by the USB transfer time (about one frame period), which cannot
  be measured without metadata — enable metadata (install the kernel patches / use the RSUSB backend) to
  get ``global_time``.
* ``hardware_clock``: the device's own clock (ms since it booted), unrelated to the host. We track the
  offset ``receive_time - device_time`` and keep its running minimum (the frame that travelled fastest
  bounds the true offset from above), letting it grow by 100 ppm of elapsed time so device/host clock
  drift cannot pin it to a stale minimum. Capture time = device time + offset: it includes the smallest
  observed transport latency, which is the best available without a shared clock.

Playback files carry the timestamps of the recording session (another day's wall clock), so a playback
source is *rebased*: the first frame gets its arrival time, later frames keep their recorded spacing.
"""

from __future__ import annotations

import time

from robot_stack.runtime import now

# Allowed drift of the device clock against the host clock when tracking a hardware-clock offset.
_MAX_DRIFT = 100e-6
_OFFSET_REFRESH_S = 1.0


class WallToMonotonic:
    """Converts ``time.time()`` seconds to ``time.monotonic()`` seconds (re-sampled every second)."""

    def __init__(self) -> None:
        self._offset = self._sample()
        self._sampled_at = now()

    @staticmethod
    def _sample(tries: int = 5) -> float:
        best_width, best_offset = float("inf"), 0.0
        for _ in range(tries):
            before = time.monotonic()
            wall = time.time()
            after = time.monotonic()
            if after - before < best_width:
                best_width, best_offset = after - before, wall - (before + after) / 2
        return best_offset

    def __call__(self, wall_seconds: float) -> float:
        if now() - self._sampled_at > _OFFSET_REFRESH_S:
            self._offset = self._sample()
            self._sampled_at = now()
        return wall_seconds - self._offset


class FrameClock:
    """Turns (frame timestamp ms, its domain, receive time) into a capture time on the runtime clock."""

    def __init__(self, rebase: bool = False, wall_to_monotonic: WallToMonotonic | None = None):
        self.rebase = rebase
        self._wall = wall_to_monotonic or WallToMonotonic()
        self._first: tuple[float, float] | None = None  # (device seconds, runtime seconds) of the first frame
        self._hw_offset: float | None = None
        self._hw_last_receive = 0.0

    def capture_time(self, timestamp_ms: float, domain: str, receive_time: float) -> float:
        """Capture time (runtime clock) of a frame stamped ``timestamp_ms`` in ``domain``.

        ``domain`` is the name of the ``rs.timestamp_domain`` (``"global_time"``, ``"system_time"`` or
        ``"hardware_clock"``); ``receive_time`` is ``now()`` when the frame arrived.
        """
        device_s = timestamp_ms / 1000.0
        if self.rebase:
            if self._first is None:
                self._first = (device_s, receive_time)
            return self._first[1] + (device_s - self._first[0])
        if domain in ("global_time", "system_time"):
            return self._wall(device_s)
        if domain == "hardware_clock":
            offset = receive_time - device_s
            if self._hw_offset is None:
                self._hw_offset = offset
            else:
                drift = _MAX_DRIFT * max(0.0, receive_time - self._hw_last_receive)
                self._hw_offset = min(self._hw_offset + drift, offset)
            self._hw_last_receive = receive_time
            return device_s + self._hw_offset
        raise ValueError(f"unknown RealSense timestamp domain {domain!r}")
