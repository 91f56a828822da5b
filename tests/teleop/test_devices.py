"""Teleop devices: keyboard hold semantics, SpaceMouse adapter and its no-device error, scripted hand, process."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import pyspacemouse

from robot_stack.config import ConfigError
from robot_stack.hardware.robot.config import Workspace
from robot_stack.hardware.teleop import (
    KeyboardTeleop,
    ScriptedTeleop,
    SpaceMouseDevice,
    TeleopDeviceError,
    TeleopMapper,
    TeleopProcess,
    load_profile,
)
from robot_stack.runtime import ProcessFailed
from teleop_fakes import CountingDevice

WS = Workspace(min=(0.2, -0.4, 0.0), max=(0.8, 0.4, 0.6))
HOME = np.array([0.5, 0.0, 0.3, math.pi, 0.0, 0.0])


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_keyboard_keys_deflect_while_held_and_release_after_hold():
    clock = FakeClock()
    kb = KeyboardTeleop(load_profile("keyboard"), clock=clock)
    assert kb.feed("i") and kb.feed(ord("l")) and not kb.feed("z") and not kb.feed(-1)
    np.testing.assert_array_equal(kb.read().axes, [1, -1, 0, 0, 0, 0])
    clock.t += 0.5
    kb.feed("i")  # auto-repeat keeps +x held; -y is not repeated
    clock.t += 0.3
    state = kb.read()
    np.testing.assert_array_equal(state.axes, [1, 0, 0, 0, 0, 0])
    assert state.timestamp == clock.t
    kb.feed("g")
    assert kb.read().buttons[0]
    clock.t += 1.0
    assert not kb.read().axes.any() and not kb.read().buttons.any()
    kb.feed("i"), kb.feed("k")  # opposite keys cancel
    assert not kb.read().axes.any()


def test_keyboard_profile_validation():
    with pytest.raises(ConfigError, match="needs keys"):
        load_profile({"device": "keyboard"})
    with pytest.raises(ConfigError, match="single character"):
        load_profile({"device": "keyboard", "keys": {"up": [0, 1.0]}})
    with pytest.raises(ConfigError, match="axis_map must be a permutation"):
        load_profile({"device": "spacemouse", "axis_map": [0, 0, 1, 2, 3, 4]})
    with pytest.raises(ConfigError, match="unknown teleop profile 'nope'.*spacemouse"):
        load_profile("nope")
    with pytest.raises(ConfigError, match="buttons.0: must be one of"):
        load_profile({"device": "spacemouse", "buttons": {0: "launch"}})


def test_spacemouse_not_found_gives_permission_hint(monkeypatch):
    def no_device(**kwargs):
        raise RuntimeError("No connected or supported devices found.")

    monkeypatch.setattr(pyspacemouse, "open", no_device)
    with pytest.raises(TeleopDeviceError, match="(?s)No connected.*udev.*hidraw.*--teleop keyboard"):
        SpaceMouseDevice().open()


def test_spacemouse_state_conversion(monkeypatch):
    reports = [
        pyspacemouse.SpaceMouseState(t=1.0, x=0.5, y=-0.25, z=1.2, roll=0.1, pitch=0.2, yaw=-0.3,
                                     buttons=pyspacemouse.ButtonState([0, 1])),
    ]

    class FakeMouse:
        closed = False

        def read(self):
            return reports[-1]

        def close(self):
            FakeMouse.closed = True

    seen = {}
    monkeypatch.setattr(pyspacemouse, "open", lambda **kw: seen.update(kw) or FakeMouse())
    with SpaceMouseDevice() as mouse:
        state = mouse.read()
    assert seen["axis_convention"] == pyspacemouse.AxisConvention.HID_Z_UP and seen["nonblocking"]
    np.testing.assert_allclose(state.axes, [0.5, -0.25, 1.0, 0.1, 0.2, -0.3])  # clipped to [-1, 1]
    assert state.buttons[:3].tolist() == [False, True, False]
    assert FakeMouse.closed


def test_scripted_teleop_drives_the_mapper_to_the_policy_goal():
    mapper = TeleopMapper(load_profile("scripted"), WS, dt=0.1, mode="planar", planar_z=0.02)
    mapper.reset(HOME)
    goal = np.array([0.6, 0.1])
    hand = ScriptedTeleop(lambda: goal, mapper)
    for _ in range(8):  # 0.141 m at 0.25 m/s takes 0.57 s
        cmd = mapper.update(hand.read())
    np.testing.assert_allclose(cmd.target, [0.6, 0.1, 0.02, *HOME[3:]], atol=1e-12)
    still = ScriptedTeleop(lambda: None, mapper).read()
    assert not still.axes.any()


def test_teleop_process_publishes_device_state():
    with TeleopProcess(CountingDevice, rate_hz=200.0) as proc:
        deadline = time.monotonic() + 10.0
        while proc.state.count < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.state.count >= 20
        recent = proc.state.get_last_k(10)
        latest = proc.read()
    assert np.all(np.diff(recent["timestamp"]) > 0)
    assert np.all(np.diff(recent["axes"][:, 0]) > 0)  # every read of the device was published, in order
    np.testing.assert_array_equal(recent["axes"][:, 5], -0.5)
    assert recent["buttons"][:, 3].any() and not recent["buttons"][:, 3].all()
    assert latest.timestamp >= recent["timestamp"][-1]


def test_teleop_process_without_spacemouse_fails_with_the_hint():
    proc = TeleopProcess(SpaceMouseDevice)
    with pytest.raises(ProcessFailed, match="(?s)teleop.*udev"):
        proc.start(timeout=30)
