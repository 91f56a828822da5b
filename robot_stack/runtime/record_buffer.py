"""``RecordBuffer``: an in-process ring of records with ``SharedMemoryRingBuffer``'s reading interface.

Hand-written because the lockstep simulator must feed the runtime's own consumers (the observation
assembler, the recorders) through exactly the calls they make on shared memory — ``get``, ``get_last_k``,
``get_since``, ``count``, ``spec`` — while running in one process with no shared memory at all.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from robot_stack.runtime.ring_buffer import StaleDataError
from robot_stack.runtime.shared_block import check_record_keys, normalize_spec


class RecordBuffer:
    """Fixed-capacity ring of records ``{name: array of fixed shape/dtype}`` in this process's memory."""

    def __init__(self, spec: Mapping[str, tuple], capacity: int):
        if capacity < 2:
            raise ValueError(f"record buffer capacity must be >= 2, got {capacity}")
        self.spec = normalize_spec(spec)
        self.capacity = capacity
        self._fields = {name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in self.spec.items()}
        self._count = 0

    @property
    def count(self) -> int:
        """Total number of records ever put."""
        return self._count

    def put(self, record: Mapping[str, Any]) -> None:
        """Append one record (every field of the spec)."""
        check_record_keys(self._fields, record, "record buffer")
        slot = self._count % self.capacity
        for name, dst in self._fields.items():
            np.copyto(dst[slot, ...], record[name], casting="same_kind")
        self._count += 1

    def clear(self) -> None:
        """Forget every record (a new episode)."""
        self._count = 0

    def get(self) -> dict[str, np.ndarray]:
        """The latest record (copied); ``StaleDataError`` if nothing has been put yet."""
        return {name: value[0] for name, value in self.get_last_k(1).items()}

    def get_last_k(self, k: int) -> dict[str, np.ndarray]:
        """The newest ``k`` records, oldest first (``StaleDataError`` if fewer were put)."""
        if not 1 <= k <= self.capacity:
            raise ValueError(f"k must be in [1, {self.capacity}], got {k}")
        if self._count < k:
            raise StaleDataError(f"record buffer holds {self._count} records, {k} requested")
        return self._range(self._count - k, self._count)

    def get_since(self, t: float, key: str = "timestamp") -> dict[str, np.ndarray]:
        """All records still held whose ``key`` is strictly greater than ``t``, oldest first."""
        first = max(0, self._count - self.capacity)
        times = self._fields[key][np.arange(first, self._count) % self.capacity]
        return self._range(first + int(np.searchsorted(times, t, side="right")), self._count)

    def _range(self, first: int, last: int) -> dict[str, np.ndarray]:
        slots = np.arange(first, last) % self.capacity
        return {name: values[slots] for name, values in self._fields.items()}
