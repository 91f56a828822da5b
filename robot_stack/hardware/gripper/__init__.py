"""Grippers: the ``Gripper`` interface, the Robotiq 2F URCap and Weiss WSG 50 drivers, their socket twins and
an in-process sim.

Public API (import from the modules; this package file stays import-free, as ``hardware.robot``):

* ``interface``: ``Gripper``, ``GripperState`` and the errors ``GripperError``, ``GripperConnectionError``,
  ``GripperNotActivatedError``, ``GripperFaultError``.
* ``config``: ``GripperConfig`` (a rig's ``gripper:`` section), ``MODELS`` (stroke, speed and force ranges).
* ``width_model.WidthModel``: the first-order finger model both twins run on.
* ``robotiq.RobotiqURCapGripper``: the real driver (the Robotiq URCap's ASCII socket on the robot, port 63352).
* ``urcap_loopback.URCapLoopback``: a server speaking that socket protocol on loopback, so the real driver's
  code runs in CI; ``sim.SimGripper``: the same model in-process, for the simulated rigs.
* ``wsg.WSGGripper``: the real driver for a Weiss WSG 50 (its binary TCP command interface, port 1000), and
  ``wsg_loopback.WSGLoopback``: its protocol twin on loopback.
"""
