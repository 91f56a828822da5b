"""robot_stack: a real-robot control stack for Diffusion Policy.

Subpackages:
    runtime   shared-memory ring buffers/queues, timing, process lifecycle
    hardware  device drivers (UR5 over RTDE, RealSense, SpaceMouse) and their simulated twins
    sim       simulated scenes (Push-T) and scripted experts
    data      episode datasets (zarr replay buffer + per-camera videos)
    policy    Diffusion Policy model, training, checkpoints
    server    policy server, network transport, receding-horizon executor
    cli       the `robot-stack` command
"""

__version__ = "0.1.0"
