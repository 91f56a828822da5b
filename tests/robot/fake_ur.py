"""Minimal fake UR controller endpoints for the RTDE driver's error-path tests (no real protocol beyond the
greeting and the protocol-version reply)."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

DASHBOARD_PORT, RTDE_PORT = 29999, 30004
GREETING = b"Connected: Universal Robots Dashboard Server\n"


def free_loopback_ip() -> str:
    """A 127.x.y.z address where the dashboard and RTDE ports are free (Linux routes all of 127/8 to lo)."""
    for _ in range(50):
        ip = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(1, 250)}"
        try:
            for port in (DASHBOARD_PORT, RTDE_PORT):
                with socket.socket() as s:
                    s.bind((ip, port))
        except OSError:
            continue
        return ip
    raise RuntimeError("no free loopback address for the fake UR controller")


def _listen(ip: str, port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(8)
    return s


def _serve(sock: socket.socket, handle) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:  # listening socket closed: test over
            return
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _dashboard(greet: bool):
    def handle(conn: socket.socket) -> None:
        if greet:
            conn.sendall(GREETING)
        time.sleep(3.0)  # stay silent (but open) for longer than any probe timeout in the tests
        conn.close()

    return handle


def _rtde(mode: str):
    def handle(conn: socket.socket) -> None:
        header = conn.recv(3)
        if mode == "close" or not header:
            conn.close()
            return
        size, kind = struct.unpack(">HB", header)
        conn.recv(size - 3)
        conn.sendall(struct.pack(">HBB", 4, kind, 0 if mode == "reject" else 1))
        conn.close()  # "accept": answers the version request, then hangs up

    return handle


def serve_fake_ur(ip: str, greet: bool = True, rtde: str = "accept") -> list:
    """Start fake dashboard/RTDE listeners on ``ip`` in threads; returns the listening sockets (close them)."""
    socks = [_listen(ip, DASHBOARD_PORT), _listen(ip, RTDE_PORT)]
    threading.Thread(target=_serve, args=(socks[0], _dashboard(greet)), daemon=True).start()
    threading.Thread(target=_serve, args=(socks[1], _rtde(rtde)), daemon=True).start()
    return socks


def run_fake_ur(ip: str, ready, seconds: float = 20.0) -> None:
    """Process target: serve a fake UR that passes the probe, for tests where ur_rtde itself (which holds
    the GIL while connecting) talks to it."""
    socks = serve_fake_ur(ip)
    ready.set()
    time.sleep(seconds)
    for s in socks:
        s.close()
