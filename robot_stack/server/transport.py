"""ZeroMQ policy server and client (``messages`` schema on the wire; no pickle).

Sockets: the server is a ROUTER, the client a DEALER. A REQ socket would wedge after a timed-out request
(it insists on receiving that reply before it may send again); with DEALER a client that gave up on a
request just sends the next one and discards the late reply by its request id.

Robot-side control: every client call has a timeout, and ``submit``/``poll`` never block the control loop
longer than asked. With ``IMMEDIATE`` nothing is queued while the server is unreachable (a dead server is
reported as a timeout, not silently buffered), and ZMTP heartbeats drop a connection whose peer vanished
without closing it (power loss, cable), so reconnecting to a restarted server works.

Security: the server binds to loopback unless ``allow_remote`` is given. An optional shared token is
checked in constant time before anything else of a request is read; it guards against accidental or
unauthorised use on a trusted LAN but travels in clear text — across untrusted networks, tunnel the port
(e.g. ``ssh -L``). Rejected messages get an ``error`` reply and a logged reason; the server keeps serving.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import zmq

from robot_stack.config import ConfigError
from robot_stack.runtime import now
from robot_stack.server.messages import (
    DEFAULT_LIMITS,
    PLANNED_ACTION,
    Limits,
    Message,
    MessageError,
    decode,
    encode,
    error_message,
    peek_request_id,
)
from robot_stack.server.policy_service import PolicyInfo, PolicyService

log = logging.getLogger(__name__)

DEFAULT_PORT = 5555
_LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")
# Log the first rejections individually, then one summary line per this many (a misbehaving client must
# not flood the log); every rejection is counted in ``stats`` either way.
_LOG_FIRST_REJECTIONS = 20
_LOG_EVERY_REJECTIONS = 100
# At most this many waiting messages are read per serve_once (bounds the memory a flood can take).
_MAX_DRAIN = 64


class PolicyTimeout(TimeoutError):
    """The policy server did not answer in time, or could not be reached at all."""


class RemoteError(RuntimeError):
    """The policy server answered a request with an error (``code``, ``reason``)."""

    def __init__(self, code: str, reason: str):
        super().__init__(f"policy server rejected the request: {code}: {reason}")
        self.code = code
        self.reason = reason


def normalize_endpoint(address: str) -> str:
    """``host:port`` -> ``tcp://host:port``; ``tcp://``, ``ipc://`` and ``inproc://`` endpoints pass through."""
    if address.startswith(("ipc://", "inproc://")):
        return address
    body = address[len("tcp://"):] if address.startswith("tcp://") else address
    host, sep, port = body.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"policy endpoint {address!r}: expected host:port, tcp://host:port or ipc://path")
    if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"policy endpoint {address!r}: port must be 1-65535 (or * for any free port)")
    return f"tcp://{host}:{port}"


def is_loopback(endpoint: str) -> bool:
    """True for endpoints only this machine can reach (loopback TCP, ipc, inproc)."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[len("tcp://"):].rpartition(":")[0]
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def check_bind(bind: str, allow_remote: bool, token: str | None) -> str:
    """The server endpoint for ``bind``; ``ConfigError`` for a non-loopback address without ``allow_remote``."""
    endpoint = normalize_endpoint(bind)
    if not is_loopback(endpoint) and not allow_remote:
        raise ConfigError(
            f"refusing to bind the policy server to {endpoint}: that exposes the robot's policy to the "
            "network. Bind 127.0.0.1 (default), or pass --allow-remote (with --token) on a trusted network"
        )
    if token is not None and not token:
        raise ConfigError("token: must not be empty (omit it to run without one)")
    if not is_loopback(endpoint) and token is None:
        log.warning("policy server on %s without a token: anyone who can reach it can query it", endpoint)
    return endpoint


def _configure(sock: zmq.Socket, endpoint: str, limits: Limits) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    # Reject oversized frames at the socket, before they are even buffered.
    sock.setsockopt(zmq.MAXMSGSIZE, limits.max_frame_bytes + 1024)
    sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
    if endpoint.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)


@dataclass
class ServerStats:
    """What the server did: requests answered, rejected (by reason code), skipped because the same client
    had sent a newer one (``superseded``), replies it could not send."""

    served: int = 0
    rejected: Counter = field(default_factory=Counter)
    superseded: int = 0
    unsent_replies: int = 0

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


class PolicyServer:
    """Answers ``info_request`` and ``infer`` messages with a ``PolicyService``, one request at a time."""

    def __init__(
        self,
        service: PolicyService,
        bind: str = f"127.0.0.1:{DEFAULT_PORT}",
        token: str | None = None,
        allow_remote: bool = False,
        limits: Limits = DEFAULT_LIMITS,
    ):
        endpoint = check_bind(bind, allow_remote, token)
        self.service = service
        self.token = token
        self.limits = limits
        self.stats = ServerStats()
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        _configure(self._sock, endpoint, limits)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close()
            raise ConfigError(f"cannot bind the policy server to {endpoint}: {exc} (port in use? wrong address?)") from None
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("policy server listening on %s%s", self.endpoint, " (token required)" if token else "")

    def serve_once(self, timeout: float) -> bool:
        """Answer the requests waiting (up to ``timeout`` s for the first); True if any arrived.

        Only each client's newest waiting request is answered: a client that gave up on a request (timeout)
        has already sent a fresher one, and answering the old one first would only delay the new one behind
        a result nobody reads. Skipped requests are counted in ``stats.superseded``.
        """
        if not self._sock.poll(int(timeout * 1000), zmq.POLLIN):
            return False
        newest: dict[bytes, list[zmq.Frame]] = {}
        for _ in range(_MAX_DRAIN):
            frames = self._sock.recv_multipart(copy=False)
            key = frames[0].bytes
            if key in newest:
                self.stats.superseded += 1
            newest[key] = frames
            if not self._sock.poll(0, zmq.POLLIN):
                break
        for frames in newest.values():
            try:
                self._answer(frames)
            except Exception:  # noqa: BLE001 - no single message may stop the server
                self.stats.rejected["internal_error"] += 1
                log.exception("policy server: failed to answer a message; still serving")
        return True

    def _answer(self, frames: list[zmq.Frame]) -> None:
        identity, body = frames[0], frames[1:]
        peer = _peer_address(frames[-1])
        reply = self._handle(body, peer)
        try:
            out = encode(reply, self.limits)
            if reply.kind != "error":
                self.stats.served += 1
        except MessageError as exc:  # e.g. the policy produced NaN actions: never sent, reported instead
            out = encode(self._reject(reply.request_id, exc, peer), self.limits)
        try:
            self._sock.send_multipart([identity, *out], flags=zmq.NOBLOCK)
        except zmq.Again:
            # The client is gone or not reading; it will time out on its side.
            self.stats.unsent_replies += 1

    def serve_forever(self, should_stop: Callable[[], bool] = lambda: False, poll_interval: float = 0.1) -> None:
        """Serve until ``should_stop()`` returns True (checked every ``poll_interval`` s)."""
        while not should_stop():
            self.serve_once(poll_interval)

    def _handle(self, body: list[Any], peer: str) -> Message:
        try:
            if not body:
                raise MessageError("empty", "message has no frames")
            request = decode(body, self.limits, token=self.token)
        except MessageError as exc:
            return self._reject(peek_request_id(body, self.limits) if body else 0, exc, peer)
        rid = request.request_id
        try:
            if request.kind == "info_request":
                reply = Message("info", rid, meta=self.service.info.to_meta())
            elif request.kind == "infer":
                observation = dict(request.arrays)
                planned = observation.pop(PLANNED_ACTION, None)
                actions, elapsed = self.service.infer(observation, planned, request.meta.get("committed_steps"))
                reply = Message("action", rid, meta={"t_obs": request.meta["t_obs"], "inference_s": elapsed},
                                arrays={"action": actions})
            else:
                raise MessageError("bad_kind", f"the server accepts info_request and infer, not {request.kind!r}")
        except MessageError as exc:
            return self._reject(rid, exc, peer)
        except (ValueError, RuntimeError) as exc:
            return self._reject(rid, MessageError("policy_error", str(exc)), peer)
        except Exception as exc:  # noqa: BLE001 - a server must outlive any single bad request
            log.exception("policy server: internal error on request %d from %s", rid, peer)
            return self._reject(rid, MessageError("internal_error", f"{type(exc).__name__}: {exc}"), peer)
        return reply

    def _reject(self, rid: int, exc: MessageError, peer: str) -> Message:
        self.stats.rejected[exc.code] += 1
        n = self.stats.total_rejected
        if n <= _LOG_FIRST_REJECTIONS:
            log.warning("policy server: rejected request %d from %s: %s", rid, peer, exc)
        elif n % _LOG_EVERY_REJECTIONS == 0:
            log.warning("policy server: %d requests rejected so far %s; latest: %s", n, dict(self.stats.rejected), exc)
        return error_message(rid, exc.code, exc.reason)

    def close(self) -> None:
        """Unbind and close the socket."""
        self._sock.close(linger=0)

    def __enter__(self) -> "PolicyServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _peer_address(frame: Any) -> str:
    try:
        return frame.get("Peer-Address") or "local peer"
    except zmq.ZMQError:
        return "local peer"


@dataclass(frozen=True)
class ActionChunk:
    """One reply to ``infer``: the actions and the times needed to schedule them."""

    request_id: int
    actions: np.ndarray  # (n_action_steps, Da) float64
    t_obs: float  # timestamp of the latest observation the chunk was predicted from (runtime clock)
    t_sent: float  # when the request was sent
    t_received: float  # when the reply arrived
    inference_s: float  # time the server spent in predict_action

    @property
    def latency(self) -> float:
        """Observation-to-arrival time of this chunk (what the first usable action must outlast)."""
        return self.t_received - self.t_obs


class PolicyClient:
    """Robot-side connection to a ``PolicyServer``; at most one request in flight.

    ``submit`` + ``poll`` let a control loop keep running while the server thinks; ``infer`` and ``info``
    are the blocking forms. Replies to abandoned requests are discarded by id (counted in
    ``late_replies``).
    """

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = 2.0, limits: Limits = DEFAULT_LIMITS):
        self.endpoint = normalize_endpoint(endpoint)
        self.token = token
        self.timeout = timeout
        self.limits = limits
        self.late_replies = 0
        self._ids = itertools.count(1)
        self._in_flight: tuple[int, float, float] | None = None  # (id, t_obs sent, t_sent)
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        _configure(self._sock, self.endpoint, limits)
        self._sock.setsockopt(zmq.IMMEDIATE, 1)
        self._sock.connect(self.endpoint)
        self._lock = threading.Lock()  # sockets are not thread-safe; a preview thread may share a client

    @property
    def in_flight(self) -> bool:
        """True while a submitted request awaits its reply."""
        return self._in_flight is not None

    def info(self, timeout: float | None = None) -> PolicyInfo:
        """The served policy's interface (blocking)."""
        self._send("info_request", {}, {}, self._timeout(timeout), t_obs=float("nan"))
        reply = self._wait(self._timeout(timeout))
        if reply.kind != "info":
            raise RemoteError("bad_reply", f"expected an info reply, got {reply.kind!r}")
        return PolicyInfo.from_meta(reply.meta)

    def submit(self, obs: Mapping[str, np.ndarray], t_obs: float, timeout: float = 0.0,
               plan: tuple[np.ndarray, int] | None = None) -> int:
        """Send an observation history; returns the request id. Waits at most ``timeout`` s to send.

        ``plan``: (planned actions (K, Da), committed steps) for an inpainted chunk (``PolicyService.infer``).
        Raises ``PolicyTimeout`` if the server is unreachable, ``MessageError`` if ``obs`` is not sendable
        (e.g. NaN), ``RuntimeError`` if a request is already in flight.
        """
        meta: dict[str, Any] = {"t_obs": float(t_obs)}
        arrays = dict(obs)
        if plan is not None:
            arrays[PLANNED_ACTION] = np.asarray(plan[0], dtype=np.float64)
            meta["committed_steps"] = int(plan[1])
        return self._send("infer", meta, arrays, timeout, t_obs=float(t_obs))

    def poll(self, timeout: float = 0.0) -> ActionChunk | None:
        """The in-flight request's action chunk if it arrives within ``timeout`` s, else ``None``.

        Raises ``RemoteError`` if the server rejected the request (the request is then finished).
        """
        if self._in_flight is None:
            raise RuntimeError("poll() without a submitted request")
        rid, t_obs, t_sent = self._in_flight
        reply = self._wait(timeout, raise_timeout=False)
        if reply is None:
            return None
        if reply.kind != "action":
            raise RemoteError("bad_reply", f"expected an action reply, got {reply.kind!r}")
        if reply.meta["t_obs"] != t_obs:
            # Timestamps are ours: a reply must not move the plan in time.
            raise RemoteError("bad_reply", f"reply is for t_obs={reply.meta['t_obs']}, the request had {t_obs}")
        actions = reply.arrays["action"]
        if actions.ndim != 2:
            raise RemoteError("bad_reply", f"action chunk must be (steps, dims), got shape {actions.shape}")
        return ActionChunk(rid, actions.astype(np.float64), t_obs, t_sent, now(), float(reply.meta["inference_s"]))

    def infer(self, obs: Mapping[str, np.ndarray], t_obs: float, timeout: float | None = None) -> ActionChunk:
        """Blocking ``submit`` + ``poll``; raises ``PolicyTimeout`` after ``timeout`` s (the request is abandoned)."""
        deadline = now() + self._timeout(timeout)
        self.submit(obs, t_obs, timeout=self._timeout(timeout))
        chunk = self.poll(max(0.0, deadline - now()))
        if chunk is None:
            self.cancel()
            raise PolicyTimeout(f"no action chunk from {self.endpoint} within {self._timeout(timeout):.2f} s")
        return chunk

    def cancel(self) -> None:
        """Abandon the in-flight request (its reply, if it ever comes, is discarded)."""
        self._in_flight = None

    def close(self) -> None:
        """Close the connection."""
        self._sock.close(linger=0)

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------
    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _send(self, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray], timeout: float, t_obs: float) -> int:
        if self._in_flight is not None:
            raise RuntimeError("a request is already in flight; poll() it or cancel() first")
        rid = next(self._ids)
        frames = encode(Message(kind, rid, meta=meta, arrays=arrays, token=self.token), self.limits)
        with self._lock:
            # IMMEDIATE: the socket is writable only with a live connection, so this times out when the
            # server is down instead of queueing requests for a server that may never come back.
            if not self._sock.poll(int(timeout * 1000), zmq.POLLOUT):
                raise PolicyTimeout(f"policy server {self.endpoint} is not reachable (is `robot-stack serve` running?)")
            self._sock.send_multipart(frames, flags=zmq.NOBLOCK)
        self._in_flight = (rid, t_obs, now())
        return rid

    def _wait(self, timeout: float, raise_timeout: bool = True) -> Message | None:
        assert self._in_flight is not None
        rid = self._in_flight[0]
        deadline = now() + timeout
        while True:
            remaining = max(0.0, deadline - now())
            with self._lock:
                ready = self._sock.poll(int(remaining * 1000), zmq.POLLIN)
                frames = self._sock.recv_multipart(flags=zmq.NOBLOCK) if ready else None
            if frames is None:
                if now() < deadline:
                    continue  # poll woke early (rounding to ms)
                if raise_timeout:
                    self.cancel()
                    raise PolicyTimeout(f"policy server {self.endpoint} did not answer within {timeout:.2f} s")
                return None
            try:
                reply = decode(frames, self.limits)
            except MessageError as exc:
                self.cancel()
                raise RemoteError("bad_reply", f"malformed reply from {self.endpoint}: {exc}") from None
            if reply.request_id != rid and not (reply.kind == "error" and reply.request_id == 0):
                self.late_replies += 1
                log.debug("discarding reply to abandoned request %d", reply.request_id)
                continue
            self.cancel()
            if reply.kind == "error":
                raise RemoteError(reply.meta["code"], reply.meta["reason"])
            return reply
