"""The shared-memory multiprocess runtime: buffers, queues, timing, alignment and process lifecycle."""

from robot_stack.runtime.align import interpolate_poses, nearest_indices
from robot_stack.runtime.device_process import DeviceProcess, ProcessFailed
from robot_stack.runtime.ring_buffer import RecordStream, SharedMemoryRingBuffer, StaleDataError
from robot_stack.runtime.scheduling import set_priority
from robot_stack.runtime.shm_queue import QueueFull, SharedMemoryQueue
from robot_stack.runtime.supervisor import Supervisor
from robot_stack.runtime.timing import now, precise_sleep, precise_wait

__all__ = [
    "DeviceProcess",
    "ProcessFailed",
    "QueueFull",
    "RecordStream",
    "SharedMemoryQueue",
    "SharedMemoryRingBuffer",
    "StaleDataError",
    "Supervisor",
    "interpolate_poses",
    "nearest_indices",
    "now",
    "precise_sleep",
    "precise_wait",
    "set_priority",
]
