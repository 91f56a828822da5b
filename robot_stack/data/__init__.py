"""Episode datasets: zarr replay buffer, per-camera videos, episode recording."""
