"""UR5 arm: driver interface, RTDE driver, simulated twin, kinematics, interpolation and the controller process.

Public API (import from the modules; this package file stays import-free so that light users such as
``config.Workspace`` do not pull in the runtime):

* ``config``: ``RobotConfig`` (the rig's ``robot:`` section), ``Workspace``, ``JointLimits``, ``SimArmConfig``,
  ``load_robot_config(path_or_mapping)``.
* ``controller``: ``RobotController`` (the device process), ``RobotClient`` (picklable command/state handle),
  ``STATE_SPEC`` (state ring-buffer records), ``make_driver``.
* ``interface``: ``RobotDriver`` and the errors ``RobotError``, ``RobotConnectionError``,
  ``ProtectiveStopError``, ``RemoteControlError``.
* ``sim_ur5.SimUR5`` and ``rtde_driver.RTDEDriver``: the two drivers.
* ``servo_loop.ServoLoop``, ``interpolator.PoseTrajectoryInterpolator``, ``kinematics.UR5Kinematics``,
  ``clock.SimClock`` / ``clock.RuntimeClock``.
"""
