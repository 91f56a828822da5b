"""UR5 arm: driver interface, RTDE driver, simulated twin, kinematics, interpolation and the controller process."""
