"""``RTDELoopbackServer``: a UR controller on loopback sockets — RTDE (30004), dashboard (29999) and the
script ports (30002/30003) — backed by a simulated arm, so the real ur_rtde clients can connect to it.

Threads: one control loop ticks the ``LoopbackController`` at the controller frequency (125 Hz CB3, 500 Hz
e-series) and queues each RTDE client's DATA_PACKAGEs; one thread accepts connections; each connection has
a reader thread (and RTDE connections a writer thread, so a slow client never blocks the control loop: if
its backlog exceeds ``MAX_BACKLOG`` packages the oldest data packages are dropped and counted, as the
controller skips packages when a client lags).

Bad input never takes the server down: a malformed RTDE message, an over-long dashboard line or script is
logged with the reason and that connection is closed; ``stats`` counts it.

ur_rtde's Python bindings hold the GIL while they wait for the robot, so a client in the same interpreter as
this server deadlocks it: use ``SimLoopbackProcess`` (``sim_process.py``) to run the server in a child process.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import re
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from robot_stack.hardware.robot.rtde_loopback.arm import LoopbackArm
from robot_stack.hardware.robot.rtde_loopback.conditions import Fault, NetworkConditions
from robot_stack.hardware.robot.rtde_loopback.controller import CB3, ControllerVersion, LoopbackController
from robot_stack.hardware.robot.rtde_loopback.dashboard import WELCOME, Dashboard
from robot_stack.hardware.robot.rtde_loopback.protocol import (
    PROTOCOL_VERSION,
    MessageLevel,
    MessageReader,
    MessageType,
    Recipe,
    RTDEProtocolError,
    join_types,
    pack_message,
    pack_text_message,
    parse_names,
)
from robot_stack.hardware.robot.rtde_loopback.variables import output_type

log = logging.getLogger(__name__)

RTDE_PORT = 30004
DASHBOARD_PORT = 29999
SCRIPT_PORTS = (30002, 30003)  # secondary and real-time client interfaces both accept URScript
MAX_BACKLOG = 64  # queued messages per RTDE client before its oldest data packages are dropped
MAX_DASHBOARD_LINE = 4096
MAX_SCRIPT_BYTES = 1 << 20
_POLL_S = 0.1  # how often blocked threads look at the stop flag
_RECIPE_FAILED = 0
_PROGRAM = re.compile(r"^(def|sec)\s+\w+\s*\(\s*\)\s*:", re.MULTILINE)
_PROGRAM_END = re.compile(r"^end[ \t]*(\r?\n|$)", re.MULTILINE)


@dataclass
class LoopbackStats:
    """Counters of what the server saw (read them to check nothing went wrong silently)."""

    connections: int = 0
    refused_connections: int = 0  # over ``max_connections``
    protocol_errors: int = 0  # connections closed for malformed input
    dropped_packages: int = 0  # data packages a lagging RTDE client did not get
    late_cycles: int = 0  # control cycles that started more than one period late
    injected_drops: int = 0  # data packages lost on purpose (``NetworkConditions.drop``)
    injected_faults: int = 0  # scheduled faults that fired
    rejected_programs: int = 0  # scripts received that the loopback cannot run
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


class RTDELoopbackServer:
    """A simulated UR controller serving RTDE, dashboard and script connections on a loopback address.

    ``arm`` is the simulated arm (a ``LoopbackArm``, e.g. ``SimUR5``); the server owns its time from
    ``start()`` on. Use as a context manager or call ``start()``/``stop()``. Ports default to the robot's, so
    that ur_rtde (which has no port option for RTDE) can connect: give each server its own loopback address
    (any 127.x.y.z works on Linux; see ``find_free_loopback_host``) to run several side by side.
    """

    def __init__(
        self,
        arm: LoopbackArm,
        host: str = "127.0.0.1",
        *,
        version: ControllerVersion = CB3,
        tcp_offset: Sequence[float] = (0.0,) * 6,
        rtde_port: int = RTDE_PORT,
        dashboard_port: int = DASHBOARD_PORT,
        script_ports: tuple[int, ...] = SCRIPT_PORTS,
        allow_non_loopback: bool = False,
        max_connections: int = 16,
        on_tick: Callable[[LoopbackController], None] | None = None,
        network: NetworkConditions | None = None,
        faults: Sequence[Fault] = (),
    ):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IP address, got {host!r}") from None
        if not address.is_loopback and not allow_non_loopback:
            raise ValueError(
                f"refusing to serve a simulated robot on {host}, which is not a loopback address; "
                "pass allow_non_loopback=True if other machines must reach it"
            )
        self.host = host
        self.controller = LoopbackController(arm, version, tcp_offset)
        self.stats = LoopbackStats()
        self.max_connections = max_connections
        self._on_tick = on_tick
        self.network = network if network is not None and network.impaired else None
        self._faults = sorted(faults, key=lambda f: f.at)
        self._delayed_inputs: collections.deque[tuple[float, _RTDESession, Recipe, bytes]] = collections.deque()
        self._delayed_lock = threading.Lock()
        self._dashboard = Dashboard(self.controller)
        self._requested_ports = {"rtde": rtde_port, "dashboard": dashboard_port}
        self._requested_ports.update({f"script{i}": p for i, p in enumerate(script_ports)})
        self.ports: dict[str, int] = {}
        self._listeners: dict[socket.socket, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._sessions: set[_RTDESession] = set()
        self.error: str | None = None  # set if the control loop failed (the server then stops ticking)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> "RTDELoopbackServer":
        """Bind every port and start serving; raises ``OSError`` naming the port if one is taken."""
        try:
            for role, port in self._requested_ports.items():
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, port))
                except OSError as exc:
                    sock.close()
                    why = f"cannot bind the {role} port {self.host}:{port}: {exc.strerror}"
                    raise OSError(exc.errno, why) from None
                sock.listen(8)
                self._listeners[sock] = role
                self.ports[role] = sock.getsockname()[1]
        except OSError:
            self._close_listeners()
            raise
        self._spawn(self._control_loop, "rtde-loopback-control")
        self._spawn(self._accept_loop, "rtde-loopback-accept")
        log.info("rtde loopback serving on %s: %s", self.host, self.ports)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop serving: close every connection and join the threads (idempotent)."""
        self._stop.set()
        self._close_listeners()
        with self._conn_lock:
            conns = list(self._connections)
        for sock in conns:
            _close(sock)
        deadline = time.monotonic() + timeout
        with self._threads_lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        if alive:
            log.warning("rtde loopback: threads still running after stop: %s", alive)

    def __enter__(self) -> "RTDELoopbackServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> threading.Thread:
        t = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._threads_lock:
            self._threads = [old for old in self._threads if old.is_alive()]
            self._threads.append(t)
        t.start()
        return t

    def _close_listeners(self) -> None:
        for sock in list(self._listeners):
            _close(sock)
        self._listeners.clear()

    # -- control loop --------------------------------------------------------------------------------------
    def _control_loop(self) -> None:
        period = self.controller.period
        started = next_tick = time.monotonic()
        schedule = _FaultSchedule(self._faults, self.controller, self.stats)
        while not self._stop.is_set():
            try:
                schedule.run(time.monotonic() - started)
                if self.network is not None:  # inputs are only ever delayed under injected latency
                    self._apply_delayed_inputs()
                self.controller.tick()
                if self._on_tick is not None:
                    self._on_tick(self.controller)
                with self._conn_lock:
                    sessions = list(self._sessions)
                with self.controller.lock:
                    for session in sessions:
                        session.publish(self.controller.ticks)
            except Exception as exc:  # noqa: BLE001 - report, stop ticking, keep the process alive
                self.error = f"control loop failed: {exc!r}"
                log.exception("rtde loopback: control loop failed; the simulated controller stopped")
                return
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay < -period:
                self.stats.add("late_cycles")
                next_tick = time.monotonic()  # resynchronise instead of bursting to catch up
            elif delay > 0:
                self._stop.wait(delay)

    def delay_input(self, due: float, session: "_RTDESession", recipe: Recipe, payload: bytes) -> None:
        """Apply a client's DATA_PACKAGE at ``due`` (``NetworkConditions`` latency), in arrival order."""
        with self._delayed_lock:
            self._delayed_inputs.append((due, session, recipe, payload))

    def _apply_delayed_inputs(self) -> None:
        now = time.monotonic()
        with self._delayed_lock:
            ready = []
            while self._delayed_inputs and self._delayed_inputs[0][0] <= now:
                ready.append(self._delayed_inputs.popleft())
        for _, session, recipe, payload in ready:
            if not session.closed:  # a package of a connection that is gone never arrives
                self.controller.apply_inputs(recipe.names, recipe.unpack(payload))

    # -- connections ---------------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in list(self._listeners):
            try:
                selector.register(sock, selectors.EVENT_READ)
            except (ValueError, OSError):  # stop() closed it before this thread got to run: nothing to accept
                continue
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(_POLL_S):
                    try:
                        conn, peer = key.fileobj.accept()  # type: ignore[union-attr]
                    except OSError:
                        continue  # listener closed by stop()
                    role = self._listeners.get(key.fileobj)  # type: ignore[arg-type]
                    if role is None:
                        _close(conn)
                        continue
                    self._admit(conn, peer, role)
        finally:
            selector.close()

    def _admit(self, conn: socket.socket, peer: tuple[str, int], role: str) -> None:
        with self._conn_lock:
            if len(self._connections) >= self.max_connections:
                self.stats.add("refused_connections")
                log.warning("rtde loopback: refusing %s connection from %s: %d connections open",
                            role, peer, len(self._connections))
                _close(conn)
                return
            self._connections.add(conn)
        self.stats.add("connections")
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(_POLL_S)
        handler = {"rtde": self._serve_rtde, "dashboard": self._serve_dashboard}.get(role, self._serve_script)
        self._spawn(handler, f"rtde-loopback-{role}-{peer[1]}", conn, f"{role} client {peer[0]}:{peer[1]}")

    def _forget(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.discard(conn)
        _close(conn)

    def _recv(self, conn: socket.socket) -> bytes | None:
        """Next bytes from ``conn``; b"" on timeout, None once the peer closed or the server stops."""
        if self._stop.is_set():
            return None
        try:
            data = conn.recv(65536)
        except socket.timeout:
            return b""
        except OSError:
            return None
        return data or None

    def _protocol_error(self, who: str, reason: str) -> None:
        self.stats.add("protocol_errors")
        log.warning("rtde loopback: closing connection of %s: %s", who, reason)

    def _serve_rtde(self, conn: socket.socket, who: str) -> None:
        session = _RTDESession(self, conn, who)
        with self._conn_lock:
            self._sessions.add(session)
        session.writer = self._spawn(session.write_loop, f"rtde-loopback-writer-{who}")
        reader = MessageReader()
        final = b""
        try:
            while (data := self._recv(conn)) is not None:
                for mtype, payload in reader.feed(data):
                    session.handle(mtype, payload)
        except RTDEProtocolError as exc:
            self._protocol_error(who, str(exc))
            final = pack_text_message(f"protocol error, closing the connection: {exc}", MessageLevel.ERROR)
        finally:
            with self._conn_lock:
                self._sessions.discard(session)
            session.close(final)
            self.controller.release_inputs(session)
            self._forget(conn)

    def _serve_dashboard(self, conn: socket.socket, who: str) -> None:
        buf = b""
        try:
            conn.sendall(WELCOME.encode() + b"\n")
            while (data := self._recv(conn)) is not None:
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    text = raw.decode("utf-8", "replace")
                    reply, close = self._dashboard.reply(text)
                    log.debug("rtde loopback dashboard: %r -> %r", text, reply)
                    conn.sendall(reply.encode("utf-8") + b"\n")
                    if close:
                        return
                if len(buf) > MAX_DASHBOARD_LINE:
                    self._protocol_error(who, f"dashboard request longer than {MAX_DASHBOARD_LINE} bytes")
                    return
        except OSError as exc:
            log.debug("rtde loopback: dashboard connection of %s ended: %s", who, exc)
        finally:
            self._forget(conn)

    def _serve_script(self, conn: socket.socket, who: str) -> None:
        text = ""
        try:
            while (data := self._recv(conn)) is not None:
                text += data.decode("utf-8", "replace")
                if len(text) > MAX_SCRIPT_BYTES:
                    self._protocol_error(who, f"script larger than {MAX_SCRIPT_BYTES} bytes without a complete program")
                    return
                text = self._run_programs(text, who)
        finally:
            self._forget(conn)

    def _run_programs(self, text: str, who: str) -> str:
        """Start every complete top-level program in ``text``; return the incomplete rest."""
        while (start := _PROGRAM.search(text)) is not None:
            end = _PROGRAM_END.search(text, start.end())
            if end is None or (end.group(1) == "" and not text.endswith("\n")):
                break
            loose = text[: start.start()].strip()
            if loose:
                self._reject_program(loose, who)
            if not self.controller.load_program(text[start.start() : end.end()]):
                self.stats.add("rejected_programs")
            text = text[end.end() :]
        if _PROGRAM.search(text) is None and text.endswith("\n") and text.strip():
            self._reject_program(text.strip(), who)  # complete statements outside any program
            text = ""
        return text

    def _reject_program(self, statements: str, who: str) -> None:
        self.stats.add("rejected_programs")
        log.warning("rtde loopback: ignoring URScript from %s (only ur_rtde's control script runs here): %r",
                    who, statements[:120])


class _RTDESession:
    """One RTDE client: its recipes, synchronisation state and outgoing message queue."""

    def __init__(self, server: RTDELoopbackServer, conn: socket.socket, who: str):
        self.server = server
        self.conn = conn
        self.who = who
        self.controller = server.controller
        self.outputs: list[tuple[Recipe, list[Callable[[], Any]], int]] = []  # recipe, getters, tick divisor
        self.inputs: dict[int, Recipe] = {}
        self.started = False
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        # (is_data, message, when it may be sent): data packages wait out the injected latency
        self._outbox: collections.deque[tuple[bool, bytes, float]] = collections.deque()
        self._closing = False
        self.closed = False
        self.writer: threading.Thread | None = None
        network = server.network
        self._out_link = network.link() if network is not None else None
        # packages held back by the injected latency do not count as a lagging client
        in_flight = 0 if network is None else network.latency + network.jitter
        self._backlog = MAX_BACKLOG + 4 * int(server.controller.version.frequency * in_flight)
        self._in_link = network.link() if network is not None else None

    # -- requests (reader thread) --------------------------------------------------------------------------
    def handle(self, mtype: int, payload: bytes) -> None:
        if mtype == MessageType.REQUEST_PROTOCOL_VERSION:
            if len(payload) != 2:
                raise RTDEProtocolError(f"REQUEST_PROTOCOL_VERSION payload has {len(payload)} bytes, expected 2")
            (version,) = struct.unpack(">H", payload)
            accepted = version == PROTOCOL_VERSION
            if not accepted:
                log.warning("rtde loopback: %s asked for RTDE protocol %d; only %d is served",
                            self.who, version, PROTOCOL_VERSION)
            self.reply(mtype, bytes([int(accepted)]))
        elif mtype == MessageType.GET_URCONTROL_VERSION:
            v = self.controller.version
            self.reply(mtype, struct.pack(">IIII", v.major, v.minor, v.bugfix, v.build))
        elif mtype == MessageType.CONTROL_PACKAGE_SETUP_OUTPUTS:
            self._setup_outputs(payload)
        elif mtype == MessageType.CONTROL_PACKAGE_SETUP_INPUTS:
            self._setup_inputs(payload)
        elif mtype == MessageType.CONTROL_PACKAGE_START:
            with self._lock:
                self.started = True
                self._queue(False, pack_message(mtype, b"\x01"))
        elif mtype == MessageType.CONTROL_PACKAGE_PAUSE:
            with self._lock:
                self.started = False
                self._queue(False, pack_message(mtype, b"\x01"))
        elif mtype == MessageType.DATA_PACKAGE:
            if not payload:
                raise RTDEProtocolError("DATA_PACKAGE without a recipe id")
            recipe = self.inputs.get(payload[0])
            if recipe is None:
                raise RTDEProtocolError(f"DATA_PACKAGE for input recipe {payload[0]}, which was never set up")
            values = recipe.unpack(payload)  # malformed input is refused at once, whatever the latency
            if self._in_link is None:
                self.controller.apply_inputs(recipe.names, values)
                return
            due = self._in_link.due(time.monotonic())
            if due is None:
                self.server.stats.add("injected_drops")
            else:
                self.server.delay_input(due, self, recipe, payload)
        elif mtype == MessageType.TEXT_MESSAGE:
            log.info("rtde loopback: text message from %s: %r", self.who, payload[:200])
        else:
            raise RTDEProtocolError(f"unknown RTDE message type {mtype}")

    def _setup_outputs(self, payload: bytes) -> None:
        if len(payload) < 8:
            raise RTDEProtocolError("CONTROL_PACKAGE_SETUP_OUTPUTS shorter than its 8-byte frequency")
        (frequency,) = struct.unpack(">d", payload[:8])
        names = parse_names(payload[8:], "CONTROL_PACKAGE_SETUP_OUTPUTS")
        types = [output_type(n) or "NOT_FOUND" for n in names]
        max_hz = self.controller.version.frequency
        problem = ""
        if "NOT_FOUND" in types:
            problem = "unknown variables " + ", ".join(n for n, t in zip(names, types) if t == "NOT_FOUND")
        elif not 0 < frequency <= max_hz:
            problem = f"output frequency {frequency} Hz is not in (0, {max_hz:g}] Hz"
        elif self.started:
            problem = "outputs cannot be set up while synchronisation is running"
        if problem:
            # The reply is the only message the client reads here; the reason goes to the log.
            log.warning("rtde loopback: output setup of %s failed: %s", self.who, problem)
            self.reply(MessageType.CONTROL_PACKAGE_SETUP_OUTPUTS, bytes([_RECIPE_FAILED]) + join_types(types))
            return
        recipe = Recipe(len(self.outputs) + 1, names, types)
        getters = [self.controller.output_getter(n) for n in names]
        divisor = max(1, round(max_hz / frequency))
        self.outputs.append((recipe, getters, divisor))  # type: ignore[arg-type]
        self.reply(MessageType.CONTROL_PACKAGE_SETUP_OUTPUTS, bytes([recipe.recipe_id]) + join_types(types))

    def _setup_inputs(self, payload: bytes) -> None:
        names = parse_names(payload, "CONTROL_PACKAGE_SETUP_INPUTS")
        types = self.controller.claim_inputs(self, names)
        if "NOT_FOUND" in types or "IN_USE" in types:
            bad = ", ".join(f"{n} ({t})" for n, t in zip(names, types) if t in ("NOT_FOUND", "IN_USE"))
            log.warning("rtde loopback: input setup of %s failed: %s", self.who, bad)
            recipe_id = _RECIPE_FAILED
        else:
            recipe_id = len(self.inputs) + 1
            self.inputs[recipe_id] = Recipe(recipe_id, names, types)
        self.reply(MessageType.CONTROL_PACKAGE_SETUP_INPUTS, bytes([recipe_id]) + join_types(types))

    def reply(self, mtype: int, payload: bytes) -> None:
        with self._lock:
            self._queue(False, pack_message(mtype, payload))

    # -- data (control loop, holding the controller lock) --------------------------------------------------
    def publish(self, tick: int) -> None:
        """Queue this cycle's data package of every output recipe that is due."""
        with self._lock:
            if not self.started:
                return
            for recipe, getters, divisor in self.outputs:
                if tick % divisor == 0:
                    due = 0.0 if self._out_link is None else self._out_link.due(time.monotonic())
                    if due is None:
                        self.server.stats.add("injected_drops")
                        continue
                    self._queue(True, pack_message(MessageType.DATA_PACKAGE, recipe.pack([g() for g in getters])),
                                due)

    # -- outgoing queue ------------------------------------------------------------------------------------
    def _queue(self, is_data: bool, message: bytes, due: float = 0.0) -> None:
        """Append to the outbox (caller holds ``_lock``); past ``MAX_BACKLOG`` drop the oldest data package."""
        self._outbox.append((is_data, message, due))
        if len(self._outbox) > self._backlog:
            for i, (old_is_data, _, _) in enumerate(self._outbox):
                if old_is_data:
                    del self._outbox[i]
                    self.server.stats.add("dropped_packages")
                    break
        self._ready.notify()

    def write_loop(self) -> None:
        while True:
            with self._lock:
                while not self._outbox and not self._closing:
                    self._ready.wait(_POLL_S)
                if not self._outbox:
                    return  # closing and flushed
                wait = self._outbox[0][2] - time.monotonic()
                if wait > 0 and not self._closing:
                    self._ready.wait(min(wait, _POLL_S))  # injected latency: not yet
                    continue
                _, message, _ = self._outbox.popleft()
            try:
                self.conn.sendall(message)
            except OSError:
                return  # the reader sees the closed socket and cleans up

    def close(self, final_message: bytes = b"", flush_timeout: float = 1.0) -> None:
        """Stop the writer after it sent what is queued (and ``final_message``), waiting up to the timeout."""
        with self._lock:
            if final_message:
                self._outbox.append((False, final_message, 0.0))
            self._closing = True
            self.closed = True
            self._ready.notify()
        if self.writer is not None and self.writer is not threading.current_thread():
            self.writer.join(flush_timeout)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _FaultSchedule:
    """Fires the scheduled ``Fault``s on the controller as their time comes (called every control cycle)."""

    def __init__(self, faults: Sequence[Fault], controller: LoopbackController, stats: LoopbackStats):
        self._pending = list(faults)
        self._releases: list[float] = []  # when pressed emergency stops are released
        self._controller = controller
        self._stats = stats

    def run(self, elapsed: float) -> None:
        while self._pending and self._pending[0].at <= elapsed:
            fault = self._pending.pop(0)
            self._stats.add("injected_faults")
            log.warning("rtde loopback: injected fault %s at %.2f s", fault.kind, elapsed)
            ctl = self._controller
            if fault.kind == "protective_stop":
                with ctl.lock:
                    ctl.arm.trigger_protective_stop("injected fault (robot-stack ursim --fault)")
            elif fault.kind == "program_stop":
                ctl.stop_program("stopped from the teach pendant (injected fault)")
            else:
                ctl.emergency_stop()
                if fault.duration is not None:
                    self._releases.append(elapsed + fault.duration)
        if self._releases and min(self._releases) <= elapsed:
            self._releases.remove(min(self._releases))
            self._controller.release_emergency_stop()
            log.warning("rtde loopback: emergency stop released at %.2f s; power on and release the brakes from "
                        "the dashboard", elapsed)
