"""``Supervisor``: start a set of device processes and make sure one death stops them all.

A monitor thread polls the processes; the first one found dead (crash, kill, failed watchdog) makes the
supervisor stop every other process in reverse start order, so a dead controller never leaves cameras or a
policy running (and a dead policy never leaves the arm servoing on its last command — the controller's own
watchdog holds the arm, then the supervisor stops it). The main thread learns about it from ``check()``,
which raises ``ProcessFailed`` naming the process and its error.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable

from robot_stack.runtime.device_process import DeviceProcess, ProcessFailed

log = logging.getLogger(__name__)


class Supervisor:
    """Starts processes in order, monitors them, and stops all when one dies."""

    def __init__(self, processes: Iterable[DeviceProcess], poll_interval: float = 0.02):
        self.processes = list(processes)
        names = [p.name for p in self.processes]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique, got {names}")
        self.poll_interval = poll_interval
        self.failure: ProcessFailed | None = None
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()  # ends the monitor loop
        self._stopped = threading.Event()  # set once every process has been stopped
        self._monitor: threading.Thread | None = None

    def start(self, timeout: float | None = None) -> None:
        """Start every process (waiting up to ``timeout``, default its ``startup_timeout``, for each to be
        ready), then begin monitoring.

        If one fails to start, the ones already started are stopped and its ``ProcessFailed`` is raised.
        """
        started: list[DeviceProcess] = []
        try:
            for proc in self.processes:
                proc.start(wait=True, timeout=timeout if timeout is not None else proc.startup_timeout)
                started.append(proc)
        except BaseException:
            for proc in reversed(started):
                proc.stop()
            for proc in self.processes[len(started):]:
                proc.release()
            raise
        self._monitor = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._monitor.start()

    def _watch(self) -> None:
        while not self._stop_requested.wait(self.poll_interval):
            for proc in self.processes:
                if not proc.is_alive():
                    error = proc.error or f"exited unexpectedly with code {proc.exitcode}"
                    log.error("process '%s' died (%s); stopping all processes", proc.name, error.strip().splitlines()[-1])
                    self.failure = ProcessFailed(proc.name, error)
                    self.stop()
                    return

    def check(self) -> None:
        """Raise ``ProcessFailed`` if any supervised process has died."""
        if self.failure is not None:
            raise self.failure

    @property
    def running(self) -> bool:
        """True until the supervisor has stopped all processes (after a failure or ``stop()``)."""
        return not self._stopped.is_set()

    def stop(self) -> None:
        """Stop all processes in reverse start order (idempotent, thread-safe)."""
        with self._lock:
            self._stop_requested.set()
            for proc in reversed(self.processes):
                proc.stop()
            self._stopped.set()

    def __enter__(self) -> "Supervisor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(1.0)
