import json
import pickle

import numpy as np
import pytest

from robot_stack.server.messages import (
    ALLOWED_DTYPES,
    PLANNED_ACTION,
    AuthenticationError,
    Limits,
    Message,
    MessageError,
    decode,
    encode,
    peek_request_id,
)

SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 3, 4, 5), (1, 1, 1, 1, 1, 2)]


def _sample(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("float"):
        return rng.normal(size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", sorted(ALLOWED_DTYPES))
def test_round_trip_every_dtype_and_shape(dtype):
    rng = np.random.default_rng(0)
    arrays = {f"a{i}": _sample(dtype, shape, rng) for i, shape in enumerate(SHAPES)}
    msg = Message("infer", 42, meta={"t_obs": 123.25}, arrays=arrays, token="tok")
    out = decode(encode(msg), token="tok")
    assert (out.kind, out.request_id, out.meta, out.token) == ("infer", 42, {"t_obs": 123.25}, "tok")
    assert list(out.arrays) == list(arrays)
    for name, value in arrays.items():
        assert out.arrays[name].dtype == value.dtype
        assert out.arrays[name].shape == value.shape
        np.testing.assert_array_equal(out.arrays[name], value)


def test_big_endian_and_non_contiguous_arrays_arrive_as_values():
    base = np.arange(24, dtype=">f8").reshape(4, 6)
    view = base[:, ::2].T  # non-contiguous, big-endian
    out = decode(encode(Message("infer", 1, meta={"t_obs": 0.0}, arrays={"x": view})))
    np.testing.assert_array_equal(out.arrays["x"], view)
    assert out.arrays["x"].dtype == np.dtype("<f8")


def test_t_obs_float_survives_json_exactly():
    t = 9746.356689993123
    out = decode(encode(Message("infer", 1, meta={"t_obs": t}, arrays={"x": np.zeros(1)})))
    assert out.meta["t_obs"] == t


def _frames(header: dict, *arrays: bytes) -> list[bytes]:
    return [json.dumps(header).encode(), *arrays]


def _good_header(**over):
    header = {"v": 1, "kind": "infer", "id": 5, "meta": {"t_obs": 1.0},
              "arrays": [{"name": "x", "dtype": "float32", "shape": [2, 3]}]}
    header.update(over)
    return header


GOOD_BYTES = np.zeros((2, 3), np.float32).tobytes()

MALFORMED = {
    "empty": [],
    "bad_header": [b"\xff\xfe not json"],
    "bad_header:list": [b"[1, 2]"],
    "bad_header:nan": [b'{"v": 1, "kind": "infer", "id": 5, "meta": {"t_obs": NaN}, "arrays": []}'],
    "bad_header:dup": [b'{"v": 1, "v": 1, "kind": "infer", "id": 5, "meta": {"t_obs": 1}, "arrays": []}'],
    "bad_header:unknown_key": _frames(_good_header(extra=1), GOOD_BYTES),
    "bad_header:missing_key": _frames({k: v for k, v in _good_header().items() if k != "meta"}, GOOD_BYTES),
    "bad_header:negative_id": _frames(_good_header(id=-1), GOOD_BYTES),
    "bad_header:bool_id": _frames(_good_header(id=True), GOOD_BYTES),
    "bad_version": _frames(_good_header(v=2), GOOD_BYTES),
    "bad_kind": _frames(_good_header(kind="exec"), GOOD_BYTES),
    "bad_meta:missing": _frames(_good_header(meta={}), GOOD_BYTES),
    "bad_meta:type": _frames(_good_header(meta={"t_obs": "now"}), GOOD_BYTES),
    "bad_meta:extra": _frames(_good_header(meta={"t_obs": 1.0, "cmd": "rm"}), GOOD_BYTES),
    "bad_dtype:object": _frames(_good_header(arrays=[{"name": "x", "dtype": "object", "shape": [1]}]), b"\0" * 8),
    "bad_dtype:pickle": _frames(_good_header(arrays=[{"name": "x", "dtype": "O", "shape": [1]}]), pickle.dumps(1)),
    "bad_dtype:complex": _frames(_good_header(arrays=[{"name": "x", "dtype": "complex64", "shape": [1]}]), b"\0" * 8),
    "bad_shape:negative": _frames(_good_header(arrays=[{"name": "x", "dtype": "float32", "shape": [-1, 6]}]), GOOD_BYTES),
    "bad_shape:float": _frames(_good_header(arrays=[{"name": "x", "dtype": "float32", "shape": [2.0, 3]}]), GOOD_BYTES),
    "bad_shape:ndim": _frames(_good_header(arrays=[{"name": "x", "dtype": "uint8", "shape": [1] * 9}]), b"\0"),
    "too_large": _frames(_good_header(arrays=[{"name": "x", "dtype": "float64", "shape": [2**20, 2**20]}]), b""),
    "bad_frame_size": _frames(_good_header(), GOOD_BYTES[:-4]),
    "frame_count": _frames(_good_header(), GOOD_BYTES, GOOD_BYTES),
    "bad_array:name": _frames(_good_header(arrays=[{"name": "../x", "dtype": "float32", "shape": [2, 3]}]), GOOD_BYTES),
    "bad_array:descriptor": _frames(_good_header(arrays=[{"name": "x", "dtype": "float32"}]), GOOD_BYTES),
    "missing_array": _frames(_good_header(arrays=[])),
    "non_finite": _frames(_good_header(), np.array([[0, 1, np.nan], [0, 0, 0]], np.float32).tobytes()),
    "non_finite:inf": _frames(_good_header(), np.array([[0, 1, np.inf], [0, 0, 0]], np.float32).tobytes()),
    "bad_value": _frames(_good_header(arrays=[{"name": "x", "dtype": "bool", "shape": [2]}]), b"\x01\x07"),
    "header_too_large": [b" " * (64 * 1024 + 1)],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_messages_raise_specific_errors(case):
    with pytest.raises(MessageError) as info:
        decode(MALFORMED[case])
    assert info.value.code == case.split(":")[0]
    assert str(info.value)  # a human-readable reason


def test_action_reply_must_carry_exactly_the_action_array():
    arrays = [{"name": "action", "dtype": "float64", "shape": [1]}, {"name": "extra", "dtype": "float64", "shape": [1]}]
    header = {"v": 1, "kind": "action", "id": 1, "meta": {"t_obs": 0.0, "inference_s": 0.1}, "arrays": arrays}
    with pytest.raises(MessageError, match="carries arrays"):
        decode(_frames(header, b"\0" * 8, b"\0" * 8))


def test_token_checked_before_arrays():
    frames = encode(Message("infer", 3, meta={"t_obs": 0.0}, arrays={"x": np.zeros(2)}, token="wrong"))
    frames[1] = b"garbage"  # never looked at: authentication fails first
    with pytest.raises(AuthenticationError, match="wrong token"):
        decode(frames, token="right")
    no_token = encode(Message("infer", 3, meta={"t_obs": 0.0}, arrays={"x": np.zeros(2)}))
    with pytest.raises(AuthenticationError, match="no token"):
        decode(no_token, token="right")
    assert decode(no_token).request_id == 3  # a server without a token accepts it


def test_an_infer_request_may_say_how_many_planned_steps_are_committed():
    planned = {"robot_eef_pose": np.zeros((2, 6)), PLANNED_ACTION: np.zeros((4, 2))}
    out = decode(encode(Message("infer", 1, meta={"t_obs": 0.0, "committed_steps": 2}, arrays=planned)))
    assert out.meta == {"t_obs": 0.0, "committed_steps": 2} and out.arrays[PLANNED_ACTION].shape == (4, 2)
    for bad in ("2", 2.0, True, None):
        with pytest.raises(MessageError, match="bad_meta.*committed_steps"):
            encode(Message("infer", 1, meta={"t_obs": 0.0, "committed_steps": bad}, arrays=planned))
    with pytest.raises(MessageError, match="bad_meta.*unknown"):
        encode(Message("info_request", 1, meta={"committed_steps": 2}))


def test_encode_refuses_what_decode_would_reject():
    with pytest.raises(MessageError, match="non_finite"):
        encode(Message("infer", 1, meta={"t_obs": 0.0}, arrays={"x": np.array([np.inf])}))
    with pytest.raises(MessageError, match="bad_dtype"):
        encode(Message("infer", 1, meta={"t_obs": 0.0}, arrays={"x": np.array(["a"])}))
    with pytest.raises(MessageError, match="bad_meta"):
        encode(Message("infer", 1, meta={"t_obs": float("nan")}, arrays={"x": np.zeros(1)}))
    with pytest.raises(MessageError, match="too_large"):
        encode(Message("infer", 1, meta={"t_obs": 0.0}, arrays={"x": np.zeros(1000)}), Limits(max_array_bytes=100))
    with pytest.raises(MessageError, match="bad_kind"):
        encode(Message("pickle", 1))


def test_decoded_arrays_are_read_only_views():
    out = decode(encode(Message("infer", 1, meta={"t_obs": 0.0}, arrays={"x": np.zeros(3)})))
    with pytest.raises(ValueError):
        out.arrays["x"][0] = 1.0


def test_peek_request_id_for_error_replies():
    assert peek_request_id(_frames(_good_header(kind="bogus", id=77))) == 77
    assert peek_request_id([b"\xff"]) == 0
    assert peek_request_id(_frames(_good_header(id="x"))) == 0


def test_no_pickle_in_the_server_package():
    import pathlib

    import robot_stack.server as pkg

    for path in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "pickle.loads" not in text, path
        assert "recv_pyobj" not in text and "send_pyobj" not in text, path
