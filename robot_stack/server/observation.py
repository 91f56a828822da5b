"""``ObservationAssembler``: the policy's observation history, read from the runtime's ring buffers.

Alignment (as in training): the reference time ``t_obs`` is the newest camera frame over all cameras (the
newest robot state for a policy without cameras). The policy sees ``n_obs_steps`` steps at the query times
``t_obs - (n_obs_steps - 1 - j) * dt``. Each camera contributes the frame captured nearest each query time
(``nearest_indices``); robot state fields are interpolated at the query times (poses with
``interpolate_poses``: linear position, slerp rotation; other fields linearly).

Conversion: frames (HxWx3 uint8 RGB) are resized to the policy's image size with the training pipeline's
``resize_frame`` and become CHW float32 in [0, 1]; low-dim fields become float32 arrays.

Refusals (``StaleObservationError``, the robot then keeps its current plan or holds): a newest frame or
robot state older than ``max_age``, or a camera whose nearest frame is more than ``max_frame_offset`` from
a query time (a camera that stalled or dropped many frames), or a buffer with no data yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Mapping, Sequence

import numpy as np

from robot_stack.config import ConfigError
# The recorder's key -> robot-state-field mapping: observations must mean what the recorded data meant.
from robot_stack.data.episode_recorder import ROBOT_STATE_FIELDS
from robot_stack.policy.frame_cache import resize_frame
from robot_stack.runtime import SharedMemoryRingBuffer, StaleDataError, interpolate_poses, nearest_indices, now
from robot_stack.server.policy_service import PolicyInfo

# Keys holding 6-D [x, y, z, rx, ry, rz] poses: interpolated with slerp, not per component.
_POSE_KEYS = frozenset(["robot_eef_pose"])


def policy_images(frames: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """HxWx3 uint8 RGB frames -> the policy's (N, 3, *size) float32 images in [0, 1], as in training."""
    images = np.stack([resize_frame(frame, size) for frame in frames])
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)


SCENE_PREFIX = "scene_"  # low-dim keys read from the simulated scene's state (as the recorder names them)
GRIPPER_PREFIX = "gripper_"  # low-dim keys read from the gripper's state (gripper_width: its "width" field)


def check_policy_observations(info: PolicyInfo, camera_indices: Collection[int],
                              state_fields: Mapping[str, str] = ROBOT_STATE_FIELDS,
                              scene_fields: Collection[str] = (), gripper_fields: Collection[str] = ()) -> None:
    """``ConfigError`` unless every observation of the policy has a source: camera ``camera_<i>`` among
    ``camera_indices``, low-dim keys among ``state_fields``, ``scene_<field>`` for a field of the scene
    state (``scene_fields``; none on real rigs) or ``gripper_<field>`` for a field of the gripper state
    (``gripper_fields``; none without a gripper). (Run before a rig starts, and by the assembler.)"""
    for key, shape in info.obs_shapes.items():
        if len(shape) == 3:
            if _camera_index(key) not in camera_indices:
                raise ConfigError(
                    f"the policy observes '{key}' but the rig has cameras {sorted(camera_indices)}; "
                    "use a checkpoint trained for this rig's cameras"
                )
        elif key.startswith(SCENE_PREFIX):
            if key[len(SCENE_PREFIX):] not in scene_fields:
                where = f"the scene provides {', '.join(SCENE_PREFIX + f for f in sorted(scene_fields))}" \
                    if scene_fields else "this rig has no simulated scene"
                raise ConfigError(f"the policy observes '{key}', but {where}")
        elif key.startswith(GRIPPER_PREFIX):
            if key[len(GRIPPER_PREFIX):] not in gripper_fields:
                raise ConfigError(f"the policy observes '{key}', but this rig has no gripper: section"
                                  if not gripper_fields else
                                  f"the policy observes '{key}', but the gripper provides "
                                  f"{', '.join(GRIPPER_PREFIX + f for f in sorted(gripper_fields))}")
        elif key not in state_fields:
            raise ConfigError(
                f"the policy observes '{key}', which no robot state field provides "
                f"(known: {', '.join(sorted(state_fields))})"
            )


class StaleObservationError(RuntimeError):
    """The latest observations are too old or misaligned to act on; the message says which source."""


@dataclass
class ObservationConfig:
    """Freshness limits (seconds). ``max_frame_offset`` ``None`` means one policy step (``dt``)."""

    max_age: float = 0.25
    max_frame_offset: float | None = None

    def __post_init__(self) -> None:
        if self.max_age <= 0 or (self.max_frame_offset is not None and self.max_frame_offset <= 0):
            raise ConfigError("max_age and max_frame_offset must be > 0")


class ObservationAssembler:
    """Builds ``{key: (n_obs_steps, ...)}`` observation dicts for ``info`` from ring buffers.

    ``cameras`` maps camera index -> ring buffer with ``image_field`` (HxWx3 uint8) and ``timestamp``;
    ``robot_state`` is the controller's state buffer (``timestamp`` plus the fields of ``state_fields``);
    ``scene_state`` (simulated rigs) provides the ``scene_<field>`` keys and ``gripper_state`` (the gripper
    process's buffer) the ``gripper_<field>`` keys, with the same freshness checks.
    Any buffer with ``SharedMemoryRingBuffer``'s reading interface will do (the lockstep simulator's).
    """

    def __init__(
        self,
        info: PolicyInfo,
        dt: float,
        cameras: Mapping[int, SharedMemoryRingBuffer],
        robot_state: SharedMemoryRingBuffer,
        config: ObservationConfig | None = None,
        state_fields: Mapping[str, str] = ROBOT_STATE_FIELDS,
        image_field: str = "color",
        clock: Callable[[], float] = now,
        scene_state: SharedMemoryRingBuffer | None = None,
        gripper_state: SharedMemoryRingBuffer | None = None,
    ):
        self.info = info
        self.dt = dt
        self.config = config or ObservationConfig()
        self.max_frame_offset = self.config.max_frame_offset or dt
        self.clock = clock
        self.image_field = image_field
        self.cameras: dict[str, SharedMemoryRingBuffer] = {}
        self.low_dim: dict[str, str] = {}
        # Other state buffers the policy reads low-dim keys from: prefix -> (source name, buffer, {key: field}).
        prefixed = {SCENE_PREFIX: ("scene state", scene_state), GRIPPER_PREFIX: ("gripper state", gripper_state)}
        fields = {p: [f for f in b.spec if f != "timestamp"] if b is not None else [] for p, (_, b) in prefixed.items()}
        check_policy_observations(info, list(cameras), state_fields, fields[SCENE_PREFIX], fields[GRIPPER_PREFIX])
        self.other_low_dim: dict[str, tuple[str, SharedMemoryRingBuffer, dict[str, str]]] = {}
        for key, shape in info.obs_shapes.items():
            if len(shape) == 3:
                index = _camera_index(key)
                if image_field not in cameras[index].spec:
                    raise ConfigError(f"camera {index}'s buffer has no '{image_field}' field")
                self.cameras[key] = cameras[index]
            elif key.startswith((SCENE_PREFIX, GRIPPER_PREFIX)):
                prefix = SCENE_PREFIX if key.startswith(SCENE_PREFIX) else GRIPPER_PREFIX
                name, buffer = prefixed[prefix]
                self.other_low_dim.setdefault(prefix, (name, buffer, {}))[2][key] = key[len(prefix):]
            else:
                field = state_fields[key]
                if field not in robot_state.spec:
                    raise ConfigError(f"robot state buffer has no field '{field}' (for observation '{key}')")
                self.low_dim[key] = field
        self.robot_state = robot_state

    def query_times(self, t_obs: float) -> np.ndarray:
        """The ``n_obs_steps`` times (oldest first) observed for reference time ``t_obs``."""
        return t_obs - (self.info.n_obs_steps - 1 - np.arange(self.info.n_obs_steps)) * self.dt

    def assemble(self) -> tuple[dict[str, np.ndarray], float]:
        """The current observation history and its reference time ``t_obs``."""
        t_now = self.clock()
        latest_frames = {key: self._latest_time(rb, key) for key, rb in self.cameras.items()}
        robot_latest = self._latest_time(self.robot_state, "robot state")
        t_obs = max(latest_frames.values()) if latest_frames else robot_latest
        sources = [*latest_frames.items(), ("robot state", robot_latest)]
        for name, buffer, _ in self.other_low_dim.values():
            sources.append((name, self._latest_time(buffer, name)))
        for source, t in sources:
            if t_now - t > self.config.max_age:
                raise StaleObservationError(
                    f"{source}: newest data is {t_now - t:.3f} s old (limit {self.config.max_age} s); "
                    "is its process running and keeping up?"
                )
        queries = self.query_times(t_obs)
        obs: dict[str, np.ndarray] = {}
        for key, rb in self.cameras.items():
            obs[key] = self._camera_history(key, rb, queries)
        if self.low_dim:
            obs.update(self._low_dim_history(self.robot_state, self.low_dim, queries, "robot state"))
        for name, buffer, fields in self.other_low_dim.values():
            obs.update(self._low_dim_history(buffer, fields, queries, name))
        return obs, float(t_obs)

    def _latest_time(self, rb: SharedMemoryRingBuffer, source: str) -> float:
        try:
            return float(rb.get()["timestamp"])
        except StaleDataError:
            raise StaleObservationError(f"{source}: no data yet") from None

    def _camera_history(self, key: str, rb: SharedMemoryRingBuffer, queries: np.ndarray) -> np.ndarray:
        frames = rb.get_since(queries[0] - self.max_frame_offset)
        if len(frames["timestamp"]) == 0:
            raise StaleObservationError(f"{key}: no frame near {queries[0]:.3f}")
        idx = nearest_indices(frames["timestamp"], queries)
        offsets = np.abs(frames["timestamp"][idx] - queries)
        if offsets.max() > self.max_frame_offset:
            raise StaleObservationError(
                f"{key}: nearest frame is {offsets.max():.3f} s from its observation time "
                f"(limit {self.max_frame_offset:.3f} s); the camera is dropping frames"
            )
        return policy_images([frames[self.image_field][i] for i in idx], self.info.obs_shapes[key][1:])

    def _low_dim_history(self, buffer: SharedMemoryRingBuffer, fields: Mapping[str, str], queries: np.ndarray,
                         source: str) -> dict[str, np.ndarray]:
        # Read back far enough to hold a sample at or before the oldest query time (interpolate, not clamp).
        records = buffer.get_since(queries[0] - self.config.max_age)
        ts = records["timestamp"]
        if len(ts) == 0 or ts[0] > queries[0]:
            raise StaleObservationError(
                f"{source}: no sample within {self.config.max_age} s before the observation window"
            )
        keep = np.concatenate([[True], np.diff(ts) > 0])  # interpolation needs strictly increasing times
        ts = ts[keep]
        out: dict[str, np.ndarray] = {}
        for key, field in fields.items():
            values = records[field][keep].astype(np.float64)
            if key in _POSE_KEYS:
                hist = interpolate_poses(ts, values, queries)
            else:
                flat = values.reshape(len(ts), -1)
                hist = np.stack([np.interp(queries, ts, flat[:, j]) for j in range(flat.shape[1])], axis=-1)
                hist = hist.reshape(len(queries), -1)  # flat, as training reads it (e.g. 9x2 keypoints -> 18)
            if not np.isfinite(hist).all():
                raise StaleObservationError(f"{source} '{field}' contains NaN/inf")
            out[key] = hist.astype(np.float32)
        return out


def _camera_index(key: str) -> int:
    prefix, _, index = key.partition("_")
    if prefix != "camera" or not index.isdigit():
        raise ConfigError(f"image observation key {key!r} must be camera_<index>")
    return int(index)
