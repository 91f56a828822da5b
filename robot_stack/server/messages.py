"""Wire schema of the policy transport: a JSON header plus raw array bytes, strictly validated, no pickle.

A message is a list of frames (ZeroMQ multipart)::

    frame 0     UTF-8 JSON header (at most ``Limits.max_header_bytes``):
                {"v": 1, "kind": "infer", "id": 7, "token": "...",            # token only if configured
                 "meta": {"t_obs": 1234.5},
                 "arrays": [{"name": "camera_0", "dtype": "float32", "shape": [2, 3, 96, 96]}, ...]}
    frame 1..n  the arrays' bytes, C order, little-endian, in the order of ``arrays``

Kinds and what they carry (``KIND_SCHEMAS``): ``info_request`` -> ``info`` (the policy's interface), ``infer``
(observation arrays + ``t_obs``) -> ``action`` (the action chunk), and ``error`` (``code`` + ``reason``) as the
reply to anything the server rejects. Replies echo the request's ``id``.

Decoding checks everything before any array is handed out: schema version, kind, header keys and types,
meta keys and types, array names, dtypes (whitelist), shapes and sizes (``Limits``), frame lengths, finite
float values and 0/1 booleans. Every violation raises ``MessageError`` whose ``code`` is a short
machine-readable reason and whose text says exactly what is wrong. Arrays are rebuilt with
``np.frombuffer``: bytes on the wire are only ever interpreted as plain numbers.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

SCHEMA_VERSION = 1

# Plain numeric dtypes only: no object, string, void/structured or datetime data crosses the wire.
ALLOWED_DTYPES = frozenset(
    ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64"]
)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_HEADER_KEYS = frozenset(["v", "kind", "id", "token", "meta", "arrays"])
_REQUIRED_HEADER_KEYS = frozenset(["v", "kind", "id", "meta", "arrays"])
_MAX_REQUEST_ID = 2**63 - 1
_MAX_TOKEN_CHARS = 1024
_MAX_HEADER_DEPTH = 8  # a valid header nests 4 deep (header > meta > obs_shapes > shape)
_MAX_INT_DIGITS = 20
_MAX_DIM = 2**31 - 1


@dataclass(frozen=True)
class KindSchema:
    """What one message kind carries: required meta keys with their types, and its arrays.

    ``arrays`` is a tuple of exactly the required array names, or ``None`` for "one or more, any names"
    (observations, whose keys the receiver checks against the policy). ``optional_meta``: keys that may be
    absent, type-checked when present.
    """

    meta: Mapping[str, tuple[type, ...]]
    arrays: tuple[str, ...] | None = ()
    optional_meta: Mapping[str, tuple[type, ...]] = field(default_factory=dict)


# An infer request may carry the previous plan for the chunk it asks for (inpainting, see
# ``DiffusionPolicy.predict_action``): this array, (K, action_dim) raw actions, with meta
# ``committed_steps`` saying how many of them are committed.
PLANNED_ACTION = "planned_action"

# How consecutive chunks are joined on the robot side (``executor.py``); a policy's info may name its default.
CHUNKING_MODES = ("switch", "inpaint", "ensemble")


KIND_SCHEMAS: dict[str, KindSchema] = {
    "info_request": KindSchema(meta={}),
    "info": KindSchema(
        meta={
            "n_obs_steps": (int,),
            "n_action_steps": (int,),
            "horizon": (int,),
            "action_dim": (int,),
            "obs_shapes": (dict,),
            "dt": (float, type(None)),
            "action_delay_steps": (int, type(None)),
            "steps_per_inference": (int, type(None)),
        },
        optional_meta={"chunking": (str,)},  # absent from servers that predate it: switch
    ),
    "infer": KindSchema(meta={"t_obs": (float,)}, arrays=None, optional_meta={"committed_steps": (int,)}),
    "action": KindSchema(meta={"t_obs": (float,), "inference_s": (float,)}, arrays=("action",)),
    "error": KindSchema(meta={"code": (str,), "reason": (str,)}),
}


class MessageError(ValueError):
    """A message violates the schema. ``code`` names the kind of violation; the text says what to fix."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class AuthenticationError(MessageError):
    """The message's token is missing or wrong."""

    def __init__(self, reason: str):
        super().__init__("unauthenticated", reason)


@dataclass(frozen=True)
class Limits:
    """Size bounds a receiver enforces (defaults fit a few 640x480 float images per observation)."""

    max_header_bytes: int = 64 * 1024
    max_arrays: int = 32
    max_ndim: int = 6
    max_array_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 256 * 1024 * 1024

    @property
    def max_frame_bytes(self) -> int:
        """The largest single frame a valid message can contain (for ZeroMQ's MAXMSGSIZE)."""
        return max(self.max_header_bytes, self.max_array_bytes)


DEFAULT_LIMITS = Limits()


@dataclass
class Message:
    """One decoded (or to-be-encoded) message. ``token`` is set by the sender when the server requires one."""

    kind: str
    request_id: int
    meta: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    token: str | None = None


def error_message(request_id: int, code: str, reason: str) -> Message:
    """The error reply for a rejected request (``request_id`` 0 when the request's id was unreadable)."""
    return Message("error", request_id, meta={"code": code, "reason": reason})


# -- encoding --------------------------------------------------------------------------------------------
def encode(msg: Message, limits: Limits = DEFAULT_LIMITS) -> list[bytes]:
    """Frames for ``msg``; raises ``MessageError`` if it would not pass ``decode`` on the other side."""
    _check_kind_and_meta(msg.kind, msg.meta)
    _check_request_id(msg.request_id)
    if msg.token is not None:
        _check_token_value(msg.token)
    _check_array_names(msg.kind, list(msg.arrays))
    if len(msg.arrays) > limits.max_arrays:
        raise MessageError("too_many_arrays", f"{len(msg.arrays)} arrays, at most {limits.max_arrays} allowed")
    descriptors, payload, total = [], [], 0
    for name, value in msg.arrays.items():
        arr = _wire_array(name, value)
        _check_shape(name, arr.shape, arr.dtype, limits)
        _check_values(name, arr)
        total += arr.nbytes
        descriptors.append({"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)})
        payload.append(arr.tobytes())
    if total > limits.max_total_bytes:
        raise MessageError("too_large", f"arrays total {total} bytes, at most {limits.max_total_bytes} allowed")
    header: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": msg.kind, "id": msg.request_id, "meta": msg.meta}
    if msg.token is not None:
        header["token"] = msg.token
    header["arrays"] = descriptors
    try:
        head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise MessageError("bad_meta", f"meta is not plain finite JSON: {exc}") from None
    if len(head) > limits.max_header_bytes:
        raise MessageError("header_too_large", f"header is {len(head)} bytes, at most {limits.max_header_bytes}")
    return [head, *payload]


def _wire_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.name not in ALLOWED_DTYPES:
        raise MessageError(
            "bad_dtype", f"array '{name}' has dtype {arr.dtype}; allowed: {', '.join(sorted(ALLOWED_DTYPES))}"
        )
    # The wire is little-endian C order whatever the sender's memory layout.
    # (astype, not ascontiguousarray: that turns 0-d arrays into 1-d ones.)
    return arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)


# -- decoding --------------------------------------------------------------------------------------------
def decode(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS, token: str | None = None) -> Message:
    """Validate and decode ``frames`` (bytes-like). With ``token``, the message must carry that token.

    The token is checked (constant time) as soon as the header's JSON is parsed, before any other field
    or array is looked at. Returned arrays are read-only views of the frames. Whatever the input, the only
    exception raised is ``MessageError``.
    """
    if len(frames) == 0:
        raise MessageError("empty", "message has no frames")
    try:
        return _decode(frames, limits, token)
    except MessageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug here must not become a way to crash the receiver
        raise MessageError("bad_message", f"undecodable message ({type(exc).__name__}: {str(exc)[:200]})") from None


def _decode(frames: Sequence[Any], limits: Limits, token: str | None) -> Message:
    header = _decode_header(frames[0], limits, token)
    kind, meta = header["kind"], header["meta"]
    descriptors = header["arrays"]
    if len(frames) - 1 != len(descriptors):
        raise MessageError(
            "frame_count", f"header describes {len(descriptors)} arrays but {len(frames) - 1} array frames came"
        )
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for desc, frame in zip(descriptors, frames[1:]):
        name, dtype, shape = _check_descriptor(desc, limits)
        if name in arrays:
            raise MessageError("bad_array", f"array '{name}' appears twice")
        buf = memoryview(frame).cast("B")
        expected = math.prod(shape) * dtype.itemsize
        if buf.nbytes != expected:
            raise MessageError(
                "bad_frame_size", f"array '{name}' {dtype.name}{list(shape)} needs {expected} bytes, frame has {buf.nbytes}"
            )
        total += expected
        if total > limits.max_total_bytes:
            raise MessageError("too_large", f"arrays exceed {limits.max_total_bytes} bytes in total")
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
        _check_values(name, arr)
        arrays[name] = arr
    _check_array_names(kind, list(arrays))
    return Message(kind, header["id"], meta=meta, arrays=arrays, token=header.get("token"))


def peek_request_id(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> int:
    """Best-effort request id of a message that failed to decode (0 if unreadable), to address the error reply."""
    try:
        head = bytes(memoryview(frames[0]).cast("B"))[: limits.max_header_bytes]
        rid = json.loads(head).get("id")
    except Exception:  # noqa: BLE001 - any garbage simply has no usable id
        return 0
    return rid if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= _MAX_REQUEST_ID else 0


def _decode_header(frame: Any, limits: Limits, token: str | None) -> dict[str, Any]:
    raw = memoryview(frame).cast("B")
    if raw.nbytes > limits.max_header_bytes:
        raise MessageError("header_too_large", f"header is {raw.nbytes} bytes, at most {limits.max_header_bytes}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError("bad_header", "header is not UTF-8") from None
    if _nesting_depth(text) > _MAX_HEADER_DEPTH:
        # Checked before parsing: json's recursive parser would otherwise hit the recursion limit.
        raise MessageError("bad_header", f"header nests deeper than {_MAX_HEADER_DEPTH} levels")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants,
                            parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise MessageError("bad_header", f"header is not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(header, dict):
        raise MessageError("bad_header", f"header must be a JSON object, got {type(header).__name__}")
    if token is not None:
        _authenticate(header.get("token"), token)
    unknown = sorted(set(header) - _HEADER_KEYS)
    missing = sorted(_REQUIRED_HEADER_KEYS - set(header))
    if unknown or missing:
        raise MessageError("bad_header", f"header keys: missing {missing}, unknown {unknown}")
    if header["v"] != SCHEMA_VERSION or isinstance(header["v"], bool):
        raise MessageError(
            "bad_version", f"schema version {header['v']!r}, this side speaks {SCHEMA_VERSION}; update the older side"
        )
    _check_request_id(header["id"])
    if "token" in header:
        _check_token_value(header["token"])
    _check_kind_and_meta(header["kind"], header["meta"])
    if not isinstance(header["arrays"], list):
        raise MessageError("bad_header", "'arrays' must be a list of array descriptors")
    if len(header["arrays"]) > limits.max_arrays:
        raise MessageError("too_many_arrays", f"{len(header['arrays'])} arrays, at most {limits.max_arrays} allowed")
    return header


def _nesting_depth(text: str) -> int:
    """Deepest [ / { nesting of a JSON text (brackets inside strings counted too: an over-estimate is safe)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _bounded_int(text: str) -> int:
    # Python refuses to convert > 4300 digits (ValueError); a valid header never needs more than 19.
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise MessageError("bad_header", f"integer with {len(text)} digits in header, at most {_MAX_INT_DIGITS}")
    return int(text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MessageError("bad_header", f"duplicate key {key!r} in header")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise MessageError("bad_header", f"non-finite number {name} in header")


def _authenticate(given: Any, expected: str) -> None:
    if given is None:
        raise AuthenticationError("no token; this server requires one (client option --token)")
    # Constant-time comparison: response timing must not reveal how much of a guess was right.
    if not hmac.compare_digest(str(given).encode("utf-8"), expected.encode("utf-8")):
        raise AuthenticationError("wrong token")


def _check_descriptor(desc: Any, limits: Limits) -> tuple[str, np.dtype, tuple[int, ...]]:
    if not isinstance(desc, dict) or set(desc) != {"name", "dtype", "shape"}:
        raise MessageError("bad_array", f"array descriptor must be {{name, dtype, shape}}, got {desc!r:.200}")
    name, dtype_name, shape = desc["name"], desc["dtype"], desc["shape"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise MessageError("bad_array", f"array name {name!r:.80} is not a plain identifier")
    if not isinstance(dtype_name, str) or dtype_name not in ALLOWED_DTYPES:
        raise MessageError(
            "bad_dtype", f"array '{name}' has dtype {dtype_name!r:.40}; allowed: {', '.join(sorted(ALLOWED_DTYPES))}"
        )
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise MessageError("bad_shape", f"array '{name}' shape must be a list of integers, got {shape!r:.80}")
    dtype = np.dtype(dtype_name).newbyteorder("<")
    _check_shape(name, tuple(shape), dtype, limits)
    return name, dtype, tuple(shape)


def _check_shape(name: str, shape: tuple[int, ...], dtype: np.dtype, limits: Limits) -> None:
    if len(shape) > limits.max_ndim:
        raise MessageError("bad_shape", f"array '{name}' has {len(shape)} dimensions, at most {limits.max_ndim}")
    if any(d < 0 or d > _MAX_DIM for d in shape):
        raise MessageError("bad_shape", f"array '{name}' has a dimension outside [0, 2**31): {list(shape)}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise MessageError("too_large", f"array '{name}' is {nbytes} bytes, at most {limits.max_array_bytes}")


def _check_values(name: str, arr: np.ndarray) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise MessageError("non_finite", f"array '{name}' contains NaN or inf")
    if arr.dtype.kind == "b" and arr.size and arr.view(np.uint8).max() > 1:
        raise MessageError("bad_value", f"bool array '{name}' has bytes other than 0/1")


def _check_array_names(kind: str, names: list[str]) -> None:
    expected = KIND_SCHEMAS[kind].arrays
    for name in names:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise MessageError("bad_array", f"array name {name!r:.80} is not a plain identifier")
    if expected is None:
        if not names:
            raise MessageError("missing_array", f"a '{kind}' message needs at least one array")
    elif sorted(names) != sorted(expected):
        raise MessageError("bad_array", f"a '{kind}' message carries arrays {list(expected)}, got {names}")


def _check_kind_and_meta(kind: Any, meta: Any) -> None:
    if not isinstance(kind, str) or kind not in KIND_SCHEMAS:
        raise MessageError("bad_kind", f"unknown message kind {kind!r:.40}; known: {', '.join(KIND_SCHEMAS)}")
    if not isinstance(meta, dict):
        raise MessageError("bad_meta", f"'meta' must be an object, got {type(meta).__name__}")
    required, optional = KIND_SCHEMAS[kind].meta, KIND_SCHEMAS[kind].optional_meta
    unknown = sorted(set(meta) - set(required) - set(optional))
    missing = sorted(set(required) - set(meta))
    if unknown or missing:
        raise MessageError("bad_meta", f"'{kind}' meta keys: missing {missing}, unknown {unknown}")
    for key, types in {**required, **{k: t for k, t in optional.items() if k in meta}}.items():
        value = meta[key]
        if isinstance(value, bool) or not _is_instance(value, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise MessageError("bad_meta", f"'{kind}' meta '{key}' must be {names}, got {value!r:.80}")
        if isinstance(value, float) and not math.isfinite(value):
            raise MessageError("bad_meta", f"'{kind}' meta '{key}' must be finite, got {value}")


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    # JSON has one number type: an integral float (e.g. t_obs=5.0 written as 5) is still a float.
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def _check_request_id(rid: Any) -> None:
    if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid <= _MAX_REQUEST_ID:
        raise MessageError("bad_header", f"request id must be an integer in [0, 2**63), got {rid!r:.40}")


def _check_token_value(token: Any) -> None:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise MessageError("bad_header", f"token must be a string of at most {_MAX_TOKEN_CHARS} characters")
