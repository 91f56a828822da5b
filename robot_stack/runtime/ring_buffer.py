"""``SharedMemoryRingBuffer``: one writer, many readers, fixed-shape records, across processes.

Consistency scheme (a per-slot seqlock)
--------------------------------------
Record number ``n`` (0, 1, 2, ...) lives in slot ``n % capacity``. Each slot has a sequence word:

* the writer sets ``seq[slot] = 2n + 1`` ("record n being written"), copies the fields in, then sets
  ``seq[slot] = 2n + 2`` ("record n complete"), and finally publishes ``count = n + 1``;
* a reader that wants records ``a..b`` checks that every slot's sequence equals ``2i + 2`` *before* it copies
  and *again after* it copies. If any check fails, the writer lapped the reader while it was copying (or the
  record is not finished yet) and the read is retried with fresh indices.

So a reader never returns a torn record, and the writer never waits for readers (a slow reader can only
make itself retry). Readers should ask for ``k`` well below ``capacity``: the oldest slot of a full window
is the next one to be overwritten. Ordering relies on stores becoming visible in program order, which holds
on x86-64 (TSO) for these aligned 8-byte numpy stores; on weakly ordered CPUs (ARM) the after-copy check
still catches laps but a reader could see fields before the sequence word — run the runtime on x86-64.

Copies: ``put`` copies each field once into shared memory; reads copy once out (``np.take`` into fresh
arrays), so callers own their results.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from robot_stack.runtime.shared_block import SharedBlock, check_record_keys, normalize_spec

# A reader retries when the writer laps it; this many consecutive laps means the buffer is far too small
# for the write rate (or the reader is starved), which is a configuration error worth surfacing.
_MAX_READ_RETRIES = 1000


class StaleDataError(RuntimeError):
    """No data, or no data fresh enough, is available (e.g. reading a ring buffer nothing was put into)."""


class SharedMemoryRingBuffer:
    """Fixed-capacity ring of records ``{name: array of fixed shape/dtype}`` in shared memory."""

    _HEADER = "__count__", "__seq__"

    def __init__(self, spec: Mapping[str, tuple], capacity: int, block: SharedBlock):
        self.spec = normalize_spec(spec)
        self.capacity = capacity
        self._block = block
        arrays = block.arrays
        self._count = arrays["__count__"]
        self._seq = arrays["__seq__"]
        self._fields = {name: arrays[name] for name in self.spec}

    @classmethod
    def create(cls, spec: Mapping[str, tuple], capacity: int) -> "SharedMemoryRingBuffer":
        """Allocate a new ring buffer; the calling process owns the segment and releases it on ``close``."""
        spec = normalize_spec(spec)
        if capacity < 2:
            raise ValueError(f"ring buffer capacity must be >= 2, got {capacity}")
        reserved = set(cls._HEADER) & set(spec)
        if reserved:
            raise ValueError(f"record spec uses reserved field names {sorted(reserved)}")
        layout = {"__count__": ((1,), np.dtype(np.int64)), "__seq__": ((capacity,), np.dtype(np.int64))}
        layout.update({name: ((capacity, *shape), dtype) for name, (shape, dtype) in spec.items()})
        return cls(spec, capacity, SharedBlock(layout, create=True))

    def __reduce__(self):
        return (SharedMemoryRingBuffer, (self.spec, self.capacity, self._block))

    @property
    def name(self) -> str:
        """Name of the underlying shared-memory segment."""
        return self._block.name

    @property
    def count(self) -> int:
        """Total number of records ever put."""
        return int(self._count[0])

    # -- writer ------------------------------------------------------------------------------------------
    def put(self, record: Mapping[str, Any]) -> None:
        """Append one record (every field of the spec, each broadcastable to its shape). Single writer."""
        check_record_keys(self._fields, record, "ring buffer")
        n = int(self._count[0])
        slot = n % self.capacity
        self._seq[slot] = 2 * n + 1
        for name, dst in self._fields.items():
            np.copyto(dst[slot, ...], record[name], casting="same_kind")
        self._seq[slot] = 2 * n + 2
        self._count[0] = n + 1

    # -- readers -----------------------------------------------------------------------------------------
    def get(self) -> dict[str, np.ndarray]:
        """The latest record (copied). Raises ``StaleDataError`` if nothing has been put yet."""
        return {name: value[0] for name, value in self.get_last_k(1).items()}

    def get_last_k(self, k: int) -> dict[str, np.ndarray]:
        """The newest ``k`` records, oldest first, each field shaped ``(k, *shape)``.

        Raises ``StaleDataError`` if fewer than ``k`` records were ever put, ``ValueError`` if ``k`` exceeds
        the capacity.
        """
        if not 1 <= k <= self.capacity:
            raise ValueError(f"k must be in [1, {self.capacity}], got {k}")
        for _ in range(_MAX_READ_RETRIES):
            n = self.count
            if n < k:
                raise StaleDataError(f"ring buffer {self.name} holds {n} records, {k} requested")
            out = self._read_range(n - k, n)
            if out is not None:
                return out
        raise RuntimeError(self._lapped_message(k))

    def get_since(self, t: float, key: str = "timestamp") -> dict[str, np.ndarray]:
        """All records still in the buffer whose ``key`` is strictly greater than ``t``, oldest first.

        ``key`` must be non-decreasing over records (a timestamp). May return zero records.
        """
        if key not in self._fields:
            raise KeyError(f"ring buffer has no field {key!r}; fields: {sorted(self._fields)}")
        for _ in range(_MAX_READ_RETRIES):
            n = self.count
            # Leave one slot of slack: the oldest slot is the next to be overwritten.
            first = max(0, n - self.capacity + 1)
            times = self._read_range(first, n, fields=(key,))
            if times is None:
                continue
            start = first + int(np.searchsorted(times[key], t, side="right"))
            out = self._read_range(start, n)
            if out is not None:
                return out
        raise RuntimeError(self._lapped_message(self.capacity))

    def _read_range(self, first: int, last: int, fields: tuple[str, ...] | None = None) -> dict[str, np.ndarray] | None:
        """Copy records ``first..last-1``; ``None`` if the writer overwrote any of them meanwhile."""
        indices = np.arange(first, last, dtype=np.int64)
        slots = indices % self.capacity
        expected = 2 * indices + 2
        if not np.array_equal(self._seq[slots], expected):
            return None
        names = fields or tuple(self._fields)
        out = {name: np.take(self._fields[name], slots, axis=0) for name in names}
        if not np.array_equal(self._seq[slots], expected):
            return None
        return out

    def _lapped_message(self, k: int) -> str:
        return (
            f"ring buffer {self.name}: the writer kept overwriting records while reading {k} of "
            f"{self.capacity}; increase the capacity"
        )

    # -- lifetime ----------------------------------------------------------------------------------------
    def close(self) -> None:
        """Detach from the segment; in the creating process this also unlinks it."""
        self._fields = {}
        self._count = self._seq = None  # type: ignore[assignment]
        self._block.close()

    def __enter__(self) -> "SharedMemoryRingBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordStream:
    """Accumulates the ``fields`` of a ring buffer's records published after ``t`` (poll often: the buffer is
    finite, so records overwritten between polls are missed)."""

    def __init__(self, buffer: SharedMemoryRingBuffer, t: float, fields: tuple[str, ...]):
        self.buffer, self.t = buffer, t
        self.fields = ("timestamp", *fields)
        self.parts: list[dict[str, np.ndarray]] = []

    def fetch(self) -> int:
        """Fetch the records published since the last fetch; returns how many."""
        new = self.buffer.get_since(self.t)
        if len(new["timestamp"]):
            self.parts.append({k: new[k] for k in self.fields})
            self.t = float(new["timestamp"][-1])
        return len(new["timestamp"])

    def poll(self) -> dict[str, np.ndarray]:
        """Fetch new records; return everything collected so far."""
        self.fetch()
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.fields} \
            if self.parts else {"timestamp": np.zeros(0)}
