"""Device processes used by the runtime tests (importable in spawned children)."""

from __future__ import annotations

import time

import numpy as np

from robot_stack.runtime import DeviceProcess, SharedMemoryQueue, SharedMemoryRingBuffer

FRAME = (120, 160, 3)
FRAME_SPEC = {"image": (FRAME, np.uint8), "index": ((), np.int64), "checksum": ((), np.int64), "timestamp": ((), np.float64)}


def make_frame(i: int) -> dict:
    """A record whose every field is derived from ``i``, so a torn read is detectable."""
    value = i % 251
    image = np.full(FRAME, value, np.uint8)
    return {"image": image, "index": i, "checksum": value * image.size, "timestamp": float(i)}


def assert_consistent(records: dict) -> None:
    for image, index, checksum in zip(records["image"], records["index"], records["checksum"]):
        assert int(image.sum(dtype=np.int64)) == checksum, f"torn record {index}"
        assert checksum == (index % 251) * image.size, f"fields of different records mixed at {index}"
        assert image.min() == image.max(), f"torn image at {index}"


class FrameWriter(DeviceProcess):
    """Writes frames as fast as it can into a small ring buffer it owns, until stopped."""

    def __init__(self, capacity: int = 8):
        super().__init__(name="frame_writer")
        self.frames = self.own(SharedMemoryRingBuffer.create(FRAME_SPEC, capacity))
        self.i = 0

    def step(self) -> None:
        self.frames.put(make_frame(self.i))
        self.i += 1


class FrameReader(DeviceProcess):
    """Reads a ring buffer in a loop and reports consistency failures through a result ring buffer."""

    def __init__(self, frames: SharedMemoryRingBuffer):
        super().__init__(name="frame_reader")
        self.frames = frames
        self.result = self.own(SharedMemoryRingBuffer.create({"reads": ((), np.int64), "torn": ((), np.int64)}, 4))
        self.reads = self.torn = 0

    def step(self) -> None:
        if self.frames.count >= 4:
            try:
                assert_consistent(self.frames.get_last_k(3))
            except AssertionError:
                self.torn += 1
            self.reads += 1
            self.result.put({"reads": self.reads, "torn": self.torn})


class QueueProducer(DeviceProcess):
    """Puts ``n`` records tagged with its producer id into a shared queue, retrying when full."""

    def __init__(self, queue: SharedMemoryQueue, producer: int, n: int):
        super().__init__(name=f"producer_{producer}")
        self.queue, self.producer, self.n, self.i = queue, producer, n, 0

    def step(self) -> None:
        from robot_stack.runtime import QueueFull

        if self.i >= self.n:
            time.sleep(0.005)
            return
        try:
            self.queue.put({"producer": self.producer, "seq": self.i, "payload": np.full(6, self.i, np.float64)})
            self.i += 1
        except QueueFull:
            time.sleep(0.0005)


class Idle(DeviceProcess):
    """Sleeps until stopped; optionally fails in setup or after ``fail_after`` seconds."""

    def __init__(self, name: str, fail_in_setup: bool = False, fail_after: float | None = None):
        super().__init__(name=name)
        self.fail_in_setup = fail_in_setup
        self.fail_after = fail_after
        self.buffer = self.own(SharedMemoryRingBuffer.create({"x": ((), np.float64)}, 4))

    def setup(self) -> None:
        if self.fail_in_setup:
            raise RuntimeError("camera serial 1234 not found")
        self.t0 = time.monotonic()

    def step(self) -> None:
        if self.fail_after is not None and time.monotonic() - self.t0 > self.fail_after:
            raise ValueError("simulated device crash")
        self.buffer.put({"x": time.monotonic()})
        time.sleep(0.005)


class IdleBackground(DeviceProcess):
    """Sleeps until stopped, at the background priority (lowering is always allowed)."""

    priority_role = "background"

    def step(self) -> None:
        time.sleep(0.01)


class IdleControl(IdleBackground):
    """Sleeps until stopped, asking for the control loop's priority."""

    priority_role = "control"


class FreezeReporter(DeviceProcess):
    """Publishes how many objects the garbage collector has frozen in this process (after setup)."""

    def __init__(self):
        super().__init__(name="freeze_reporter")
        self.result = self.own(SharedMemoryRingBuffer.create({"frozen": ((), np.int64)}, 2))

    def step(self) -> None:
        import gc

        if self.result.count == 0:
            self.result.put({"frozen": gc.get_freeze_count()})
        time.sleep(0.01)
