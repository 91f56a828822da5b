import numpy as np
import pytest
from server_fakes import RecordingController

from robot_stack.config import ConfigError
from robot_stack.server.executor import ExecutorConfig, RecedingHorizonExecutor
from robot_stack.server.transport import ActionChunk

BASE = np.array([0.45, 0.0, 0.02, 3.14, 0.0, 0.0])
LIMIT = 0.015  # robot_latency + margin


class FakeClock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class ClockedController(RecordingController):
    """Records the fake clock's time at each hand-over (instead of the real clock)."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.handed: list[tuple[float, float]] = []  # (target_time, fake time handed over)

    def schedule_waypoint(self, pose, target_time):
        super().schedule_waypoint(pose, target_time)
        self.handed.append((float(target_time), self.clock.t))


def _executor(clock, steps_per_inference=None, n=8, controller=None, lookahead=0.2, action_dim=2, **config):
    cfg = ExecutorConfig(dt=0.1, steps_per_inference=steps_per_inference, robot_latency=0.01, margin=0.005,
                         lookahead=lookahead, **config)
    return RecedingHorizonExecutor(controller or ClockedController(clock), cfg, n, action_dim, BASE, clock=clock)


def _chunk(t_obs, t_received, n=8, rid=1, start=(0.5, 0.1)):
    actions = np.asarray(start) + 0.01 * np.arange(n)[:, None]
    return ActionChunk(rid, actions, t_obs, t_obs, t_received, t_received - t_obs)


def _tick_until(ex, clock, t_end, step=0.005):
    while clock.t < t_end:
        clock.t = round(clock.t + step, 9)
        ex.dispatch()


def test_stale_actions_dropped_exactly_and_rest_handed_over_on_time():
    clock = FakeClock(10.25)  # the chunk for t_obs=10.0 arrives 0.25 s (2.5 dt) later
    ex = _executor(clock)
    outcome = ex.accept(_chunk(10.0, 10.25))
    # On time means t_k >= now + robot_latency + margin = 10.265: actions at 10.0, 10.1, 10.2 are stale.
    assert outcome.dropped == [0, 1, 2]
    assert outcome.scheduled == [3, 4]  # only what is due within the 0.2 s lookahead so far
    _tick_until(ex, clock, 11.0)
    assert outcome.scheduled == [3, 4, 5, 6, 7] and outcome.dropped == [0, 1, 2]
    handed = ex.controller.handed
    np.testing.assert_allclose([t for t, _ in handed], 10.0 + 0.1 * np.arange(3, 8))
    for target, at in handed:
        assert target - 0.2 - 1e-9 <= at <= target - LIMIT  # within the lookahead, never late
    for k, w in zip(range(3, 8), ex.controller.waypoints):
        np.testing.assert_allclose(w.pose, [0.5 + 0.01 * k, 0.1 + 0.01 * k, *BASE[2:]])
    assert (ex.stats.dropped, ex.stats.scheduled, ex.stats.chunks) == (3, 5, 1)
    assert ex.plan_end == pytest.approx(10.7)
    assert outcome.first_action_delay == pytest.approx(0.3)


def test_drop_boundary_is_robot_latency_plus_margin():
    # Action 2 (t=10.2) needs to be handed over by 10.2 - 0.01 - 0.005 = 10.185.
    assert _executor(FakeClock(10.184)).accept(_chunk(10.0, 10.184)).dropped == [0, 1]
    assert _executor(FakeClock(10.186)).accept(_chunk(10.0, 10.186)).dropped == [0, 1, 2]


def test_whole_chunk_too_late_schedules_nothing():
    clock = FakeClock(11.0)
    ex = _executor(clock)
    outcome = ex.accept(_chunk(10.0, 11.0))
    _tick_until(ex, clock, 12.0)
    assert outcome.scheduled == [] and outcome.dropped == list(range(8))
    assert ex.controller.waypoints == [] and ex.plan_end is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_chunk_rejected_whole(bad):
    clock = FakeClock(10.05)
    ex = _executor(clock)
    chunk = _chunk(10.0, 10.05)
    chunk.actions[5, 1] = bad
    outcome = ex.accept(chunk)
    _tick_until(ex, clock, 11.0)
    assert outcome.rejected and "NaN or inf" in outcome.rejected
    assert ex.controller.waypoints == []
    assert ex.stats.rejected_chunks == 1 and ex.stats.scheduled == 0


def test_wrong_chunk_shape_rejected():
    ex = _executor(FakeClock(10.05))
    outcome = ex.accept(ActionChunk(1, np.zeros((8, 3)), 10.0, 10.0, 10.05, 0.05))
    assert "expected (8, 2)" in outcome.rejected and ex.controller.waypoints == []


def test_stalled_loop_drops_instead_of_executing_late():
    clock = FakeClock(10.05)
    ex = _executor(clock)
    outcome = ex.accept(_chunk(10.0, 10.05))  # hands over 10.1, 10.2
    clock.t = 10.45  # the robot-side loop stalled for 0.4 s (CPU contention)
    ex.dispatch()
    # 10.3 and 10.4 are past due: dropped; 10.5 and 10.6 are within the lookahead and still on time.
    assert outcome.dropped == [0, 3, 4]
    assert outcome.scheduled == [1, 2, 5, 6]
    assert all(target >= at + LIMIT for target, at in ex.controller.handed)


def test_slow_hand_over_rechecks_the_clock_per_action():
    clock = FakeClock(10.05)

    class SlowController(ClockedController):
        def schedule_waypoint(self, pose, target_time):
            super().schedule_waypoint(pose, target_time)
            clock.t += 0.12  # each hand-over takes longer than a step

    ex = _executor(clock, controller=SlowController(clock), lookahead=1.0)
    outcome = ex.accept(_chunk(10.0, 10.05))
    # 10.3 became stale while 10.1 and 10.2 were being handed over.
    assert outcome.dropped == [0, 3]
    assert outcome.scheduled == [1, 2, 4, 5, 6, 7]
    assert all(target >= at + LIMIT for target, at in ex.controller.handed)


def test_new_chunk_supersedes_the_rest_of_the_old_one():
    clock = FakeClock(10.05)
    ex = _executor(clock, steps_per_inference=4)
    first = ex.accept(_chunk(10.0, 10.05, rid=1))
    _tick_until(ex, clock, 10.45)
    second = ex.accept(_chunk(10.4, 10.45, rid=2, start=(0.6, 0.2)))
    _tick_until(ex, clock, 11.5)
    assert first.scheduled == [1, 2, 3, 4, 5, 6] and first.superseded == [7]
    assert second.dropped == [0] and second.scheduled == [1, 2, 3, 4, 5, 6, 7]
    assert ex.stats.superseded == 1
    # The controller saw the new chunk's first action at 10.5 after the old one's up to 10.6: that earlier
    # time makes the interpolator replace the old plan from there on.
    targets = [t for t, _ in ex.controller.handed]
    assert targets == pytest.approx([10.1, 10.2, 10.3, 10.4, 10.5, 10.6, 10.5, 10.6, 10.7, 10.8, 10.9, 11.0, 11.1])


def test_finish_forgets_pending_actions():
    clock = FakeClock(10.05)
    ex = _executor(clock)
    outcome = ex.accept(_chunk(10.0, 10.05))
    ex.finish()
    _tick_until(ex, clock, 11.0)
    assert outcome.scheduled == [1, 2] and outcome.superseded == [3, 4, 5, 6, 7]


def test_next_inference_nominal_and_early_for_slow_policy():
    clock = FakeClock(10.05)
    ex = _executor(clock, steps_per_inference=6)
    chunk = _chunk(10.0, 10.05)
    ex.accept(chunk)
    assert ex.next_inference_time(chunk) == pytest.approx(10.6)  # nominal: 6 steps after the observation
    clock.t = 20.45
    slow = _chunk(20.0, 20.45)
    ex.accept(slow)
    # plan ends at 20.7; a 0.45 s latency must still land its first action by 20.8: start by 20.335.
    assert ex.next_inference_time(slow) == pytest.approx(20.7 + 0.1 - 0.45 - LIMIT)


def test_plan_gaps_counted():
    clock = FakeClock(10.05)
    ex = _executor(clock)
    ex.accept(_chunk(10.0, 10.05))  # plan to 10.7
    _tick_until(ex, clock, 11.05)
    ex.accept(_chunk(11.0, 11.05))  # first new action 11.1: the arm held 10.7 -> 11.1
    assert ex.stats.plan_gaps == 1
    assert ex.stats.plan_gap_time == pytest.approx(0.3)


def test_config_validation():
    with pytest.raises(ConfigError, match="dt"):
        ExecutorConfig(dt=0)
    with pytest.raises(ConfigError, match="steps_per_inference"):
        ExecutorConfig(steps_per_inference=0)
    with pytest.raises(ConfigError, match="lookahead"):
        ExecutorConfig(lookahead=0.01)
    with pytest.raises(ConfigError, match="7 dimensions .* but the rig has no gripper"):
        RecedingHorizonExecutor(RecordingController(), ExecutorConfig(), 8, 7, BASE)
    with pytest.raises(ConfigError, match="1-6 are supported, and 7 .* on a rig with a gripper"):
        RecedingHorizonExecutor(RecordingController(), ExecutorConfig(), 8, 10, BASE, gripper=RecordingGripper())


class RecordingGripper:
    def __init__(self):
        self.waypoints: list[tuple[float, float]] = []

    def schedule_waypoint(self, width, target_time):
        self.waypoints.append((float(width), float(target_time)))


def test_a_gripper_width_is_scheduled_with_its_pose_under_the_same_on_time_rule():
    clock = FakeClock(10.25)
    cfg = ExecutorConfig(dt=0.1, robot_latency=0.01, margin=0.005)
    arm, gripper = ClockedController(clock), RecordingGripper()
    ex = RecedingHorizonExecutor(arm, cfg, 8, 7, BASE, clock=clock, gripper=gripper)
    actions = np.tile(BASE, (8, 1)) + np.array([0.01, 0, 0, 0, 0, 0]) * np.arange(8)[:, None]
    widths = np.linspace(0.085, 0.0, 8)[:, None]
    chunk = ActionChunk(1, np.concatenate([actions, widths], axis=1), 10.0, 10.0, 10.25, 0.25)
    outcome = ex.accept(chunk)
    _tick_until(ex, clock, 11.0)
    assert outcome.dropped == [0, 1, 2] and outcome.scheduled == [3, 4, 5, 6, 7]
    assert [t for _, t in gripper.waypoints] == [t for t, _ in arm.handed]  # same times as the poses
    np.testing.assert_allclose([w for w, _ in gripper.waypoints], widths[3:, 0])
    assert all(len(w.pose) == 6 for w in arm.waypoints)  # the arm gets poses only
    planned, _ = ex.plan_for(10.3)  # inpainting plans carry the width too
    assert planned.shape[1] == 7 and planned[0, 6] == pytest.approx(widths[3, 0])


def test_action_delay_steps_shift_action_times():
    # Recorded actions were targets scheduled 2 steps after their step: action k belongs at t_obs + (k+2) dt,
    # so a 0.25 s latency leaves every action on time.
    clock = FakeClock(10.25)
    cfg = ExecutorConfig(dt=0.1, robot_latency=0.01, margin=0.005, action_delay_steps=2)
    ex = RecedingHorizonExecutor(ClockedController(clock), cfg, 8, 2, BASE, clock=clock)
    outcome = ex.accept(_chunk(10.0, 10.25))
    assert outcome.dropped == [0]  # 10.2 < 10.265
    _tick_until(ex, clock, 11.5)
    np.testing.assert_allclose([t for t, _ in ex.controller.handed], 10.0 + 0.1 * np.arange(3, 10))
    assert outcome.first_action_delay == pytest.approx(0.3)


def test_planned_pose_interpolates_the_current_plan():
    clock = FakeClock(10.05)
    ex = _executor(clock)
    assert ex.planned_pose(10.0) is None
    ex.accept(_chunk(10.0, 10.05))  # fresh actions 1..7 at 10.1 .. 10.7, x = 0.5 + 0.01 k
    np.testing.assert_allclose(ex.planned_pose(10.15)[:2], [0.515, 0.115])
    np.testing.assert_allclose(ex.planned_pose(99.0), [0.57, 0.17, *BASE[2:]])  # held after the end


def test_plan_for_gives_the_plan_at_the_next_chunks_times_and_what_is_committed():
    clock = FakeClock(10.05)
    ex = _executor(clock)
    assert ex.plan_for(10.0) is None  # no plan yet
    ex.accept(_chunk(10.0, 10.05))  # actions 0.5 + 0.01 k at 10.0 + 0.1 k: latency 0.05 s
    planned, committed = ex.plan_for(10.25)
    # the next chunk's actions are for 10.25, 10.35, ... up to the plan's end at 10.7: 5 of them
    np.testing.assert_allclose(planned[:, 0], 0.5 + 0.01 * np.array([2.5, 3.5, 4.5, 5.5, 6.5]), atol=1e-12)
    # due before a chunk requested at 10.25 can arrive (worst latency 0.05 + robot latency and margin)
    assert committed == 1


def test_the_jump_at_each_chunk_boundary_is_measured():
    clock = FakeClock(10.05)
    ex = _executor(clock)
    ex.accept(_chunk(10.0, 10.05))  # x = 0.5 + 0.01 k at 10.0 + 0.1 k
    assert ex.stats.boundary_jumps == []  # nothing was replaced
    clock.t = 10.45
    ex.accept(_chunk(10.4, 10.45, rid=2, start=(0.6, 0.1)))  # first fresh action at 10.5: 0.6 + 0.01
    # at 10.5 the first plan was at (0.55, 0.15); the new chunk's first on-time action (k = 1) is (0.61, 0.11)
    assert ex.stats.boundary_jumps == [pytest.approx(np.hypot(0.06, 0.04), abs=1e-9)]


def test_jerk_along_the_executed_path_with_replaced_waypoints_cut_out():
    clock = FakeClock(10.05)
    ex = _executor(clock)
    cubic = 0.5 + 2.0 * (0.1 * np.arange(8)) ** 3  # x = 0.5 + 2 s^3: jerk 12 m/s^3 along the whole chunk
    ex.accept(ActionChunk(1, np.stack([cubic, np.full(8, 0.1)], axis=1), 10.0, 10.0, 10.05, 0.05))
    _tick_until(ex, clock, 10.45)
    assert [round(t, 3) for t, *_ in ex.stats.executed] == [10.1, 10.2, 10.3, 10.4, 10.5, 10.6]  # lookahead 0.2 s
    np.testing.assert_allclose(ex.stats.jerks(), 12.0, rtol=1e-9)
    ex.accept(_chunk(10.4, 10.45, rid=2, start=(0.6, 0.1)))  # first fresh action at 10.5 replaces 10.5, 10.6
    _tick_until(ex, clock, 11.2)
    times = [t for t, *_ in ex.stats.executed]
    assert np.all(np.diff(times) > 0) and times[4] == pytest.approx(10.5)
    assert ex.stats.executed[4][1] == pytest.approx(0.61)  # the new chunk's, not the replaced plan's
    jerks = ex.stats.jerks()
    assert len(jerks) == len(times) - 3
    # the switch from the cubic to the new line: the jump from 0.75 to 0.61 shows up as jerk; the line itself has none
    assert jerks[0] == pytest.approx(12.0) and jerks[1:3].min() > 100 and jerks[-1] == pytest.approx(0.0, abs=1e-6)


def test_temporal_ensembling_averages_every_chunk_that_covers_an_action_with_act_weights():
    clock = FakeClock(10.05)
    decay = float(np.log(3.0))  # the older of two predictions weighs 1, the newer 1/3
    ex = _executor(clock, steps_per_inference=4, lookahead=0.05, chunking="ensemble", ensemble_decay=decay)
    flat = lambda x: np.tile([x, 0.0], (8, 1))  # noqa: E731 - a chunk holding x at every step
    ex.accept(ActionChunk(1, flat(0.0), 10.0, 10.0, 10.05, 0.05))
    _tick_until(ex, clock, 10.39)
    ex.accept(ActionChunk(2, flat(1.0), 10.4, 10.4, 10.45, 0.05))
    _tick_until(ex, clock, 11.0)
    by_time = {round(w.target_time, 3): w.pose for w in ex.controller.waypoints}
    assert by_time[10.3][0] == pytest.approx(0.0)  # only the first chunk covered it
    assert by_time[10.5][0] == pytest.approx(0.25)  # both: (0 * 1 + 1 * 1/3) / (4/3)
    assert by_time[10.7][0] == pytest.approx(0.25)  # the first chunk's last action time
    assert by_time[10.8][0] == pytest.approx(1.0)  # past the first chunk: only the second
    ex3 = _executor(FakeClock(10.05), chunking="ensemble", ensemble_decay=0.0)
    assert ex3.config.ensemble_decay == 0.0
    with pytest.raises(ConfigError, match="ensemble_decay"):
        ExecutorConfig(chunking="ensemble", ensemble_decay=-1.0)


def test_temporal_ensembling_averages_rotations_as_rotations():
    from scipy.spatial.transform import Rotation

    clock = FakeClock(10.05)
    ex = _executor(clock, steps_per_inference=4, lookahead=0.05, action_dim=6, chunking="ensemble",
                   ensemble_decay=0.0)
    a, b = Rotation.from_euler("z", 170, degrees=True), Rotation.from_euler("z", -170, degrees=True)

    def chunk(rid, t_obs, rotation):
        return ActionChunk(rid, np.tile(np.r_[0.5, 0.0, 0.1, rotation.as_rotvec()], (8, 1)), t_obs, t_obs,
                           t_obs + 0.05, 0.05)

    ex.accept(chunk(1, 10.0, a))
    _tick_until(ex, clock, 10.39)
    ex.accept(chunk(2, 10.4, b))
    _tick_until(ex, clock, 11.0)
    by_time = {round(w.target_time, 3): w.pose for w in ex.controller.waypoints}
    # halfway between +170 and -170 degrees about z is 180 degrees, not the 0 a rotation-vector mean gives
    assert Rotation.from_rotvec(by_time[10.5][3:6]).magnitude() == pytest.approx(np.pi, abs=1e-6)
