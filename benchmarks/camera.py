"""Benchmark: camera processes at 640x480@30 — sustained frame rate and frame-to-ring-buffer latency.

Scenarios: 1 and 4 cameras, each a ``CameraProcess`` fed by
  * ``realsense``: a ``SyntheticRealSense`` (librealsense software device; frames injected by a thread in
    the camera process, through the sensors, syncer and our conversion, like a USB camera's frames), and
  * ``sim``: a ``SimCamera`` with the test-pattern renderer and ``sim_latency: 0``.

This process polls every ring buffer (0.2 ms sleep between polls) and, for each new record, measures
  * capture->readable: ``now() - timestamp``. For ``realsense`` the capture timestamp is the injection
    instant (stamped on the wall clock, mapped to the runtime clock), so this is inject -> readable;
  * receive->readable: ``now() - receive_timestamp`` (our process: copy out, crop/resize, ``put``, + poll).
Sustained fps = new records per second over the window; drops = the cameras' ``dropped_frames``.

Usage: python benchmarks/camera.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robot_stack.hardware.camera import CameraConfig, CameraProcess, SyntheticRealSense
from robot_stack.runtime import now

FPS = 30
RESOLUTION = (640, 480)


def make(kind: str, index: int) -> CameraProcess:
    if kind == "sim":
        return CameraProcess(CameraConfig(name=f"sim{index}", resolution=RESOLUTION, fps=FPS, sim_latency=0.0))
    serial = f"SYNTH{index:04d}"
    config = CameraConfig(name=f"rs{index}", driver="realsense", serial=serial, resolution=RESOLUTION, fps=FPS)
    return CameraProcess(config, devices=SyntheticRealSense(serial=serial, resolution=RESOLUTION, fps=FPS))


def run(kind: str, n_cameras: int, seconds: float) -> None:
    cameras = [make(kind, i) for i in range(n_cameras)]
    try:
        for camera in cameras:
            camera.start()
        time.sleep(1.0)  # warm up
        seen = [camera.frames.count for camera in cameras]
        initial = sum(seen)
        dropped0 = [camera.dropped_frames for camera in cameras]
        capture_lat, receive_lat = [], []
        t0 = now()
        while now() - t0 < seconds:
            for i, camera in enumerate(cameras):
                count = camera.frames.count
                if count > seen[i]:
                    t = now()
                    k = min(count - seen[i], camera.frames.capacity - 1)
                    records = camera.frames.get_last_k(k)
                    capture_lat.extend(t - records["timestamp"])
                    receive_lat.extend(t - records["receive_timestamp"])
                    seen[i] = count
            time.sleep(0.0002)
        elapsed = now() - t0
        total = sum(seen) - initial
        dropped = sum(camera.dropped_frames for camera in cameras) - sum(dropped0)
    finally:
        for camera in cameras:
            camera.stop()
    cap, rec = np.asarray(capture_lat) * 1e3, np.asarray(receive_lat) * 1e3
    print(f"{kind:9s} x{n_cameras}: {total / elapsed / n_cameras:5.1f} fps/camera, dropped {dropped:3d} | "
          f"capture->readable median {np.median(cap):5.2f} ms p99 {np.percentile(cap, 99):6.2f} ms | "
          f"receive->readable median {np.median(rec):5.2f} ms p99 {np.percentile(rec, 99):6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement window per scenario")
    args = parser.parse_args()
    print(f"{RESOLUTION[0]}x{RESOLUTION[1]}@{FPS}, {args.seconds:.0f} s per scenario")
    for kind in ("realsense", "sim"):
        for n in (1, 4):
            run(kind, n, args.seconds)


if __name__ == "__main__":
    main()
