"""``LoopbackServer``: what the gripper protocol twins share: a threaded TCP server on loopback, run as a
context manager, and the ``python -m ... RIG [--port P]`` entry point that serves a rig's gripper."""

from __future__ import annotations

import argparse
import socketserver
import sys
import threading
from typing import Callable

from robot_stack.hardware.gripper.config import GripperConfig


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # a restarted twin can bind its port again at once
    daemon_threads = True  # a client that never hangs up does not keep the process alive


class LoopbackServer:
    """A threaded TCP server on ``host:port`` (port 0: any free port, see ``.port``) whose connections are
    served by ``serve(conn)``; ``start()`` / ``close()`` or a ``with`` block."""

    name = "gripper-loopback"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner.serve(self.request)

        self._server = _Server((host, port), Handler)
        self._thread: threading.Thread | None = None

    def serve(self, conn) -> None:
        """Talk to one client until it hangs up."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_rig_gripper(argv: list[str] | None, description: str, what: str,
                      make: Callable[[GripperConfig, int], LoopbackServer]) -> int:
    """``RIG [--port P]``: serve the rig's gripper section with ``make(config, port)`` until Ctrl-C."""
    from robot_stack.config import ConfigError, load_dataclass, read_yaml
    from robot_stack.resources import rig_path

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("rig", help="rig YAML (path or shipped name) with a gripper: section")
    parser.add_argument("--port", type=int, default=None, help="default: the rig's gripper.port")
    args = parser.parse_args(argv)
    try:
        data = read_yaml(rig_path(args.rig))
        if "gripper" not in data:
            raise ConfigError(f"{args.rig}: the rig has no gripper: section")
        section = data["gripper"]
        # served here, whatever address the rig gives the real one
        config = load_dataclass(GripperConfig, {**section, "host": section.get("host") or "127.0.0.1"}, "gripper")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with make(config, args.port if args.port is not None else config.port) as server:
        print(f"{what} ({config.model}) on 127.0.0.1:{server.port}; Ctrl-C stops", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0
