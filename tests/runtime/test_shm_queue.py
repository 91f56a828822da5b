import numpy as np
import pytest
from runtime_procs import QueueProducer

from robot_stack.runtime import QueueFull, SharedMemoryQueue

SPEC = {"producer": ((), np.int64), "seq": ((), np.int64), "payload": ((6,), np.float64)}


def record(producer: int, seq: int) -> dict:
    return {"producer": producer, "seq": seq, "payload": np.full(6, seq, np.float64)}


def test_fifo_order_get_k_and_full(no_leaked_segments):
    with SharedMemoryQueue.create(SPEC, capacity=3) as q:
        assert q.empty() and len(q) == 0
        assert q.get_all()["seq"].shape == (0,)
        for i in range(3):
            q.put(record(0, i))
        with pytest.raises(QueueFull, match="full"):
            q.put(record(0, 3))
        np.testing.assert_array_equal(q.get_k(2)["seq"], [0, 1])
        q.put(record(0, 3))
        q.put(record(0, 4))
        got = q.get_all()
        np.testing.assert_array_equal(got["seq"], [2, 3, 4])
        np.testing.assert_array_equal(got["payload"][:, 0], [2, 3, 4])
        assert q.empty()


def test_rejects_records_with_wrong_fields(no_leaked_segments):
    with SharedMemoryQueue.create(SPEC, capacity=2) as q:
        with pytest.raises(KeyError, match=r"unexpected \['extra'\]"):
            q.put({**record(0, 0), "extra": 1})
        assert q.empty()


def test_multiple_producer_processes_deliver_every_record_once_in_order(no_leaked_segments):
    n = 400
    with SharedMemoryQueue.create(SPEC, capacity=16) as q:
        producers = [QueueProducer(q, p, n) for p in range(2)]
        received: dict[int, list[int]] = {0: [], 1: []}
        import time

        for proc in producers:
            proc.start()
        try:
            deadline = time.monotonic() + 30
            while sum(map(len, received.values())) < 2 * n and time.monotonic() < deadline:
                got = q.get_all()
                for producer, seq, payload in zip(got["producer"], got["seq"], got["payload"]):
                    assert np.all(payload == seq)
                    received[int(producer)].append(int(seq))
                time.sleep(0.001)
        finally:
            for proc in producers:
                proc.stop()
        for p in (0, 1):
            assert received[p] == list(range(n))
