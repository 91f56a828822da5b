"""Benchmark: SharedMemoryRingBuffer put + get_last_k(2) across processes.

Scenarios (each a spawned writer process at a fixed rate, the reader in this process):
  * 1 and 4 camera streams of 480x640x3 uint8 at 30 Hz
  * a 6-DoF robot state stream at 500 Hz
Prints per-op median/p99 of `put` (measured in the writer), `get_last_k(2)` (measured in the reader) and
write->readable latency (reader sees record i; latency = now - record's put timestamp).

Copies per frame: one into shared memory (put), one out (get_last_k) — nothing else on the data path.

Usage: python benchmarks/ring_buffer.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robot_stack.runtime import DeviceProcess, SharedMemoryRingBuffer, now, precise_wait

CAMERA_SPEC = {"color": ((480, 640, 3), np.uint8), "timestamp": ((), np.float64), "put_time": ((), np.float64)}
STATE_SPEC = {
    "ActualTCPPose": ((6,), np.float64),
    "ActualQ": ((6,), np.float64),
    "ActualQd": ((6,), np.float64),
    "timestamp": ((), np.float64),
    "put_time": ((), np.float64),
}


class RateWriter(DeviceProcess):
    """Puts a record at ``rate_hz`` and publishes how long each put took (in ``put_time``)."""

    def __init__(self, name: str, spec: dict, rate_hz: float, capacity: int):
        super().__init__(name=name)
        self.buffer = self.own(SharedMemoryRingBuffer.create(spec, capacity))
        self.period = 1.0 / rate_hz

    def setup(self) -> None:
        rng = np.random.default_rng(0)
        self.record = {k: rng.integers(0, 255, shape).astype(dtype) for k, (shape, dtype) in self.buffer.spec.items()}
        self.put_cost = 0.0
        self.t_next = now()

    def step(self) -> None:
        precise_wait(self.t_next)
        self.t_next += self.period
        t = now()
        self.record["timestamp"] = t
        self.record["put_time"] = self.put_cost  # cost of the previous put, reported in-band
        self.buffer.put(self.record)
        self.put_cost = now() - t


def run(name: str, spec: dict, rate_hz: float, n_streams: int, seconds: float) -> None:
    writers = [RateWriter(f"{name}_{i}", spec, rate_hz, capacity=32) for i in range(n_streams)]
    for w in writers:
        w.start()
    get_costs, latencies, put_costs = [], [], []
    last_seen = [0] * n_streams
    try:
        t_end = now() + seconds
        while now() < t_end:
            for i, w in enumerate(writers):
                count = w.buffer.count
                if count < 2 or count == last_seen[i]:
                    continue
                t0 = now()
                rec = w.buffer.get_last_k(2)
                t1 = now()
                get_costs.append(t1 - t0)
                latencies.append(t1 - rec["timestamp"][-1])
                put_costs.append(rec["put_time"][-1])
                last_seen[i] = count
            time.sleep(0.0002)
    finally:
        for w in writers:
            w.stop()
    _print(f"{name} x{n_streams} @ {rate_hz:g} Hz", put_costs[1:], get_costs, latencies)


def _print(label: str, puts: list, gets: list, lats: list) -> None:
    def fmt(values: list) -> str:
        arr = np.asarray(values) * 1e6
        return f"median {np.median(arr):8.1f} us  p99 {np.percentile(arr, 99):8.1f} us"

    print(f"{label}  ({len(gets)} reads)")
    print(f"  put            {fmt(puts)}")
    print(f"  get_last_k(2)  {fmt(gets)}")
    print(f"  put->read lat  {fmt(lats)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each scenario")
    args = parser.parse_args()
    run("camera 480x640x3", CAMERA_SPEC, 30.0, 1, args.seconds)
    run("camera 480x640x3", CAMERA_SPEC, 30.0, 4, args.seconds)
    run("robot state 6-DoF", STATE_SPEC, 500.0, 1, args.seconds)


if __name__ == "__main__":
    main()
