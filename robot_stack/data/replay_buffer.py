"""``ReplayBuffer``: episodes of per-step arrays in a zarr store (format 2, the Diffusion Policy layout).

Layout (readable by the original Diffusion Policy tooling)::

    replay_buffer.zarr/
      data/<key>          (N, ...)  every step of every episode, concatenated
      meta/episode_ends   (E,) int64  cumulative end index of each episode

Crash safety. ``meta/episode_ends`` is the commit record: a step belongs to the dataset only once an
episode end covers it. ``add_episode`` appends the rows to every ``data/`` array first, flushes them to
disk, and writes the new episode end last. zarr's local store replaces every chunk and metadata file by
write-to-temp-and-rename, so a chunk shared by the last complete episode and the new one is either the old
file or the new file (which carries the old rows unchanged) — never a torn mix. Therefore a crash, SIGKILL,
Ctrl-C or full disk at any point leaves the earlier episodes intact plus, at worst, trailing rows that no
episode covers; opening the buffer for writing truncates those (and says so), opening read-only ignores them.
A failed write (e.g. ``OSError`` ENOSPC) is rolled back at once. Ctrl-C/SIGTERM arriving during an update
is held until the update is complete (milliseconds): an interrupted zarr call keeps writing in zarr's I/O
thread and could land after the rollback.

``episode_ends`` slots beyond the current length are kept at zero (``drop_last_episode`` zeroes the slot
before shrinking), because zarr keeps stale values inside a partially used chunk: a crash between growing
``episode_ends`` and writing the new end then reads as end 0, which validation rejects, rather than as the
end of a previously dropped episode.

Corruption is not an interruption. An interrupted write leaves only zeroed slots after the last valid end
(and uncovered rows); an end that does not increase, or that points past the data, was never written by
this code: every open refuses such a store (``CorruptReplayBuffer``, naming the entry) and no row is
truncated, so nothing is lost before a person has looked (``robot-stack dataset check``).

One writer at a time: a write-mode open takes an exclusive lock file inside the store.

The original Diffusion Policy ``ReplayBuffer``'s commonly used API works too, with its semantics:
an in-memory ("numpy") backend (``create_empty_numpy``, ``copy_from_path``/``copy_from_store`` load complete
episodes into memory, ``save_to_path``/``save_to_store`` write them out through the crash-safe path above),
``create_from_path``, dict-like access (``keys()``, ``values()``, ``items()``, ``buffer[key]``, ``data``, ``meta``,
``in``), ``get_steps_slice``, ``get_episode_idxs``, ``extend``, ``drop_episode``, ``pop_episode``,
``chunk_size``/``get_chunks``/``get_compressors``, per-key ``chunks``/``compressors`` for new arrays, and
in-place ``set_chunks``/``set_compressors`` (on-disk buffers, as in the original).
Arrays are only ever handed out for complete episodes: ``buffer[key]`` never shows rows of an interrupted one.

Rechunking/recompressing in place is crash-safe too (the original moves the array aside and copies it back,
so a crash mid-copy loses it): the new array is written and flushed in ``.rewrite/<key>`` outside the group,
then swapped in by two renames (old -> ``.rewrite/<key>.old``, new -> ``data/<key>``). A crash leaves the
old array in place, or both complete arrays; a write-mode open finishes or undoes the swap, a read-only open
of a buffer caught between the two renames says so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import numpy as np
import zarr

from robot_stack.config import ConfigError

log = logging.getLogger(__name__)

OpenMode = Literal["r", "r+", "a"]

# Rows per chunk are chosen so a chunk holds about this many bytes: whole-episode reads touch few files,
# and rewriting the chunk shared with the previous episode stays cheap.
_CHUNK_BYTES = 1 << 20
_ENDS_CHUNK = 1024
_LOCK_NAME = ".writer.lock"
_REWRITE_DIR = ".rewrite"  # set_chunks/set_compressors build new arrays here (outside the zarr group)


def resolve_compressor(compressor: Any = "default") -> Any:
    """The original's compressor names: ``"default"`` (Blosc lz4, level 5, no shuffle), ``"disk"`` (Blosc zstd,
    level 5, bit shuffle); a numcodecs codec or None is returned as is."""
    import numcodecs

    if compressor == "default":
        return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
    if compressor == "disk":
        return numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)
    return compressor


def _compressor_options(key: str, compressors: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """``create_array`` options for ``key``'s compressor: none given (no mapping, or the key not in it) keeps
    zarr's default; a name or codec is resolved; an explicit None stores the array uncompressed."""
    if compressors is None or (isinstance(compressors, Mapping) and key not in compressors):
        return {}
    codec = resolve_compressor(compressors[key] if isinstance(compressors, Mapping) else compressors)
    return {"compressors": None if codec is None else [codec]}


class ReplayBufferError(ConfigError):
    """The store is not a replay buffer, is locked by another writer, or an episode is malformed."""


class CorruptReplayBuffer(ReplayBufferError):
    """``meta/episode_ends`` is inconsistent in a way no interrupted write leaves; nothing was changed."""


class EpisodeWriteError(OSError):
    """Writing an episode failed (e.g. disk full); the buffer still holds every earlier episode."""


class ReplayBuffer:
    """Episodes of per-step arrays in a zarr v2 store; see the module docstring for the crash guarantees."""

    def __init__(self, path: Path, group: zarr.Group, writable: bool, lock_fd: int | None):
        """Use ``ReplayBuffer.create`` or ``ReplayBuffer.open``."""
        self.path = path
        self.writable = writable
        self._group = group
        self._lock_fd = lock_fd
        self._data = group["data"]
        self._ends_array = group["meta/episode_ends"]
        self._ends = np.zeros(0, dtype=np.int64)
        self._recover()

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, overwrite: bool = False) -> "ReplayBuffer":
        """Create an empty buffer at ``path`` (refuses to replace an existing one unless ``overwrite``)."""
        path = Path(path)
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            if not overwrite:
                raise ReplayBufferError(f"{path} already exists; open it to append, or choose another path")
            _unlock(_lock(path))  # refuse to wipe a buffer that another process is writing
        group = zarr.open_group(str(path), mode="w", zarr_format=2)
        group.create_group("data")
        group.create_group("meta").create_array(
            "episode_ends", shape=(0,), chunks=(_ENDS_CHUNK,), dtype=np.int64, fill_value=0
        )
        lock_fd = _lock(path)
        return cls(path, group, writable=True, lock_fd=lock_fd)

    @classmethod
    def open(cls, path: str | Path, mode: OpenMode = "r") -> "ReplayBuffer":
        """Open an existing buffer: ``'r'`` read-only, ``'r+'`` read/write, ``'a'`` read/write creating it if missing.

        A write-mode open recovers from an interrupted write (truncating rows of an incomplete episode and
        logging it); a read-only open just ignores such rows.
        """
        path = Path(path)
        if mode not in ("r", "r+", "a"):
            raise ValueError(f"mode must be 'r', 'r+' or 'a', got {mode!r}")
        if not path.exists():
            if mode == "a":
                return cls.create(path)
            raise ReplayBufferError(f"no replay buffer at {path}")
        writable = mode != "r"
        lock_fd = _lock(path) if writable else None
        try:
            _settle_rewrite(path, writable)
            group = zarr.open_group(str(path), mode="r+" if writable else "r", zarr_format=2)
            if "data" not in group or "meta/episode_ends" not in group:
                raise ReplayBufferError(f"{path} is not a replay buffer (needs data/ and meta/episode_ends)")
            return cls(path, group, writable=writable, lock_fd=lock_fd)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            _unlock(lock_fd)
            if isinstance(exc, ReplayBufferError):
                raise
            raise ReplayBufferError(f"{path} is not a readable zarr v2 replay buffer: {exc}") from None
        except BaseException:
            _unlock(lock_fd)
            raise

    @classmethod
    def create_from_path(cls, path: str | Path, mode: str = "r") -> "ReplayBuffer":
        """The original's name for opening an on-disk buffer (``mode`` ``'r'``, ``'r+'``, ``'a'``; ``'w'`` creates
        a new one, replacing what is there)."""
        if mode == "w":
            return cls.create(path, overwrite=True)
        return cls.open(path, mode)  # type: ignore[arg-type]

    @classmethod
    def create_empty_numpy(cls) -> "ReplayBuffer":
        """An empty in-memory buffer (the original's numpy backend); ``save_to_path`` writes it to disk."""
        return _MemoryReplayBuffer({}, np.zeros(0, dtype=np.int64))

    @classmethod
    def copy_from_path(cls, path: str | Path, keys: Sequence[str] | None = None, **_: Any) -> "ReplayBuffer":
        """Load the complete episodes of the on-disk buffer at ``path`` (``keys`` only, if given) into memory."""
        with cls.open(path, "r") as source:
            return source._to_memory(keys)

    @classmethod
    def copy_from_store(cls, store: Any, keys: Sequence[str] | None = None, **_: Any) -> "ReplayBuffer":
        """Like ``copy_from_path`` for a zarr store or group (e.g. ``zarr.open(path).store``)."""
        group = store if isinstance(store, zarr.Group) else zarr.open_group(store, mode="r", zarr_format=2)
        if "data" not in group or "meta/episode_ends" not in group:
            raise ReplayBufferError(f"{store} is not a replay buffer (needs data/ and meta/episode_ends)")
        source = cls(Path(str(getattr(group.store, "root", "<store>"))), group, writable=False, lock_fd=None)
        return source._to_memory(keys)

    def _to_memory(self, keys: Sequence[str] | None) -> "ReplayBuffer":
        return _MemoryReplayBuffer(self._rows(slice(0, self.n_steps), keys, False), self._ends.copy(), dict(self.attrs))

    def save_to_path(self, path: str | Path, chunks: Mapping[str, tuple] | None = None,
                     compressors: Mapping[str, Any] | str | None = None, if_exists: str = "replace",
                     **_: Any) -> Path:
        """Write the complete episodes to a new on-disk buffer at ``path`` (replacing one there unless
        ``if_exists`` is not ``"replace"``), episode by episode through the crash-safe ``add_episode``."""
        with ReplayBuffer.create(path, overwrite=if_exists == "replace") as out:
            out.attrs.update(dict(self.attrs))
            for i in range(self.n_episodes):
                out.add_episode(self.get_episode(i), chunks=chunks, compressors=compressors)
        return Path(path)

    def save_to_store(self, store: Any, **kwargs: Any) -> Any:
        """``save_to_path`` for a zarr local store (its ``root`` folder)."""
        root = getattr(store, "root", store)
        self.save_to_path(Path(str(root)), **kwargs)
        return store

    def close(self) -> None:
        """Release the writer lock (the store itself needs no closing)."""
        _unlock(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> "ReplayBuffer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------------------
    @property
    def attrs(self) -> Any:
        """The store's zarr attributes (JSON): dataset-level metadata such as per-episode scene seeds."""
        return self._group.attrs

    @property
    def n_episodes(self) -> int:
        """Number of complete episodes."""
        return len(self._ends)

    @property
    def n_steps(self) -> int:
        """Number of steps in complete episodes."""
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def stored_rows(self) -> int:
        """Rows in the longest ``data/`` array: more than ``n_steps`` after an interrupted episode."""
        return max((self._data[k].shape[0] for k in self.keys()), default=0)

    @property
    def episode_ends(self) -> np.ndarray:
        """(E,) int64 cumulative end index of each episode (a copy)."""
        return self._ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        """(E,) int64 number of steps of each episode."""
        return np.diff(self._ends, prepend=0)

    def keys(self) -> list[str]:
        """Sorted names of the per-step arrays under ``data/``."""
        return sorted(self._data.array_keys())

    def get_episode_slice(self, index: int) -> slice:
        """Row range of episode ``index`` (negative counts from the end) in the ``data/`` arrays."""
        i = self._episode_index(index)
        start = int(self._ends[i - 1]) if i > 0 else 0
        return slice(start, int(self._ends[i]))

    def get_episode(self, index: int, keys: list[str] | None = None, copy: bool = False) -> dict[str, np.ndarray]:
        """All per-step arrays of episode ``index`` (or only ``keys``), read from disk (``copy``: never views
        of an in-memory buffer)."""
        return self._rows(self.get_episode_slice(index), keys, copy)

    def get_steps_slice(self, start: int, stop: int, step: int | None = None, copy: bool = False) -> dict[str, np.ndarray]:
        """Rows ``start:stop:step`` of every array, within the complete episodes."""
        return self._rows(slice(*slice(start, stop, step).indices(self.n_steps)), None, copy)

    def _rows(self, rows: slice, keys: Sequence[str] | None, copy: bool) -> dict[str, np.ndarray]:
        """``rows`` of the arrays ``keys`` (all when None); ``KeyError`` naming a missing one."""
        available = self.keys()
        names = available if keys is None else list(keys)
        missing = [k for k in names if k not in available]
        if missing:
            raise KeyError(f"no data/{missing[0]} in {self.path}; keys are {available}")
        return {k: np.array(self._array(k)[rows], copy=True) if copy else np.asarray(self._array(k)[rows])
                for k in names}

    def get_episode_idxs(self) -> np.ndarray:
        """(N,) int64: the episode index of every step."""
        return np.repeat(np.arange(self.n_episodes, dtype=np.int64), self.episode_lengths)

    @property
    def backend(self) -> str:
        """``"zarr"`` (on disk) or ``"numpy"`` (in memory), as in the original."""
        return "zarr"

    def __getitem__(self, key: str) -> Any:
        """The array ``data/<key>`` over the complete episodes (a zarr array on disk, loaded only when a
        trailing interrupted episode must be cut off)."""
        if key not in self.keys():
            raise KeyError(f"no data/{key} in {self.path}; keys are {self.keys()}")
        arr = self._array(key)
        return arr if arr.shape[0] == self.n_steps else np.asarray(arr[: self.n_steps])

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def values(self) -> list[Any]:
        return [self[k] for k in self.keys()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self[k]) for k in self.keys()]

    @property
    def data(self) -> dict[str, Any]:
        """``{key: buffer[key]}`` (the original's ``data`` group, complete episodes only)."""
        return dict(self.items())

    @property
    def meta(self) -> dict[str, np.ndarray]:
        """``{"episode_ends": ...}`` (the original's ``meta`` group)."""
        return {"episode_ends": self.episode_ends}

    @property
    def chunk_size(self) -> int | None:
        """Rows per chunk of the first array (None in memory or when empty)."""
        keys = self.keys()
        return int(self._array(keys[0]).chunks[0]) if keys else None

    def get_chunks(self) -> dict[str, tuple[int, ...]]:
        """Chunk shape of every array."""
        return {k: tuple(self._array(k).chunks) for k in self.keys()}

    def get_compressors(self) -> dict[str, Any]:
        """Compressor of every array (numcodecs codecs, None if uncompressed)."""
        out = {}
        for k in self.keys():
            codecs = self._array(k).compressors
            out[k] = codecs[0] if codecs else None
        return out

    def _array(self, key: str) -> Any:
        return self._data[key]

    def set_chunks(self, chunks: Mapping[str, tuple]) -> None:
        """Rechunk arrays in place (``key -> chunk shape``); arrays whose chunks already match are left alone.
        Keys the buffer does not hold are skipped, as in the original, with a warning."""
        self._require_writable()
        for key, value in self._known(chunks, "set_chunks").items():
            arr = self._data[key]
            shape = tuple(int(c) for c in value)
            if len(shape) != arr.ndim or min(shape, default=1) <= 0:
                raise ReplayBufferError(f"data/{key}: chunks {tuple(value)} do not fit its {arr.ndim}-d shape {arr.shape}")
            if shape != tuple(arr.chunks):
                self._rewrite(key, shape, self.get_compressors()[key])

    def set_compressors(self, compressors: Mapping[str, Any]) -> None:
        """Recompress arrays in place (``key -> codec``, ``"default"``/``"disk"`` or None for uncompressed);
        arrays already using that compressor are left alone. Unknown keys are skipped with a warning."""
        self._require_writable()
        for key, value in self._known(compressors, "set_compressors").items():
            codec = resolve_compressor(value)
            if codec != self.get_compressors()[key]:
                self._rewrite(key, tuple(self._data[key].chunks), codec)

    def _known(self, per_key: Mapping[str, Any], what: str) -> dict[str, Any]:
        unknown = sorted(set(per_key) - set(self.keys()))
        if unknown:
            log.warning("%s: %s skips %s: no such array (arrays: %s)", self.path, what, unknown, self.keys())
        return {k: v for k, v in per_key.items() if k not in unknown}

    def _rewrite(self, key: str, chunks: tuple[int, ...], codec: Any) -> None:
        """Replace ``data/<key>`` by a copy with ``chunks`` and ``codec`` (see the module docstring)."""
        old = self._data[key]
        work = self.path / _REWRITE_DIR
        new_path, old_path = work / key, work / f"{key}.old"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        with _deferred_interrupts():
            try:
                new = zarr.create_array(str(new_path), shape=old.shape, chunks=chunks, dtype=old.dtype,
                                        fill_value=old.fill_value, zarr_format=2,
                                        compressors=None if codec is None else [codec])
                new.attrs.update(dict(old.attrs))
                _write_rows(new, 0, old[:])
                for path in sorted(new_path.rglob("*")):
                    fsync_path(path)
                fsync_path(new_path)
                fsync_path(work)
            except BaseException as exc:
                shutil.rmtree(work, ignore_errors=True)
                if isinstance(exc, OSError):
                    raise EpisodeWriteError(f"rewriting data/{key} failed ({exc}); {self.path} is unchanged") from exc
                raise
            current = self.path / "data" / key
            os.rename(current, old_path)
            os.rename(new_path, current)
            fsync_path(self.path / "data")
            fsync_path(work)
            shutil.rmtree(work)
        log.info("%s: data/%s now has chunks %s, compressor %s", self.path, key, chunks, codec)

    # -- writing -----------------------------------------------------------------------------------------
    def extend(self, data: Mapping[str, np.ndarray]) -> int:
        """The original's name for ``add_episode``."""
        return self.add_episode(data)

    def drop_episode(self) -> None:
        """The original's name for ``drop_last_episode``."""
        self.drop_last_episode()

    def pop_episode(self) -> dict[str, np.ndarray]:
        """Remove the last episode and return its arrays."""
        episode = self.get_episode(-1, copy=True)
        self.drop_last_episode()
        return episode

    def add_episode(self, data: Mapping[str, np.ndarray], chunks: Mapping[str, tuple] | None = None,
                    compressors: Mapping[str, Any] | str | None = None) -> int:
        """Append one episode (``key -> (T, ...)`` arrays, same ``T``) atomically; returns its index.

        On any failure (``OSError`` such as a full disk raises ``EpisodeWriteError``; ``KeyboardInterrupt``
        propagates) the partial rows are rolled back as far as possible and every earlier episode is intact.
        """
        self._require_writable()
        episode = self._validate_episode(data)
        index, start = self.n_episodes, self.n_steps
        end = start + len(next(iter(episode.values())))
        with _deferred_interrupts():
            try:
                arrays = self._prepare_arrays(episode, chunks or {}, compressors)
                for key, values in episode.items():
                    arrays[key].resize((end, *values.shape[1:]))
                    _write_rows(arrays[key], start, values)
                for key in episode:
                    self._fsync_rows(arrays[key], start, end)
                # Commit point: the episode exists once its end is on disk.
                self._ends_array.resize((index + 1,))
                self._ends_array[index] = end
                self._fsync_rows(self._ends_array, index, index + 1)
            except BaseException as exc:
                self._rollback(index, start)
                if isinstance(exc, OSError):
                    reason = "disk full" if exc.errno == errno.ENOSPC else str(exc)
                    raise EpisodeWriteError(
                        f"episode {index} was lost ({reason}); the {self.n_episodes} episode(s) saved before it "
                        f"in {self.path} are intact"
                    ) from exc
                raise
            self._ends = np.append(self._ends, np.int64(end))
        return index

    def drop_last_episode(self) -> None:
        """Remove the last episode (its rows are truncated from every ``data/`` array)."""
        self._require_writable()
        if not self.n_episodes:
            raise IndexError(f"{self.path} has no episode to drop")
        last = self.n_episodes - 1
        start = int(self._ends[last - 1]) if last > 0 else 0
        with _deferred_interrupts():
            # Zero the slot first (see module docstring): from here on the episode is gone even after a crash.
            self._ends_array[last] = 0
            self._ends_array.resize((last,))
            self._ends = self._ends[:last].copy()
            for key in self.keys():
                arr = self._data[key]
                arr.resize((start, *arr.shape[1:]))

    # -- internals ---------------------------------------------------------------------------------------
    def _episode_index(self, index: int) -> int:
        n = self.n_episodes
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"episode {index} out of range: {self.path} has {n} episode(s)")
        return i

    def _require_writable(self) -> None:
        if not self.writable:
            raise ReplayBufferError(f"{self.path} is open read-only; open it with mode 'r+' or 'a' to write")

    def _validate_episode(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not data:
            raise ReplayBufferError("an episode needs at least one data key")
        episode = {str(k): np.asarray(v) for k, v in data.items()}
        lengths = {k: (v.shape[0] if v.ndim else None) for k, v in episode.items()}
        if any(n is None for n in lengths.values()) or len(set(lengths.values())) != 1:
            raise ReplayBufferError(f"every episode array needs the same number of steps (first axis), got {lengths}")
        if not next(iter(lengths.values())):
            raise ReplayBufferError("refusing to add an empty episode (0 steps)")
        existing = set(self.keys())
        if self.n_episodes and existing != set(episode):
            raise ReplayBufferError(
                f"episode keys must match the buffer's: missing {sorted(existing - set(episode))}, "
                f"unexpected {sorted(set(episode) - existing)}"
            )
        for key, values in episode.items():
            if values.dtype.hasobject:
                raise ReplayBufferError(f"data/{key}: object arrays cannot be stored; convert to a numeric dtype")
            if key not in existing or not self.n_episodes:
                continue
            arr = self._array(key)
            if values.shape[1:] != arr.shape[1:]:
                raise ReplayBufferError(f"data/{key}: step shape {values.shape[1:]} does not match the buffer's {arr.shape[1:]}")
            if not np.can_cast(values.dtype, arr.dtype, casting="same_kind"):
                raise ReplayBufferError(f"data/{key}: cannot store {values.dtype} values in a {arr.dtype} array")
        return episode

    def _prepare_arrays(self, episode: dict[str, np.ndarray], chunks: Mapping[str, tuple],
                        compressors: Mapping[str, Any] | str | None) -> dict[str, zarr.Array]:
        """The target array of every key, creating arrays while the buffer is still empty (with ``chunks`` /
        ``compressors`` per key where given, the original's way)."""
        if not self.n_episodes:  # arrays left by an interrupted first episode are replaced if they differ
            for key in self.keys():
                arr, new = self._data[key], episode.get(key)
                if new is None or arr.shape[1:] != new.shape[1:] or arr.dtype != new.dtype:
                    del self._data[key]
        arrays = {}
        for key, values in episode.items():
            if key not in self._data:
                row_bytes = max(1, values[0].nbytes)
                rows = int(max(1, min(_CHUNK_BYTES // row_bytes, 1 << 17)))
                self._data.create_array(
                    key, shape=(0, *values.shape[1:]), chunks=tuple(chunks.get(key, (rows, *values.shape[1:]))),
                    dtype=values.dtype, **_compressor_options(key, compressors),
                )
            arrays[key] = self._data[key]
        return arrays

    def _rollback(self, index: int, start: int) -> None:
        """Undo a failed ``add_episode`` as far as the disk allows, then resync with what is on disk."""
        try:
            if self._ends_array.shape[0] > index:
                self._ends_array[index:] = 0
                self._ends_array.resize((index,))
            for key in self.keys():
                arr = self._data[key]
                if arr.shape[0] > start:
                    arr.resize((start, *arr.shape[1:]))
        except BaseException as exc:  # noqa: BLE001 - e.g. still no space; the next open recovers
            log.warning("could not fully roll back the failed episode in %s (%s); it will be recovered on the next open", self.path, exc)
        self._load_ends(log_recovery=False)

    def _recover(self) -> None:
        """Validate the store; in write mode, remove leftovers of an interrupted write."""
        raw_len, dropped_rows = self._load_ends(log_recovery=True)
        if not self.writable:
            return
        valid = self.n_episodes
        if raw_len > valid:
            self._ends_array[valid:] = 0
            self._ends_array.resize((valid,))
        for key in self.keys():
            arr = self._data[key]
            if arr.shape[0] > self.n_steps:
                arr.resize((self.n_steps, *arr.shape[1:]))
        for partial in self.path.rglob("*.partial"):  # temp files of a write killed mid-chunk
            partial.unlink(missing_ok=True)
        if raw_len > valid or dropped_rows:
            log.warning("%s: recovered to the last complete episode (%d episodes, %d steps)", self.path, valid, self.n_steps)

    def _load_ends(self, log_recovery: bool) -> tuple[int, int]:
        """Read the committed episode ends; returns (stored length, rows beyond the last complete episode)."""
        raw = np.asarray(self._ends_array[:], dtype=np.int64)
        lengths = [self._data[k].shape[0] for k in self.keys()]
        limit = min(lengths) if lengths else 0
        valid = 0
        previous = 0
        for end in raw:  # the longest prefix of strictly increasing ends that the data covers
            if end <= previous or end > limit:
                break
            previous = int(end)
            valid += 1
        bad = np.flatnonzero(raw[valid:])
        if bad.size:  # an interrupted write leaves only zeroed slots behind the last valid end
            i = valid + int(bad[0])
            if i > valid:
                why = f"after the unwritten entry {valid}"
            elif raw[i] <= previous:
                why = f"not after the previous end {previous}"
            else:
                why = f"past the end of the data ({limit} rows)"
            raise CorruptReplayBuffer(
                f"{self.path}/meta/episode_ends is corrupt: entry {i} is {int(raw[i])}, {why}; this is not an "
                "interrupted write, so nothing was changed (inspect it with `robot-stack dataset check`)")
        self._ends = raw[:valid].copy()
        extra = max(lengths, default=0) - self.n_steps
        if log_recovery and (valid < len(raw) or extra):
            action = "ignoring" if not self.writable else "discarding"
            log.warning(
                "%s: an earlier write was interrupted; %s %d incomplete episode record(s) and %d trailing row(s)",
                self.path, action, len(raw) - valid, extra,
            )
        return len(raw), extra

    def _fsync_rows(self, arr: zarr.Array, start: int, stop: int) -> None:
        """Flush the chunk files holding rows ``start:stop`` and the array metadata to stable storage."""
        folder = self.path / arr.path
        rows = arr.chunks[0]
        tail = [".0"] * (arr.ndim - 1)
        names = [".zarray"] + [str(c) + "".join(tail) for c in range(start // rows, (stop - 1) // rows + 1)]
        for name in names:
            fsync_path(folder / name)
        fsync_path(folder)


class _MemoryReplayBuffer(ReplayBuffer):
    """The in-memory ("numpy") backend: the same interface, nothing on disk, no locks (see the module docstring)."""

    def __init__(self, data: dict[str, np.ndarray], ends: np.ndarray, attrs: dict | None = None):
        self.path = Path("<memory>")
        self.writable = True
        self._lock_fd = None
        self._memory = {k: np.asarray(v) for k, v in data.items()}
        self._ends = np.asarray(ends, dtype=np.int64).copy()
        self._attrs = dict(attrs or {})

    @property
    def attrs(self) -> dict:
        return self._attrs

    @property
    def backend(self) -> str:
        return "numpy"

    @property
    def stored_rows(self) -> int:
        return self.n_steps

    @property
    def chunk_size(self) -> int | None:
        return None

    def get_chunks(self) -> dict[str, tuple[int, ...]]:
        raise ReplayBufferError("an in-memory replay buffer has no chunks (save_to_path writes a chunked copy)")

    def get_compressors(self) -> dict[str, Any]:
        raise ReplayBufferError("an in-memory replay buffer has no compressors (save_to_path writes a compressed copy)")

    def set_chunks(self, chunks: Mapping[str, tuple]) -> None:
        self.get_chunks()  # raises: as in the original, only on-disk buffers are rechunked

    def set_compressors(self, compressors: Mapping[str, Any]) -> None:
        self.get_compressors()  # raises likewise

    def keys(self) -> list[str]:
        return sorted(self._memory)

    def _array(self, key: str) -> np.ndarray:
        return self._memory[key]

    def add_episode(self, data: Mapping[str, np.ndarray], chunks: Mapping[str, tuple] | None = None,
                    compressors: Mapping[str, Any] | str | None = None) -> int:
        episode = self._validate_episode(data)
        for key, values in episode.items():
            if key in self._memory and self.n_episodes:
                self._memory[key] = np.concatenate([self._memory[key], values.astype(self._memory[key].dtype)])
            else:
                self._memory[key] = values.copy()
        self._ends = np.append(self._ends, np.int64(self.n_steps + len(next(iter(episode.values())))))
        return self.n_episodes - 1

    def drop_last_episode(self) -> None:
        if not self.n_episodes:
            raise IndexError("the in-memory replay buffer has no episode to drop")
        self._ends = self._ends[:-1].copy()
        self._memory = {k: v[: self.n_steps].copy() for k, v in self._memory.items()}


def _write_rows(arr: zarr.Array, start: int, values: np.ndarray) -> None:
    """Write ``values`` at rows ``start:`` one chunk per call.

    A multi-chunk write runs its chunks concurrently, and when one fails the others keep going in zarr's
    I/O thread; one chunk at a time means nothing is still in flight when a failure reaches the caller.
    """
    rows = arr.chunks[0]
    a = start
    while a < start + len(values):
        b = min((a // rows + 1) * rows, start + len(values))
        arr[a:b] = values[a - start : b - start]
        a = b


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM until the block is done, then deliver them.

    An interrupt that abandons a zarr call does not stop the write: it finishes later in zarr's I/O thread,
    possibly after our rollback. Deferring keeps every store update whole (a save takes milliseconds).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread
        return
    received: list[tuple[int, object]] = []
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in handlers:
        signal.signal(sig, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for signum, frame in received[:1]:
            handler = handlers[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _settle_rewrite(path: Path, writable: bool) -> None:
    """Deal with what an interrupted ``set_chunks``/``set_compressors`` left in ``.rewrite/``: a new array
    that was never swapped in is discarded; a swap caught between its two renames is finished (the new array
    was complete and flushed before the first rename)."""
    work = path / _REWRITE_DIR
    if not work.is_dir():
        return
    for old in work.glob("*.old"):
        key = old.name[: -len(".old")]
        target = path / "data" / key
        if target.exists():
            continue
        if not writable:
            raise ReplayBufferError(f"{path}: rewriting data/{key} (set_chunks/set_compressors) was interrupted; "
                                    "open the buffer for writing once (ReplayBuffer.open(path, 'r+')) to finish it")
        os.rename(work / key, target)
        fsync_path(target.parent)
        log.warning("%s: finished the interrupted rewrite of data/%s", path, key)
    if writable:
        shutil.rmtree(work)


def fsync_path(path: Path) -> None:
    """Flush a file or folder to stable storage (a missing path is skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # an all-fill chunk is not stored at all
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(path: Path) -> int:
    """Take the exclusive writer lock of the store at ``path`` (created if needed)."""
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise ReplayBufferError(f"{path} is already open for writing by pid {holder}; close that first") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing releases the flock
