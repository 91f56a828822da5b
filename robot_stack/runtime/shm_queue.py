"""``SharedMemoryQueue``: a bounded FIFO of fixed-shape records across processes (commands, waypoints).

Producers and the consumer take one ``multiprocessing`` lock around index updates and copies, so any number
of processes may ``put``; records are copied once in and once out, never pickled. The lock travels to
spawned processes with the queue handle (at process start only).
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any, Mapping

import numpy as np

from robot_stack.runtime.shared_block import SharedBlock, check_record_keys, normalize_spec

_SPAWN = mp.get_context("spawn")


class QueueFull(RuntimeError):
    """The queue is at capacity; the consumer is not keeping up (or the capacity is too small)."""


class SharedMemoryQueue:
    """Bounded multi-producer FIFO of records ``{name: array of fixed shape/dtype}``."""

    def __init__(self, spec: Mapping[str, tuple], capacity: int, block: SharedBlock, lock: Any):
        self.spec = normalize_spec(spec)
        self.capacity = capacity
        self._block = block
        self._lock = lock
        # head = total records consumed, tail = total records put; slot = index % capacity.
        self._head = block.arrays["__head__"]
        self._tail = block.arrays["__tail__"]
        self._fields = {name: block.arrays[name] for name in self.spec}

    @classmethod
    def create(cls, spec: Mapping[str, tuple], capacity: int) -> "SharedMemoryQueue":
        """Allocate a new queue; the calling process owns the segment and releases it on ``close``."""
        spec = normalize_spec(spec)
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        layout = {"__head__": ((1,), np.dtype(np.int64)), "__tail__": ((1,), np.dtype(np.int64))}
        layout.update({name: ((capacity, *shape), dtype) for name, (shape, dtype) in spec.items()})
        return cls(spec, capacity, SharedBlock(layout, create=True), _SPAWN.Lock())

    def __reduce__(self):
        return (SharedMemoryQueue, (self.spec, self.capacity, self._block, self._lock))

    @property
    def name(self) -> str:
        """Name of the underlying shared-memory segment."""
        return self._block.name

    def __len__(self) -> int:
        with self._lock:
            return int(self._tail[0] - self._head[0])

    def empty(self) -> bool:
        """True if no record is waiting."""
        return len(self) == 0

    def put(self, record: Mapping[str, Any]) -> None:
        """Append a record; raises ``QueueFull`` when ``capacity`` records are waiting."""
        check_record_keys(self._fields, record, "queue")
        with self._lock:
            tail = int(self._tail[0])
            if tail - int(self._head[0]) >= self.capacity:
                raise QueueFull(f"queue {self.name} is full ({self.capacity} records waiting)")
            slot = tail % self.capacity
            for name, dst in self._fields.items():
                np.copyto(dst[slot, ...], record[name], casting="same_kind")
            self._tail[0] = tail + 1

    def get_k(self, k: int) -> dict[str, np.ndarray]:
        """Remove and return the oldest ``min(k, len)`` records, each field shaped ``(n, *shape)``."""
        with self._lock:
            head = int(self._head[0])
            n = min(k, int(self._tail[0]) - head)
            slots = np.arange(head, head + n) % self.capacity
            out = {name: np.take(arr, slots, axis=0) for name, arr in self._fields.items()}
            self._head[0] = head + n
        return out

    def get_all(self) -> dict[str, np.ndarray]:
        """Remove and return every waiting record (possibly zero), oldest first."""
        return self.get_k(self.capacity)

    def close(self) -> None:
        """Detach from the segment; in the creating process this also unlinks it."""
        self._fields = {}
        self._head = self._tail = None  # type: ignore[assignment]
        self._block.close()

    def __enter__(self) -> "SharedMemoryQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
