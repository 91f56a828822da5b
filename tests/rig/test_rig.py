"""Rig files: every shipped rig loads; mistakes are named; a started sim rig runs all its devices."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_stack.config import ConfigError
from robot_stack.rig import load_rig, start_rig
from robot_stack.runtime import now
from robot_stack.runtime.scheduling import CPUS_ENV

CONFIGS = Path(__file__).resolve().parents[2] / "hardware_configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_rig_loads(path: Path) -> None:
    rig = load_rig(path)
    assert rig.name == path.stem


def test_sim_pusht_is_planar_at_the_push_height_with_two_views() -> None:
    rig = load_rig(CONFIGS / "sim_pusht.yaml")
    assert [c.name for c in rig.cameras] == ["top", "oblique"]
    assert rig.teleop.mode == "planar" and rig.planar_z == pytest.approx(rig.scene.push_z)
    lo, hi = np.array(rig.robot.workspace.min), np.array(rig.robot.workspace.max)
    assert lo[2] <= rig.planar_z <= hi[2]
    half = np.array(rig.scene.table_size) / 2
    assert np.all(lo[:2] <= np.array(rig.scene.table_center) - half + 1e-9)
    assert np.all(np.array(rig.scene.table_center) + half <= hi[:2] + 1e-9)


def _rig_data() -> dict:
    return yaml.safe_load((CONFIGS / "sim_pusht.yaml").read_text())


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("robot"), "no robot: section"),
        (lambda d: d.update(camera=[]), r"unknown section\(s\) \['camera'\]"),
        (lambda d: d["cameras"].append(dict(d["cameras"][0])), r"repeated: \['top'\]"),
        (lambda d: d["cameras"][0].update(name="wrist"), "'wrist' must be named after a scene view: top, oblique"),
        (lambda d: d["robot"].update(frequency="fast"), "robot"),
        (lambda d: d["scene"].update(success_threshold=2.0), "success_threshold"),
        (lambda d: d["teleop"].update(mode="3d"), "teleop"),
        (lambda d: d.update(cameras={"name": "top"}), "must be a list"),
        (lambda d: d.update(cpus={"control": [4096]}), r"cpus.control: core\(s\) \[4096\] do not exist here"),
        (lambda d: d.update(cpus={"servo": [0]}), "cpus.servo: unknown role"),
        (lambda d: d.update(cpus={"policy": []}), "cpus.policy: must be a non-empty list"),
        (lambda d: d.update(cpus=[0, 1]), "cpus: must map roles"),
    ],
)
def test_mistakes_are_named(edit, message: str) -> None:
    data = _rig_data()
    edit(data)
    with pytest.raises(ConfigError, match=message):
        load_rig(data)


def test_two_cameras_with_one_serial_are_refused() -> None:
    data = yaml.safe_load((CONFIGS / "sim_ur5.yaml").read_text())
    cam = {"driver": "realsense", "serial": "123456789012"}
    data["cameras"] = [{"name": "a", **cam}, {"name": "b", **cam}]
    with pytest.raises(ConfigError, match="same serial"):
        load_rig(data)


def test_started_sim_rig_runs_arm_scene_and_both_cameras() -> None:
    data = _rig_data()
    for cam in data["cameras"]:  # small and uncropped: this test is about the processes, not the images
        cam.update(resolution=[80, 60], fps=15)
        cam.pop("crop", None)
        cam.pop("output_resolution", None)
    core = min(os.sched_getaffinity(0))
    data["cpus"] = {"control": [core], "device": [core]}  # pinned: each process takes its role's cores
    rig = load_rig(data)
    assert rig.cpus == {"control": (core,), "device": (core,)}
    with start_rig(rig) as running:
        assert running.teleop is None and running.supervisor.running
        assert os.sched_getaffinity(running.robot.pid) == {core}
        assert all(os.sched_getaffinity(c.pid) == {core} for c in running.cameras)
        deadline = now() + 10.0
        while now() < deadline and not all(c.frames.count >= 3 for c in running.cameras):
            running.supervisor.check()
        assert [c.frames.count >= 3 for c in running.cameras] == [True, True]
        for cam in running.cameras:
            frame = cam.frames.get()
            assert frame["color"].shape == (60, 80, 3) and frame["color"].std() > 0  # a rendered scene, not blank
        assert running.robot.get_state()["actual_tcp_pose"][0] == pytest.approx(0.45, abs=0.01)
        assert running.scene.get_state() is not None
    assert not running.robot.is_alive() and not running.scene.is_alive()
    assert not any(c.is_alive() for c in running.cameras)
    assert CPUS_ENV not in os.environ  # the pinning ended with the rig


def test_a_shipped_rig_can_be_given_by_name() -> None:
    assert load_rig("sim_pusht") == load_rig(CONFIGS / "sim_pusht.yaml")
    with pytest.raises(ConfigError, match=r"unknown rig 'sim_pushtt'.*sim_pusht, sim_pusht_state, sim_ur5, sim_ur5_gripper, ur5_cb3_example, ur5_cb3_robotiq_example, ur5_cb3_wsg_example"):
        load_rig("sim_pushtt")
    with pytest.raises(ConfigError, match="rig file not found: nowhere/rig.yaml"):
        load_rig("nowhere/rig.yaml")


def test_a_robotiq_gripper_defaults_to_the_robots_address_and_preflight_probes_its_socket() -> None:
    from robot_stack.hardware.gripper.urcap_loopback import URCapLoopback
    from robot_stack.rig.preflight import check_gripper

    rig = load_rig(CONFIGS / "ur5_cb3_robotiq_example.yaml")
    assert rig.gripper.driver == "robotiq" and rig.gripper.host == rig.robot.robot_ip and rig.gripper.port == 63352
    with URCapLoopback(rig.gripper) as twin:
        check_gripper(rig.gripper.__class__(**{**rig.gripper.__dict__, "host": "127.0.0.1", "port": twin.port}))
        assert twin.requests == 1  # one status query
        port = twin.port
    with pytest.raises(ConfigError, match=rf"^gripper: Robotiq URCap socket at 127.0.0.1:{port} unreachable"):
        check_gripper(rig.gripper.__class__(**{**rig.gripper.__dict__, "host": "127.0.0.1", "port": port}))


def test_a_wsg_gripper_is_probed_over_its_own_protocol_by_preflight() -> None:
    from robot_stack.hardware.gripper.wsg_loopback import WSGLoopback
    from robot_stack.rig.preflight import check_gripper

    rig = load_rig(CONFIGS / "ur5_cb3_wsg_example.yaml")
    assert (rig.gripper.driver, rig.gripper.model, rig.gripper.port) == ("wsg", "wsg50", 1000)
    with WSGLoopback(rig.gripper) as twin:
        check_gripper(rig.gripper.__class__(**{**rig.gripper.__dict__, "host": "127.0.0.1", "port": twin.port}))
        assert twin.requests == 1  # one system-state query
        port = twin.port
    with pytest.raises(ConfigError, match=rf"^gripper: WSG gripper at 127.0.0.1:{port} unreachable"):
        check_gripper(rig.gripper.__class__(**{**rig.gripper.__dict__, "host": "127.0.0.1", "port": port}))


def test_a_bad_gripper_section_is_named() -> None:
    data = yaml.safe_load((CONFIGS / "sim_ur5_gripper.yaml").read_text())
    data["gripper"]["force"] = 500
    with pytest.raises(ConfigError, match=r"gripper.force must be in \(0, 235\]"):
        load_rig(data)
    data["gripper"] = [1]
    with pytest.raises(ConfigError, match="gripper: must be a mapping"):
        load_rig(data)


def test_a_started_gripper_rig_runs_the_gripper_process() -> None:
    rig = load_rig(CONFIGS / "sim_ur5_gripper.yaml")
    with start_rig(rig) as running:
        state = running.gripper.client.get_state()
        assert state["activated"] and state["width"] == pytest.approx(0.085)
        running.gripper.client.schedule_waypoint(0.0, now() + 0.2)  # close onto the 4 cm object
        deadline = now() + 10
        while now() < deadline and not running.gripper.client.get_state()["object_detected"]:
            time.sleep(0.01)
        state = running.gripper.client.get_state()
        assert state["object_detected"] and state["width"] == pytest.approx(0.04)
