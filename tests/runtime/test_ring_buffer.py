import time

import numpy as np
import pytest
from runtime_procs import FRAME_SPEC, FrameReader, FrameWriter, assert_consistent, make_frame

from robot_stack.runtime import SharedMemoryRingBuffer, StaleDataError

SPEC = {"pose": ((6,), np.float64), "timestamp": ((), np.float64)}


def test_latest_and_last_k_in_time_order_across_wraparound(no_leaked_segments):
    with SharedMemoryRingBuffer.create(SPEC, capacity=5) as rb:
        for i in range(13):
            rb.put({"pose": np.full(6, i), "timestamp": float(i)})
        assert rb.count == 13
        assert rb.get()["timestamp"] == 12.0
        last = rb.get_last_k(4)
        np.testing.assert_array_equal(last["timestamp"], [9, 10, 11, 12])
        np.testing.assert_array_equal(last["pose"][:, 0], [9, 10, 11, 12])
        assert last["pose"].shape == (4, 6)


def test_get_since_returns_only_newer_records(no_leaked_segments):
    with SharedMemoryRingBuffer.create(SPEC, capacity=8) as rb:
        for i in range(20):
            rb.put({"pose": np.zeros(6), "timestamp": i * 0.1})
        since = rb.get_since(1.55)
        np.testing.assert_allclose(since["timestamp"], [1.6, 1.7, 1.8, 1.9])
        assert len(rb.get_since(5.0)["timestamp"]) == 0
        # Asking for everything yields what is still safely readable: capacity - 1 records.
        assert len(rb.get_since(-1.0)["timestamp"]) == 7


def test_results_are_copies_not_views(no_leaked_segments):
    with SharedMemoryRingBuffer.create(SPEC, capacity=4) as rb:
        rb.put({"pose": np.ones(6), "timestamp": 0.0})
        got = rb.get()
        rb.put({"pose": np.full(6, 7.0), "timestamp": 1.0})
        rb.put({"pose": np.full(6, 7.0), "timestamp": 1.0})
        rb.put({"pose": np.full(6, 7.0), "timestamp": 1.0})
        rb.put({"pose": np.full(6, 7.0), "timestamp": 1.0})
        np.testing.assert_array_equal(got["pose"], np.ones(6))


def test_errors_are_clear(no_leaked_segments):
    with SharedMemoryRingBuffer.create(SPEC, capacity=4) as rb:
        with pytest.raises(StaleDataError, match="holds 0 records"):
            rb.get()
        with pytest.raises(KeyError, match=r"missing \['timestamp'\]"):
            rb.put({"pose": np.zeros(6)})
        with pytest.raises(ValueError, match="k must be in"):
            rb.get_last_k(5)
        with pytest.raises(TypeError):
            rb.put({"pose": np.zeros(6, dtype=np.complex128), "timestamp": 0.0})
        with pytest.raises(ValueError):
            rb.put({"pose": np.zeros(5), "timestamp": 0.0})
    with pytest.raises(ValueError, match="object dtype"):
        SharedMemoryRingBuffer.create({"x": ((), object)}, 4)


def test_half_written_slot_is_never_returned(no_leaked_segments):
    with SharedMemoryRingBuffer.create(FRAME_SPEC, capacity=4) as rb:
        for i in range(3):
            rb.put(make_frame(i))
        rb._seq[0] = 2 * 4 + 1  # record 4 being written into record 0's slot
        np.testing.assert_array_equal(rb.get_last_k(2)["index"], [1, 2])
        with pytest.raises(RuntimeError, match="increase the capacity"):
            rb.get_last_k(3)


def test_cross_process_reads_are_never_torn(no_leaked_segments):
    """A spawned writer floods a small ring; readers in the parent and in another process verify checksums."""
    writer = FrameWriter(capacity=6)
    reader = FrameReader(writer.frames)
    with writer, reader:
        reads = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert_consistent(writer.frames.get_last_k(3))
            reads += 1
        written = writer.frames.count
        result = reader.result.get()
    assert written > 1000, "writer too slow for the test to mean anything"
    assert reads > 100
    assert result["reads"] > 100
    assert result["torn"] == 0
