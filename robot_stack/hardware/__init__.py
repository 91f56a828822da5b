"""Hardware drivers (UR5 over RTDE, RealSense cameras, teleop devices) and their simulated twins."""
