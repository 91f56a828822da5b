"""Shared helpers for policy tests: tiny model configs and synthetic datasets in the recorder's layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import zarr

from robot_stack.data.dataset import EpisodeDataset
from robot_stack.data.video_recorder import timestamps_path
from robot_stack.policy.config import TaskConfig, load_task_config, merge_dicts

IMAGE = 32  # synthetic camera resolution (square)


def tiny_overrides(model: str = "unet", cameras: list[int] | None = None, **policy: Any) -> dict:
    """Overrides turning a built-in task config into a model small enough for 2 shared CPU cores."""
    cameras = [0] if cameras is None else cameras
    base = {
        "policy": {
            "model": model,
            "cameras": cameras,
            "image_size": [IMAGE, IMAGE],
            "vision": {"width": 8, "stage_blocks": [1, 1], "crop_size": [28, 28], "num_keypoints": 8, "feature_dim": 16},
            "unet": {"down_dims": [32, 64], "diffusion_step_embed_dim": 32, "kernel_size": 3},
            "transformer": {"n_layer": 2, "n_head": 2, "n_emb": 32, "p_drop_attn": 0.0},
            "noise_scheduler": {"num_inference_steps": 8},
        },
        "training": {"batch_size": 16, "num_epochs": 2, "warmup_steps": 5, "num_workers": 0, "lr": 1e-3,
                     "val_ratio": 0.25, "checkpoint_every_epochs": 1, "top_k": 2},
    }
    return merge_dicts(base, {"policy": policy}) if policy else base


def make_tiny_config(task: str = "push_t", model: str = "unet", cameras: list[int] | None = None, **policy: Any) -> TaskConfig:
    return load_task_config(task, tiny_overrides(model, cameras, **policy))


def render(pos: np.ndarray) -> np.ndarray:
    """A frame showing a bright square at ``pos`` (in [-1, 1]^2) on a dark background."""
    img = np.full((IMAGE, IMAGE, 3), 30, np.uint8)
    c = ((np.clip(pos[:2], -1, 1) + 1) / 2 * (IMAGE - 8)).astype(int) + 4
    img[c[1] - 3 : c[1] + 3, c[0] - 3 : c[0] + 3] = (230, 200, 60)
    return img


def write_video(path: Path, frames: np.ndarray, fps: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_dataset(root: Path, episodes: list[dict[str, np.ndarray]], cameras: tuple[int, ...] = (0,),
                  frame_timestamps: bool = False) -> Path:
    """Record ``episodes`` (dicts of per-step arrays) with the recorder's own ``EpisodeDataset``.

    Videos render each step's ``robot_eef_pose``; with ``frame_timestamps`` they run at twice the step
    rate with a ``.timestamps.npy`` file, so alignment has to pick every other frame.
    """
    with EpisodeDataset.open(root, "a") as dataset:
        for ep in episodes:
            staging = dataset.new_staging_dir() if cameras else None
            pos = ep["robot_eef_pose"]
            for cam in cameras:
                video = staging / f"{cam}.mp4"
                if frame_timestamps:
                    ts = ep["timestamp"]
                    dt = np.diff(ts).mean() if len(ts) > 1 else 0.1
                    write_video(video, np.stack([render(pos[i // 2]) for i in range(2 * len(pos))]))
                    np.save(timestamps_path(video), np.repeat(ts, 2) + np.tile([-dt / 4, dt / 4], len(ts)))
                else:
                    write_video(video, np.stack([render(p) for p in pos]))
            dataset.commit_episode(ep, videos=staging)
    return root


def write_original_layout(root: Path, episodes: list[dict[str, np.ndarray]], fps: int = 30,
                          timestamps: bool = True) -> Path:
    """A dataset laid out as the original Diffusion Policy's recorder writes it: a zarr v2 replay buffer
    (data/<key>, meta/episode_ends) with steps at 10 Hz, and ``videos/<ep>/<cam>.mp4`` at the camera's
    constant rate from the episode start, with no frame timestamps file."""
    group = zarr.open_group(str(root / "replay_buffer.zarr"), mode="w", zarr_format=2)
    keys = [k for k in episodes[0] if timestamps or k != "timestamp"]
    for key in keys:
        group.create_array(f"data/{key}", data=np.concatenate([ep[key] for ep in episodes]))
    group.create_array("meta/episode_ends", data=np.cumsum([len(ep["action"]) for ep in episodes]))
    for e, ep in enumerate(episodes):
        pos = ep["robot_eef_pose"][:, :2]
        step_times = np.arange(len(pos)) * 0.1
        frame_times = np.arange(int(len(pos) * 0.1 * fps)) / fps
        # Each frame shows the pose at its own time: the motion is interpolated between steps.
        shown = np.stack([np.interp(frame_times, step_times, pos[:, i]) for i in range(2)], axis=1)
        write_video(root / "videos" / str(e) / "0.mp4", np.stack([render(q) for q in shown]), fps=fps)
    return root


def line_episodes(n: int = 6, length: int = 20, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Episodes moving from a random start towards the origin; action = next position."""
    rng = np.random.default_rng(seed)
    episodes = []
    for e in range(n):
        start = rng.uniform(-0.8, 0.8, size=2)
        path = start[None] * np.linspace(1, 0, length + 1)[:, None]
        pose = np.zeros((length, 6))
        pose[:, :2] = path[:-1]
        pose[:, 2] = 0.1  # constant z: exercises the normalizer's constant-dimension rule
        action = np.zeros((length, 6))
        action[:, :2] = path[1:]
        episodes.append({"robot_eef_pose": pose, "action": action,
                         "timestamp": 100.0 + e * 10 + np.arange(length) * 0.1})
    return episodes


@pytest.fixture
def tiny_config():
    """Factory ``tiny_config(task="push_t", model="unet", cameras=[0], **policy_overrides) -> TaskConfig``."""
    return make_tiny_config


@pytest.fixture
def tiny_overrides_for():
    """Factory returning the override dict behind ``tiny_config`` (to merge further overrides)."""
    return tiny_overrides


@pytest.fixture
def dataset_writer():
    """``dataset_writer(root, episodes, cameras=(0,), frame_timestamps=False) -> root``."""
    return write_dataset


@pytest.fixture
def original_layout_writer():
    """``original_layout_writer(root, episodes, fps=30, timestamps=True) -> root``: the original's layout."""
    return write_original_layout


@pytest.fixture
def make_line_episodes():
    """``make_line_episodes(n=6, length=20, seed=0)``: episodes moving straight to the origin."""
    return line_episodes


@pytest.fixture
def frame_renderer():
    """``frame_renderer(pos) -> HxWx3 uint8`` frame the synthetic videos show for a pose."""
    return render


@pytest.fixture(scope="session")
def line_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-episode dataset with one camera (shared by tests; treat as read-only)."""
    return write_dataset(tmp_path_factory.mktemp("line_dataset"), line_episodes(), cameras=(0,))
