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


def test_the_policys_chunking_travels_in_info_only_when_it_has_one_and_is_checked(serve):
    policy = FakeDelayPolicy()
    with PolicyClient(serve(policy).endpoint) as client:
        info = client.info()
    assert info.chunking is None and "chunking" not in info.to_meta()  # an older server's info parses the same
    policy.chunking = "ensemble"
    with PolicyClient(serve(policy).endpoint) as client:
        assert client.info().chunking == "ensemble"
    with pytest.raises(MessageError, match="bad_meta.*chunking"):
        PolicyInfo.from_meta({**info.to_meta(), "chunking": "blend"})


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


def test_an_inpainting_request_carries_the_plan_and_the_policy_keeps_its_committed_actions(serve, tiny_checkpoint):
    import torch

    from robot_stack.policy import load_policy

    obs = {"robot_eef_pose": np.tile([0.4, 0.1, 0.0, 0.0, 0.0, 0.0], (2, 1)),
           "camera_0": np.full((2, 3, 32, 32), 0.5, np.float32)}
    planned = np.column_stack([np.linspace(0.40, 0.46, 6), np.linspace(0.10, 0.13, 6)])
    with PolicyClient(serve(load_policy(tiny_checkpoint)).endpoint) as client:
        torch.manual_seed(0)
        client.submit(obs, t_obs=1.0, timeout=5.0, plan=(planned, 2))
        chunk = _poll(client)
        torch.manual_seed(0)
        client.submit(obs, t_obs=1.0, timeout=5.0)
        plain = _poll(client)
        with pytest.raises(MessageError, match="non_finite"):  # never sent
            client.submit(obs, t_obs=1.0, timeout=5.0, plan=(np.full((3, 2), np.nan), 1))
    np.testing.assert_allclose(chunk.actions[:2], planned[:2], atol=1e-5)  # committed: kept
    # the blended steps are pulled toward the plan: nearer to it than an unguided sample's
    assert np.abs(chunk.actions[2:6] - planned[2:6]).mean() < np.abs(plain.actions[2:6] - planned[2:6]).mean()


@pytest.mark.parametrize("planned, committed, message", [
    (np.zeros((3, 3)), 1, "must be float"),  # 3-D actions for a 2-D policy
    (np.zeros((40, 2)), 1, "must be float"),  # longer than the horizon
    (np.zeros((3, 2)), 4, "committed_steps"),
    (np.full((3, 2), np.nan), 1, "NaN"),  # what a server might receive from a client that is not ours
    (None, 2, "without"),
])
def test_malformed_plans_are_refused(tiny_checkpoint, planned, committed, message):
    from robot_stack.policy import load_policy

    service = PolicyService(load_policy(tiny_checkpoint))
    obs = {"robot_eef_pose": np.zeros((2, 6)), "camera_0": np.full((2, 3, 32, 32), 0.5, np.float32)}
    with pytest.raises(MessageError, match=f"bad_plan.*{message}"):
        service.infer(obs, planned, committed)


def test_a_policy_without_plans_refuses_one(serve):
    with PolicyClient(serve().endpoint) as client:
        client.submit(_obs(), t_obs=1.0, timeout=5.0, plan=(np.zeros((2, 2)), 1))  # waits to connect
        with pytest.raises(RemoteError, match="bad_plan.*does not take"):
            _poll(client)


def _poll(client, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = client.poll(0.05)
        if chunk is not None:
            return chunk
    raise AssertionError("no reply")
