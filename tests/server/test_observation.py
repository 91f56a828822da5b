import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_stack.config import ConfigError
from robot_stack.runtime import SharedMemoryRingBuffer
from robot_stack.server.observation import ObservationAssembler, ObservationConfig, StaleObservationError
from robot_stack.server.policy_service import PolicyInfo

CAM_SPEC = {"color": ((24, 32, 3), np.uint8), "timestamp": ((), np.float64)}
ROBOT_SPEC = {"actual_tcp_pose": ((6,), np.float64), "actual_q": ((6,), np.float64), "timestamp": ((), np.float64)}
INFO = PolicyInfo(3, 8, 16, 2, {"camera_0": (3, 12, 16), "robot_eef_pose": (2,), "robot_joint": (6,)})


class FakeClock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def _pose(t):
    return np.array([t - 100.0, 0.5 * (t - 100.0), 0.1, 0.0, 0.0, 0.2 * (t - 100.0)])


@pytest.fixture
def buffers():
    cams = {0: SharedMemoryRingBuffer.create(CAM_SPEC, 64), 1: SharedMemoryRingBuffer.create(CAM_SPEC, 64)}
    robot = SharedMemoryRingBuffer.create(ROBOT_SPEC, 256)
    yield cams, robot
    for rb in (*cams.values(), robot):
        rb.close()


def _fill_camera(rb, times, value_of=lambda i: i):
    for i, t in enumerate(times):
        rb.put({"color": np.full((24, 32, 3), value_of(i), np.uint8), "timestamp": t})


def _fill_robot(rb, t0=99.5, t1=101.0, hz=125.0):
    for t in np.arange(t0, t1, 1.0 / hz):
        rb.put({"actual_tcp_pose": _pose(t), "actual_q": np.full(6, t - 100.0), "timestamp": t})


def test_alignment_nearest_frames_and_interpolated_state(buffers):
    cams, robot = buffers
    frame_ts = 100.0 + np.arange(30) / 30.0
    _fill_camera(cams[0], frame_ts)
    _fill_robot(robot)
    t_latest = frame_ts[-1]
    asm = ObservationAssembler(INFO, 0.1, cams, robot, clock=FakeClock(t_latest + 0.02))
    obs, t_obs = asm.assemble()
    assert t_obs == t_latest
    queries = t_latest - np.array([0.2, 0.1, 0.0])
    expected_frames = [int(np.argmin(np.abs(frame_ts - q))) for q in queries]
    img = obs["camera_0"]
    assert img.shape == (3, 3, 12, 16) and img.dtype == np.float32
    np.testing.assert_allclose(img[:, 0, 0, 0] * 255.0, expected_frames, atol=1e-4)
    assert 0.0 <= img.min() and img.max() <= 1.0
    pose = obs["robot_eef_pose"]
    assert pose.shape == (3, 6) and pose.dtype == np.float32
    np.testing.assert_allclose(pose, np.stack([_pose(q) for q in queries]), atol=1e-5)
    np.testing.assert_allclose(obs["robot_joint"], np.repeat((queries - 100.0)[:, None], 6, 1), atol=1e-5)
    INFO.check_observation(obs)  # exactly what the policy interface expects


def test_pose_rotation_is_slerped_not_componentwise(buffers):
    cams, robot = buffers
    _fill_camera(cams[0], [100.0, 100.1, 100.2])
    a = np.array([0, 0, 0, 0, 0, 3.0])  # near +pi about z
    b = np.array([0, 0, 0, 0, 0, -3.0])  # near -pi: the short way passes through pi
    robot.put({"actual_tcp_pose": a, "actual_q": np.zeros(6), "timestamp": 99.95})
    robot.put({"actual_tcp_pose": b, "actual_q": np.zeros(6), "timestamp": 100.25})
    info = PolicyInfo(2, 8, 16, 2, {"camera_0": (3, 12, 16), "robot_eef_pose": (6,)})
    obs, _ = ObservationAssembler(info, 0.1, cams, robot, clock=FakeClock(100.21)).assemble()
    mid = obs["robot_eef_pose"][1]  # t=100.2: 5/6 of the way along the short arc from +3 to -3 rad
    angle = Rotation.from_rotvec(mid[3:]).as_euler("xyz")[2]
    expected = 3.0 + (2 * np.pi - 6.0) * (0.25 / 0.30)
    assert np.isclose(np.angle(np.exp(1j * angle)), np.angle(np.exp(1j * expected)), atol=1e-3)


def test_stale_camera_refused(buffers):
    cams, robot = buffers
    _fill_camera(cams[0], 100.0 + np.arange(30) / 30.0)
    _fill_robot(robot, t1=101.3)
    asm = ObservationAssembler(INFO, 0.1, cams, robot, clock=FakeClock(101.3))
    with pytest.raises(StaleObservationError, match=r"camera_0: newest data is 0\.33"):
        asm.assemble()


def test_stale_robot_state_refused(buffers):
    cams, robot = buffers
    _fill_camera(cams[0], 100.0 + np.arange(30) / 30.0)
    _fill_robot(robot, t1=100.5)
    asm = ObservationAssembler(INFO, 0.1, cams, robot, ObservationConfig(max_age=0.2), clock=FakeClock(100.98))
    with pytest.raises(StaleObservationError, match="robot state: newest data"):
        asm.assemble()


def test_camera_dropping_frames_refused(buffers):
    cams, robot = buffers
    # A 0.3 s hole in the stream: the oldest query time has no frame within one step.
    _fill_camera(cams[0], np.concatenate([100.0 + np.arange(10) / 30.0, [100.9, 100.95]]))
    _fill_robot(robot)
    asm = ObservationAssembler(INFO, 0.1, cams, robot, clock=FakeClock(100.96))
    with pytest.raises(StaleObservationError, match="dropping frames"):
        asm.assemble()


def test_empty_buffers_refused(buffers):
    cams, robot = buffers
    _fill_robot(robot)
    asm = ObservationAssembler(INFO, 0.1, cams, robot, clock=FakeClock(100.0))
    with pytest.raises(StaleObservationError, match="camera_0: no data yet"):
        asm.assemble()


def test_two_cameras_reference_is_newest_frame(buffers):
    cams, robot = buffers
    info = PolicyInfo(2, 8, 16, 2, {"camera_0": (3, 12, 16), "camera_1": (3, 24, 32), "robot_eef_pose": (2,)})
    _fill_camera(cams[0], 100.0 + np.arange(30) / 30.0)
    _fill_camera(cams[1], 100.01 + np.arange(30) / 30.0, value_of=lambda i: 100 + i)
    _fill_robot(robot)
    obs, t_obs = ObservationAssembler(info, 0.1, cams, robot, clock=FakeClock(101.0)).assemble()
    assert t_obs == pytest.approx(100.01 + 29 / 30)
    assert obs["camera_1"].shape == (2, 3, 24, 32)  # no resize needed
    np.testing.assert_allclose(obs["camera_1"][:, 0, 0, 0] * 255, [126, 129], atol=1e-4)


def test_rig_mismatch_is_a_config_error(buffers):
    cams, robot = buffers
    with pytest.raises(ConfigError, match="camera_3"):
        ObservationAssembler(PolicyInfo(2, 8, 16, 2, {"camera_3": (3, 8, 8)}), 0.1, cams, robot)
    with pytest.raises(ConfigError, match="block_pose"):
        ObservationAssembler(PolicyInfo(2, 8, 16, 2, {"block_pose": (3,)}), 0.1, cams, robot)
    with pytest.raises(ConfigError, match="actual_tcp_speed"):
        ObservationAssembler(PolicyInfo(2, 8, 16, 2, {"robot_eef_pose_vel": (6,)}), 0.1, cams, robot)


def test_scene_state_keys_feed_low_dim_policies_with_the_same_checks(buffers):
    from robot_stack.runtime.record_buffer import RecordBuffer

    _, robot = buffers
    _fill_robot(robot)
    scene = RecordBuffer({"keypoints": ((9, 2), np.float64), "coverage": ((), np.float64),
                          "timestamp": ((), np.float64)}, 256)
    for t in np.arange(99.5, 101.0, 0.01):
        scene.put({"keypoints": np.full((9, 2), t - 100.0), "coverage": 0.5, "timestamp": t})
    info = PolicyInfo(2, 8, 16, 2, {"scene_keypoints": (18,), "robot_eef_pose": (2,)})
    asm = ObservationAssembler(info, 0.1, {}, robot, clock=FakeClock(100.99), scene_state=scene)
    obs, t_obs = asm.assemble()
    assert obs["scene_keypoints"].shape == (2, 18)  # flat, as training reads it
    # interpolated at the query times (the newest scene record is up to one physics tick older than t_obs)
    np.testing.assert_allclose(obs["scene_keypoints"][:, 0], [t_obs - 0.1 - 100.0, t_obs - 100.0], atol=0.011)

    # The robot is fresh enough for a 0.4 s limit, the scene (last record at 100.99) is not.
    _fill_robot(robot, 101.0, 101.3)
    with pytest.raises(StaleObservationError, match="scene state: newest data is"):
        ObservationAssembler(info, 0.1, {}, robot, clock=FakeClock(101.3), scene_state=scene,
                             config=ObservationConfig(max_age=0.2)).assemble()
    with pytest.raises(ConfigError, match="observes 'scene_keypoints', but this rig has no simulated scene"):
        ObservationAssembler(info, 0.1, {}, robot)
    with pytest.raises(ConfigError, match="scene provides scene_coverage, scene_keypoints"):
        ObservationAssembler(PolicyInfo(2, 8, 16, 2, {"scene_velocity": (2,)}), 0.1, {}, robot, scene_state=scene)


def test_gripper_state_keys_feed_the_policy_with_the_same_checks(buffers):
    from robot_stack.hardware.gripper.controller import GRIPPER_STATE_SPEC
    from robot_stack.runtime.record_buffer import RecordBuffer

    _, robot = buffers
    _fill_robot(robot)
    gripper = RecordBuffer(GRIPPER_STATE_SPEC, 256)
    for t in np.arange(99.5, 101.0, 0.04):  # 25 Hz, closing at 1 cm/s
        gripper.put({"width": 0.085 - 0.01 * (t - 99.5), "velocity": -0.01, "commanded_width": 0.0,
                     "object_detected": False, "activated": True, "timestamp": t, "n_dropped": 0, "n_rejected": 0})
    info = PolicyInfo(2, 8, 16, 7, {"robot_eef_pose": (6,), "gripper_width": (1,)})
    obs, t_obs = ObservationAssembler(info, 0.1, {}, robot, clock=FakeClock(100.99), gripper_state=gripper).assemble()
    expected = 0.085 - 0.01 * (np.array([t_obs - 0.1, t_obs]) - 99.5)
    # interpolated at the query times (within one 25 Hz record of motion at the newest end)
    np.testing.assert_allclose(obs["gripper_width"][:, 0], expected, atol=0.01 * 0.04 + 1e-9)
    with pytest.raises(ConfigError, match="observes 'gripper_width', but this rig has no gripper: section"):
        ObservationAssembler(info, 0.1, {}, robot)
    with pytest.raises(ConfigError, match="gripper provides .*gripper_width"):
        ObservationAssembler(PolicyInfo(2, 8, 16, 7, {"gripper_force": (1,)}), 0.1, {}, robot, gripper_state=gripper)
    _fill_robot(robot, 101.0, 101.3)
    with pytest.raises(StaleObservationError, match="gripper state: newest data is"):
        ObservationAssembler(info, 0.1, {}, robot, clock=FakeClock(101.3), gripper_state=gripper,
                             config=ObservationConfig(max_age=0.2)).assemble()
