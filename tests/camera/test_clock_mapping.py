"""Mapping device frame timestamps to the runtime clock."""

import time

import pytest

from robot_stack.hardware.camera.clock_mapping import FrameClock, WallToMonotonic


def test_wall_to_monotonic_matches_the_clocks():
    to_mono = WallToMonotonic()
    for _ in range(3):
        wall, mono = time.time(), time.monotonic()
        assert to_mono(wall) == pytest.approx(mono, abs=2e-3)


@pytest.mark.parametrize("domain", ["global_time", "system_time"])
def test_wall_clock_domains_map_to_the_capture_instant(domain):
    clock = FrameClock()
    exposure_mono = time.monotonic() - 0.040  # exposed 40 ms ago, arriving now
    exposure_wall_ms = (time.time() - 0.040) * 1000
    assert clock.capture_time(exposure_wall_ms, domain, time.monotonic()) == pytest.approx(exposure_mono, abs=2e-3)


def test_hardware_clock_keeps_the_smallest_transport_delay():
    clock = FrameClock()
    device_boot = 1000.0  # runtime time at which the device clock read 0
    delays = [0.012, 0.005, 0.020, 0.007]
    for k, delay in enumerate(delays):
        exposure = device_boot + 10.0 + k / 30
        mapped = clock.capture_time((exposure - device_boot) * 1000, "hardware_clock", exposure + delay)
        # Offset estimate = smallest delay seen so far (plus at most 100 ppm drift allowance).
        assert mapped - exposure == pytest.approx(min(delays[:k + 1]), abs=1e-4)


def test_hardware_clock_follows_drift_within_the_allowance():
    clock = FrameClock()
    # The device clock runs 50 ppm slow; every frame has the same 5 ms transport delay.
    for k in range(0, 600 * 30, 30):  # a frame per second for 10 minutes
        t = k / 30
        device_ms = t * (1 - 50e-6) * 1000
        mapped = clock.capture_time(device_ms, "hardware_clock", t + 0.005)
        assert mapped - t == pytest.approx(0.005, abs=1e-3)


def test_playback_is_rebased_to_arrival_keeping_recorded_spacing():
    clock = FrameClock(rebase=True)
    recorded_ms = 1.7e12  # another day's wall clock
    first = clock.capture_time(recorded_ms, "global_time", 50.0)
    second = clock.capture_time(recorded_ms + 33.3, "global_time", 50.5)
    assert first == 50.0
    assert second == pytest.approx(50.0333)


def test_unknown_domain_is_rejected():
    with pytest.raises(ValueError, match="unknown RealSense timestamp domain"):
        FrameClock().capture_time(0.0, "gps", 0.0)
