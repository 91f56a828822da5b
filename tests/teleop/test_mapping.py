"""TeleopMapper on synthetic device states: deadzone, scaling, axis mapping and signs, modes, limits, buttons."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_stack.hardware.robot.config import Workspace
from robot_stack.hardware.teleop import TeleopMapper, TeleopState, load_profile

WS = Workspace(min=(0.2, -0.4, 0.0), max=(0.8, 0.4, 0.6))
HOME = np.array([0.5, 0.0, 0.3, math.pi, 0.0, 0.0])  # tool pointing down
DT = 0.1


def mapper(mode="6dof", planar_z=None, **profile):
    base = {"device": "spacemouse", "deadzone": 0.1, "max_pos_speed": 0.1, "max_rot_speed": 0.5}
    m = TeleopMapper(load_profile({**base, **profile}), WS, DT, mode=mode, planar_z=planar_z)
    m.reset(HOME)
    return m


def state(*axes, buttons=(), t=None):
    axes = list(axes) + [0.0] * (6 - len(axes))
    return TeleopState(axes, buttons, 0.0 if t is None else t)


def step(m, s, t=0.0):
    return m.update(s, t=t)


def test_deadzone_is_zero_inside_and_continuous_outside():
    m = mapper()
    shaped = [m.shape_axes([a, 0, 0, 0, 0, 0])[0] for a in (0.0, 0.05, 0.1, 0.1001, 0.55, 1.0, -0.55, -1.0, 1.7)]
    np.testing.assert_allclose(shaped, [0, 0, 0, 0.0001 / 0.9, 0.5, 1.0, -0.5, -1.0, 1.0], atol=1e-12)


def test_scaling_full_deflection_moves_max_speed_times_dt():
    m = mapper()
    cmd = step(m, state(1.0))
    np.testing.assert_allclose(cmd.target[:3], HOME[:3] + [0.1 * DT, 0, 0], atol=1e-12)
    np.testing.assert_allclose(cmd.target[3:], HOME[3:], atol=1e-12)
    for _ in range(9):  # one second at half deflection on -z: 0.1 m/s * 0.5... after the deadzone rescale
        cmd = step(m, state(0, 0, -0.55))
    assert cmd.target[2] == pytest.approx(HOME[2] - 0.9 * 0.05, abs=1e-9)


def test_rotation_integrates_base_frame_angular_velocity():
    m = mapper()
    for _ in range(10):  # 1 s of full +rz at 0.5 rad/s
        cmd = step(m, state(0, 0, 0, 0, 0, 1.0))
    delta = Rotation.from_rotvec(cmd.target[3:]) * Rotation.from_rotvec(HOME[3:]).inv()
    np.testing.assert_allclose(delta.as_rotvec(), [0, 0, 0.5], atol=1e-9)
    np.testing.assert_allclose(cmd.target[:3], HOME[:3])


def test_spacemouse_profile_axis_mapping_and_signs():
    """Operator facing the robot along +x: puck away -> +x, puck left -> +y, puck up -> +z, twist CCW -> +rz."""
    profile = load_profile("spacemouse")
    m = TeleopMapper(profile, WS, DT)
    m.reset(HOME)
    cases = {  # device axis at full deflection -> robot twist direction
        1: np.array([1, 0, 0, 0, 0, 0]),  # device +y (away)  -> robot +x
        0: np.array([0, -1, 0, 0, 0, 0]),  # device +x (right) -> robot -y
        2: np.array([0, 0, 1, 0, 0, 0]),  # device +z (up)    -> robot +z
        4: np.array([0, 0, 0, 1, 0, 0]),  # device pitch (about device y = base x) -> +rx
        3: np.array([0, 0, 0, 0, -1, 0]),  # device roll (about device x = base -y) -> -ry
        5: np.array([0, 0, 0, 0, 0, 1]),  # device yaw -> +rz
    }
    for device_axis, expected in cases.items():
        axes = np.zeros(6)
        axes[device_axis] = 1.0
        np.testing.assert_allclose(m.shape_axes(axes), expected, err_msg=f"device axis {device_axis}")
    cmd = m.update(state(0, 1.0), t=0.0)  # real integration, not just shaping
    assert cmd.target[0] > HOME[0] and cmd.target[1] == pytest.approx(HOME[1])


def test_custom_axis_sign_flips_direction():
    m = mapper(axis_sign=[-1, 1, 1, 1, 1, 1])
    assert step(m, state(1.0)).target[0] == pytest.approx(HOME[0] - 0.1 * DT)


def test_diagonal_is_no_faster_than_straight():
    m = mapper()
    cmd = step(m, state(1.0, 1.0, 1.0))
    assert np.linalg.norm(cmd.target[:3] - HOME[:3]) == pytest.approx(0.1 * DT)


def test_workspace_clamp_slides_along_the_wall():
    m = mapper(max_pos_speed=1.0)
    for _ in range(30):  # 3 m of travel at 45 degrees towards the +x/+y corner
        cmd = step(m, state(1.0, 1.0))
    np.testing.assert_allclose(cmd.target[:2], [0.8, 0.4])
    cmd = step(m, state(-1.0, 0.0))
    np.testing.assert_allclose(cmd.target[:2], [0.8 - 0.1, 0.4])  # moves off the wall at once


def test_planar_mode_keeps_height_and_orientation():
    m = mapper(mode="planar", planar_z=0.05)
    assert m.target[2] == 0.05
    for _ in range(5):
        cmd = step(m, state(1.0, -1.0, 1.0, 1.0, 1.0, 1.0))
    d = 5 * 0.1 * DT / math.sqrt(2)  # the other axes take nothing from the xy speed
    np.testing.assert_allclose(cmd.target, [0.5 + d, -d, 0.05, *HOME[3:]], atol=1e-12)
    with pytest.raises(Exception, match="planar_z"):
        mapper(mode="planar", planar_z=1.0)


def test_stale_and_non_finite_states_do_not_move():
    m = mapper()
    before = m.target.copy()
    assert np.array_equal(step(m, state(1.0, t=0.0), t=0.5).target, before)  # 0.5 s old
    assert np.array_equal(step(m, state(float("nan")), t=0.0).target, before)
    assert (m.n_stale, m.n_invalid) == (1, 1)
    assert not np.array_equal(step(m, state(1.0, t=0.0), t=0.05).target, before)  # fresh enough


def test_buttons_act_on_press_only():
    m = mapper(buttons={0: "record_toggle", 1: "gripper_toggle"})
    seq = [(), (0,), (0,), (), (1,), (1,), (), (1,)]
    events, gripper = [], []
    for pressed in seq:
        buttons = np.zeros(16, bool)
        buttons[list(pressed)] = True
        cmd = step(m, state(buttons=buttons))
        events.append(cmd.events)
        gripper.append(cmd.gripper)
    assert events == [(), ("record_toggle",), (), (), ("gripper_toggle",), (), (), ("gripper_toggle",)]
    assert gripper == [0, 0, 0, 0, 1, 1, 1, 0]


def test_gripper_open_close_on_press_and_a_continuous_width_while_held():
    m = mapper(buttons={0: "gripper_closing", 1: "gripper_opening", 2: "gripper_close", 3: "gripper_open",
                        4: "gripper_toggle"}, gripper_speed=0.4)

    def closure(*held, age=0.0):
        buttons = np.zeros(16, bool)
        buttons[list(held)] = True
        return step(m, state(buttons=buttons, t=0.0), t=age).gripper

    # closing while held: 0.4 strokes/s x 0.1 s per step; it stays where it is released
    assert [closure(0) for _ in range(3)] == pytest.approx([0.04, 0.08, 0.12])
    assert closure() == pytest.approx(0.12)
    assert closure(1) == pytest.approx(0.08)  # opening
    assert closure(0, 1) == pytest.approx(0.08)  # both held: no motion
    assert closure(1) == pytest.approx(0.04)
    assert closure(1, age=1.0) == pytest.approx(0.04)  # a reading 1 s old: the device stalled, no motion
    assert [closure(1) for _ in range(3)] == pytest.approx([0.0, 0.0, 0.0])  # clamped at open
    assert closure(2) == 1.0 and closure() == 1.0 and closure(3) == 0.0  # close / open on press
    assert closure(4) == 1.0 and closure() == 1.0 and closure(4) == 0.0  # toggle
    for _ in range(6):
        closure(0)
    assert closure(4) == 1.0  # a toggle from part-way (0.24 < 0.5) closes
    assert step(m, state()).gripper_closed


@pytest.mark.parametrize("profile_name", ["spacemouse", "keyboard", "scripted"])
def test_axes_toward_inverts_update(profile_name):
    """The scripted hand's deflection reproduces any reachable goal exactly, through any profile."""
    rng = np.random.default_rng(1)
    m = TeleopMapper(load_profile(profile_name), WS, DT)
    m.reset(HOME)
    p = m.profile
    for _ in range(20):
        step_pos = rng.uniform(-1, 1, 3) * p.max_pos_speed * DT / math.sqrt(3)
        step_rot = rng.uniform(-1, 1, 3) * p.max_rot_speed * DT / math.sqrt(3)
        goal = m.target.copy()
        goal[:3] += step_pos
        goal[3:] = (Rotation.from_rotvec(step_rot) * Rotation.from_rotvec(goal[3:])).as_rotvec()
        axes = m.axes_toward(goal)
        assert np.all(np.abs(axes) <= 1.0)
        cmd = m.update(TeleopState(axes, (), 0.0), t=0.0)
        np.testing.assert_allclose(cmd.target[:3], goal[:3], atol=1e-9)
        assert (Rotation.from_rotvec(cmd.target[3:]) * Rotation.from_rotvec(goal[3:]).inv()).magnitude() < 1e-9


def test_axes_toward_saturates_keeping_direction():
    m = mapper()
    far = HOME.copy()
    far[:2] += [0.3, 0.1]  # 3:1, far beyond one step
    cmd = m.update(TeleopState(m.axes_toward(far), (), 0.0), t=0.0)
    moved = cmd.target[:2] - HOME[:2]
    assert np.linalg.norm(moved) == pytest.approx(0.1 * DT)  # full speed
    assert moved[0] / moved[1] == pytest.approx(3.0)
    assert m.axes_toward(far[:2]).shape == (6,)  # xy-only goals keep z and orientation
