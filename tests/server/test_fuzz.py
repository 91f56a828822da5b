"""Nothing a peer sends can crash the policy server: ``decode`` raises only ``MessageError`` for any input
(property-based), and a live server on loopback survives a bounded flood of garbage and still answers."""

import json
import random

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_fakes import raw_exchange

from robot_stack.server.messages import Message, MessageError, decode, encode

# JSON values, including the shapes that broke the server: huge integers and deep nesting.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
_descriptor = st.fixed_dictionaries({
    "name": st.sampled_from(["camera_0", "robot_eef_pose", "action", "x y", ""]) | st.text(max_size=10),
    "dtype": st.sampled_from(["float32", "uint8", "bool", "float64", "object", "<f4", "V8"]) | st.text(max_size=6),
    "shape": st.lists(st.integers(min_value=-3, max_value=2**70) | st.sampled_from([0, 1, 2, 3]), max_size=7) | _json,
})
_header = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 2, True, 1.0]) | _json,
     "kind": st.sampled_from(["infer", "info_request", "info", "action", "error"]) | _json,
     "id": st.integers(min_value=-5, max_value=2**80) | _json,
     "meta": st.fixed_dictionaries({"t_obs": st.floats() | _json}) | _json,
     "arrays": st.lists(_descriptor, max_size=3) | _json},
    optional={"token": st.text(max_size=8) | _json, "extra": _json},
)


def _assert_only_message_errors(frames, token):
    try:
        decode(frames, token=token)
    except MessageError as exc:
        # "bad_message" is decode's last-resort net for an unforeseen exception: the checks must come first.
        assert exc.code != "bad_message", exc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(st.binary(max_size=256), max_size=5), token=st.sampled_from([None, "s3cret"]))
def test_random_bytes_raise_only_message_errors(frames, token):
    _assert_only_message_errors(frames, token)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=_header, payload=st.lists(st.binary(max_size=64), max_size=4), token=st.sampled_from([None, "s3cret"]))
def test_structured_headers_raise_only_message_errors(header, payload, token):
    _assert_only_message_errors([json.dumps(header).encode(), *payload], token)


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_the_two_headers_that_killed_serve_are_message_errors(token):
    huge_int = b'{"v":1,"kind":"info_request","id":' + b"9" * 5000 + b',"meta":{},"arrays":[]}'
    deep = b'{"v":1,"kind":"info_request","id":1,"meta":{},"arrays":[],"x":' + b"[" * 30000 + b"]" * 30000 + b"}"
    for frames in ([huge_int], [deep[:60000]], [b"[" * 30000]):
        with pytest.raises(MessageError, match="bad_header"):
            decode(frames, token=token)


def test_token_is_checked_before_the_rest_of_the_header():
    # Wrong token plus a bad kind: the answer is about the token (nothing else of the message was looked at).
    frames = [json.dumps({"v": 1, "kind": "nonsense", "id": 1, "meta": [], "arrays": 5, "token": "guess"}).encode()]
    with pytest.raises(MessageError, match="unauthenticated"):
        decode(frames, token="s3cret")


def test_live_server_survives_a_bounded_garbage_flood(serve):
    srv = serve(token="s3cret")
    rng = random.Random(1234)
    valid = encode(Message("info_request", 7, token="s3cret"))
    floods = [
        [b'{"v":1,"kind":"info_request","id":' + b"9" * 5000 + b',"meta":{},"arrays":[]}'],
        [b"[" * 30000],
        [valid[0], b"unexpected array frame"],
        [b""],
    ]
    for _ in range(300):
        kind = rng.random()
        if kind < 0.4:
            floods.append([rng.randbytes(rng.randint(0, 300)) for _ in range(rng.randint(1, 4))])
        elif kind < 0.8:
            header = json.loads(valid[0])
            key = rng.choice(list(header))
            header[key] = rng.choice([None, -1, 2**70, "x" * 50, [1, [2, [3]]], {"a": {}}, 1e308])
            floods.append([json.dumps(header).encode(), *[rng.randbytes(8) for _ in range(rng.randint(0, 2))]])
        else:
            mutated = bytearray(valid[0])
            for _ in range(rng.randint(1, 5)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            floods.append([bytes(mutated)])
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(srv.endpoint)
    try:
        for frames in floods:
            sock.send_multipart(frames)
    finally:
        sock.close()
    reply = raw_exchange(srv.endpoint, valid, timeout=20)
    assert srv.alive
    assert reply.kind == "info" and reply.request_id == 7
    assert srv.server.stats.total_rejected > 0 and srv.server.stats.served >= 1
    assert reply.meta["obs_shapes"]["robot_eef_pose"] == [2]
