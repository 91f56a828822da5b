"""A POSIX shared-memory segment laid out as named, fixed-shape numpy arrays.

This is the storage under ``SharedMemoryRingBuffer`` and ``SharedMemoryQueue``. The creating process owns
the segment and unlinks it (on ``unlink()``, garbage collection, or interpreter exit); other processes
attach by name. A block pickles as a *handle* (segment name + layout), so passing one to a spawned process
costs one small pickle at start-up and the data path never pickles.

Leak safety: the creator registers a finalizer that unlinks at interpreter exit, and Python's
``multiprocessing.resource_tracker`` (shared with spawned children) unlinks segments left by a process that
was killed outright. All segment names start with ``SEGMENT_PREFIX`` so tests can check ``/dev/shm``.
"""

from __future__ import annotations

import uuid
import weakref
from multiprocessing import shared_memory
from typing import Mapping

import numpy as np

SEGMENT_PREFIX = "rstack_"
_ALIGN = 64  # cache-line alignment of every array, so fields never share a line

Layout = Mapping[str, tuple[tuple[int, ...], np.dtype]]


def normalize_spec(spec: Mapping[str, tuple]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Validate a record spec ``{name: (shape, dtype)}`` and normalise shapes/dtypes."""
    if not spec:
        raise ValueError("record spec must have at least one field")
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for name, entry in spec.items():
        try:
            shape, dtype = entry
            shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
            dtype = np.dtype(dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record spec field {name!r}: expected (shape, dtype), got {entry!r}") from exc
        if any(d <= 0 for d in shape):
            raise ValueError(f"record spec field {name!r}: shape {shape} must be positive")
        if dtype.hasobject:
            raise ValueError(f"record spec field {name!r}: object dtype cannot live in shared memory")
        out[str(name)] = (shape, dtype)
    return out


def check_record_keys(expected: Mapping[str, object], record: Mapping[str, object], where: str) -> None:
    """Raise ``KeyError`` naming missing/unexpected fields unless ``record`` has exactly the spec's fields."""
    if record.keys() != expected.keys():
        missing = sorted(set(expected) - set(record))
        extra = sorted(set(record) - set(expected))
        raise KeyError(f"record fields do not match the {where} spec: missing {missing}, unexpected {extra}")


def _offsets(layout: Layout) -> tuple[dict[str, int], int]:
    offsets, pos = {}, 0
    for name, (shape, dtype) in layout.items():
        pos = -(-pos // _ALIGN) * _ALIGN
        offsets[name] = pos
        pos += int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return offsets, max(pos, 1)


def _release(shm: shared_memory.SharedMemory, unlink: bool) -> None:
    try:
        shm.close()
    except BufferError:
        # A numpy view handed out by this process is still alive; the mapping goes when it does.
        pass
    if unlink:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


class SharedBlock:
    """Named numpy arrays in one shared-memory segment (see module docstring)."""

    def __init__(self, layout: Layout, name: str | None = None, create: bool = False):
        self.layout = dict(layout)
        offsets, size = _offsets(self.layout)
        if create:
            name = name or f"{SEGMENT_PREFIX}{uuid.uuid4().hex[:16]}"
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        else:
            if name is None:
                raise ValueError("attaching to a shared block needs its name")
            try:
                self._shm = shared_memory.SharedMemory(name=name, create=False)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"shared-memory segment {name!r} does not exist: its owner process has already released it"
                ) from None
        self.name = self._shm.name
        self.is_owner = create
        self.arrays: dict[str, np.ndarray] = {
            key: np.ndarray(shape, dtype=dtype, buffer=self._shm.buf, offset=offsets[key])
            for key, (shape, dtype) in self.layout.items()
        }
        if create:
            for arr in self.arrays.values():
                arr.fill(0)
        self._finalizer = weakref.finalize(self, _release, self._shm, create)

    def __reduce__(self):
        return (SharedBlock, (self.layout, self.name, False))

    def close(self) -> None:
        """Detach this process's mapping; the owner also unlinks the segment."""
        self.arrays = {}
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive
