import json
import logging
import time

import numpy as np
import pytest
from server_fakes import FakeDelayPolicy, raw_exchange

from robot_stack.config import ConfigError
from robot_stack.server.messages import Message, MessageError, encode
from robot_stack.server.policy_service import PolicyInfo, PolicyService
from robot_stack.server.transport import PolicyClient, PolicyServer, PolicyTimeout, RemoteError, normalize_endpoint


def _obs(n_obs_steps=2, xy=(0.4, 0.1)):
    pose = np.zeros((n_obs_steps, 6))
    pose[:, :2] = xy
    return {"robot_eef_pose": pose, "camera_0": np.full((n_obs_steps, 3, 16, 16), 0.5, np.float32)}


def test_info_and_infer_round_trip(serve):
    srv = serve()
    with PolicyClient(srv.endpoint) as client:
        info = client.info()
        assert (info.n_obs_steps, info.n_action_steps, info.action_dim, info.dt) == (2, 8, 2, 0.1)
        assert info.obs_shapes == {"robot_eef_pose": (2,), "camera_0": (3, 16, 16)}
        assert info.steps_per_inference is None  # the fake policy does not say: whole chunks
        chunk = client.infer(_obs(), t_obs=100.0)
    assert chunk.actions.shape == (8, 2)
    np.testing.assert_allclose(chunk.actions[:, 0], 0.4 + 0.001 * np.arange(8))
    assert chunk.t_obs == 100.0 and chunk.t_sent <= chunk.t_received
    assert srv.server.stats.served == 2


def test_the_policys_steps_per_inference_travels_in_info_and_is_range_checked(serve):
    policy = FakeDelayPolicy()
    policy.steps_per_inference = 3
    with PolicyClient(serve(policy).endpoint) as client:
        info = client.info()
    assert info.steps_per_inference == 3
    with pytest.raises(MessageError, match="bad_meta.*steps_per_inference"):
        PolicyInfo.from_meta({**info.to_meta(), "steps_per_inference": 9})  # more than the 8-action chunk


def test_unauthenticated_requests_rejected_logged_and_server_keeps_serving(serve, caplog):
    srv = serve(token="s3cret")
    caplog.set_level(logging.WARNING, logger="robot_stack.server.transport")
    for token, expected in [(None, "no token"), ("guess", "wrong token")]:
        with PolicyClient(srv.endpoint, token=token) as bad:
            with pytest.raises(RemoteError) as info:
                bad.infer(_obs(), t_obs=1.0)
        assert info.value.code == "unauthenticated" and expected in info.value.reason
        assert any(expected in r.getMessage() and "rejected" in r.getMessage() for r in caplog.records)
    with PolicyClient(srv.endpoint, token="s3cret") as good:
        assert good.infer(_obs(), t_obs=1.0).actions.shape == (8, 2)
    assert srv.server.stats.rejected["unauthenticated"] == 2
    assert srv.server.stats.served == 1


@pytest.mark.parametrize(
    "frames, code",
    [
        ([b"not json at all"], "bad_header"),
        ([json.dumps({"v": 1, "kind": "infer", "id": 9, "meta": {"t_obs": 1.0},
                      "arrays": [{"name": "x", "dtype": "object", "shape": [1]}]}).encode(), b"12345678"], "bad_dtype"),
        (encode(Message("infer", 9, meta={"t_obs": 1.0}, arrays={"robot_eef_pose": np.zeros((2, 6))})),
         "bad_observation"),
        (encode(Message("infer", 9, meta={"t_obs": 1.0},
                        arrays={"robot_eef_pose": np.zeros((2, 6)), "camera_0": np.zeros((2, 3, 8, 8), np.float32)})),
         "bad_observation"),
        (encode(Message("info", 9, meta={"n_obs_steps": 1, "n_action_steps": 1, "horizon": 1, "action_dim": 1,
                                         "obs_shapes": {}, "dt": None, "action_delay_steps": None,
                                         "steps_per_inference": None})), "bad_kind"),
    ],
)
def test_malformed_messages_get_error_reply_and_server_keeps_serving(serve, caplog, frames, code):
    srv = serve()
    caplog.set_level(logging.WARNING, logger="robot_stack.server.transport")
    reply = raw_exchange(srv.endpoint, frames)
    assert reply.kind == "error" and reply.meta["code"] == code
    assert reply.request_id in (0, 9)
    assert any(code in r.getMessage() for r in caplog.records), "rejection reason not logged"
    with PolicyClient(srv.endpoint) as client:  # still serving
        assert client.infer(_obs(), t_obs=1.0).actions.shape == (8, 2)


def test_policy_errors_become_error_replies(serve):
    policy = FakeDelayPolicy()
    srv = serve(policy)

    def refuse(obs):
        raise ValueError("'camera_0': image values must be in [0, 1]")  # what the real policy says

    policy.predict_action = refuse
    with PolicyClient(srv.endpoint) as client:
        with pytest.raises(RemoteError, match="policy_error: 'camera_0': image values must be in"):
            client.infer(_obs(), t_obs=1.0)
    assert srv.server.stats.rejected["policy_error"] == 1


def test_client_timeout_and_late_reply_discarded(serve):
    srv = serve(FakeDelayPolicy(delay=0.4))
    with PolicyClient(srv.endpoint) as client:
        t0 = time.monotonic()
        with pytest.raises(PolicyTimeout):
            client.infer(_obs(xy=(0.1, 0.1)), t_obs=1.0, timeout=0.1)
        assert time.monotonic() - t0 < 0.3  # the robot side got control back on time
        # The next request's reply must be its own, not the late one for the abandoned request.
        chunk = client.infer(_obs(xy=(0.3, 0.3)), t_obs=2.0, timeout=3.0)
        assert chunk.t_obs == 2.0
        np.testing.assert_allclose(chunk.actions[0], [0.3, 0.3])
        assert client.late_replies == 1


def test_unreachable_server_reported_fast():
    with PolicyClient("tcp://127.0.0.1:9", timeout=0.2) as client:  # nothing listens on port 9
        t0 = time.monotonic()
        with pytest.raises(PolicyTimeout, match="not reachable"):
            client.submit(_obs(), t_obs=1.0, timeout=0.0)
        with pytest.raises(PolicyTimeout):
            client.info()
        assert time.monotonic() - t0 < 1.0


def test_binding_beyond_loopback_needs_explicit_flag():
    with pytest.raises(ConfigError, match="allow-remote"):
        PolicyServer(PolicyService(FakeDelayPolicy()), bind="0.0.0.0:*")
    with PolicyServer(PolicyService(FakeDelayPolicy()), bind="0.0.0.0:*", allow_remote=True, token="t") as srv:
        assert srv.endpoint.startswith("tcp://0.0.0.0:")
    with pytest.raises(ConfigError, match="must not be empty"):
        PolicyServer(PolicyService(FakeDelayPolicy()), bind="127.0.0.1:*", token="")


@pytest.mark.parametrize("address, endpoint", [("localhost:5555", "tcp://localhost:5555"),
                                               ("tcp://10.0.0.2:6000", "tcp://10.0.0.2:6000"),
                                               ("ipc:///tmp/x.sock", "ipc:///tmp/x.sock")])
def test_normalize_endpoint(address, endpoint):
    assert normalize_endpoint(address) == endpoint


@pytest.mark.parametrize("address", ["5555", "host:0", "host:70000", "host:abc", ":5555"])
def test_bad_endpoints_are_config_errors(address):
    with pytest.raises(ConfigError, match="policy endpoint"):
        normalize_endpoint(address)


def test_server_answers_only_the_newest_of_a_clients_waiting_requests(serve):
    policy = FakeDelayPolicy(delay=0.3)
    srv = serve(policy)
    with PolicyClient(srv.endpoint) as client:
        with pytest.raises(PolicyTimeout):
            client.infer(_obs(xy=(0.1, 0.1)), t_obs=1.0, timeout=0.1)  # A: being computed
        with pytest.raises(PolicyTimeout):
            client.infer(_obs(xy=(0.2, 0.2)), t_obs=2.0, timeout=0.1)  # B: waits, then superseded by C
        t0 = time.monotonic()
        chunk = client.infer(_obs(xy=(0.3, 0.3)), t_obs=3.0, timeout=3.0)
        waited = time.monotonic() - t0
    np.testing.assert_allclose(chunk.actions[0], [0.3, 0.3])
    assert srv.server.stats.superseded == 1 and policy.calls == 2
    assert waited < 0.65  # the rest of A (~0.1 s) + C (0.3 s); B (another 0.3 s) was never computed
