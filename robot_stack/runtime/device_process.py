"""``DeviceProcess``: the base of every process that owns a device (camera, arm, teleop, scene, policy).

Lifecycle: the parent constructs the process and its shared-memory buffers (``own(...)``), ``start()``
spawns the child (``spawn`` context: no inherited locks/threads, identical on every OS), which runs
``setup()`` (open hardware), signals ready, calls ``step()`` until a stop is requested, and always runs
``teardown()`` (stop/close hardware). ``stop()`` asks the child to finish, escalates to terminate/kill if it
does not within the timeout, and releases the owned buffers.

Failure handling: an exception in the child is sent to the parent as text (``error``) and the child exits
non-zero, so a ``Supervisor`` can report which process failed and why. Children ignore SIGINT — the parent
handles Ctrl-C and stops them in order — and stop by themselves if the parent process dies.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import re
import signal
import sys
import time
import traceback
from typing import TypeVar

from robot_stack.runtime.scheduling import set_priority

_SPAWN = mp.get_context("spawn")
log = logging.getLogger(__name__)

T = TypeVar("T")

# Set (to anything but "" or "0") to have children log their full traceback, and the CLI print it.
DEBUG_ENV = "ROBOT_STACK_DEBUG"

_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*(?:Error|Exception|Failed|Interrupt|Exit|Unavailable))\b:?\s*(.*)$")


def debug_enabled() -> bool:
    """True when ``$ROBOT_STACK_DEBUG`` asks for tracebacks (children inherit it from the parent)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def error_summary(text: str) -> str:
    """One line for an error text: a traceback's final exception (type without its module path, then the
    message, continuation lines joined), or the text itself with its lines joined."""
    raw = text.strip().splitlines()
    lines = [line.strip() for line in raw]
    for i in range(len(lines) - 1, -1, -1):
        match = _EXCEPTION_LINE.match(raw[i])  # unstripped: a traceback's code lines are indented
        if match:
            kind, message = match.groups()
            rest = " ".join(line for line in lines[i + 1:] if line)
            return " ".join(part for part in (f"{kind}:" if message or rest else kind, message, rest) if part)
    return " ".join(line for line in lines if line)


class ProcessFailed(RuntimeError):
    """A device process died or failed to start; ``name`` says which, ``error`` says why (for a child's
    exception: its formatted traceback; ``reason`` is the one-line summary)."""

    def __init__(self, name: str, error: str):
        super().__init__(f"process '{name}': {error_summary(error)}")
        self.name = name
        self.error = error

    @property
    def reason(self) -> str:
        """One line saying why the process failed."""
        return error_summary(self.error)


class DeviceProcess(_SPAWN.Process):  # type: ignore[name-defined,misc]
    """Base class for device processes; subclasses implement ``setup``, ``step`` and ``teardown``."""

    startup_timeout = 30.0  # s a supervisor waits for ``setup()``; slow devices (a policy) raise it
    priority_role = "device"  # ``robot_stack.runtime.scheduling`` role, applied first thing in the child

    def __init__(self, name: str):
        # daemon: if the parent exits without stopping us, multiprocessing terminates us at its exit.
        super().__init__(name=name, daemon=True)
        self._stop_event = _SPAWN.Event()
        self._ready_event = _SPAWN.Event()
        self._error_recv, self._error_send = _SPAWN.Pipe(duplex=False)
        self._owned: list = []
        self._error: str | None = None
        self._parent_pid = os.getpid()

    # -- parent side -------------------------------------------------------------------------------------
    def own(self, resource: T) -> T:
        """Register a shared-memory buffer/queue created in the parent, released when this process stops."""
        self._owned.append(resource)
        return resource

    def start(self, wait: bool = True, timeout: float = 30.0) -> None:  # type: ignore[override]
        """Spawn the child; with ``wait``, block until ``setup()`` finished, raising ``ProcessFailed`` if not."""
        super().start()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the child is ready; raise ``ProcessFailed`` (and stop it) if it dies or times out."""
        deadline = time.monotonic() + timeout
        while not self._ready_event.wait(0.02):
            if not self.is_alive():
                self.join(1.0)
                self.stop()
                raise ProcessFailed(self.name, self.error or f"exited with code {self.exitcode} during setup")
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessFailed(self.name, f"not ready within {timeout:.1f} s")

    @property
    def is_ready(self) -> bool:
        """True once ``setup()`` completed in the child and until it exits."""
        return self._ready_event.is_set() and self.is_alive()

    @property
    def error(self) -> str | None:
        """The child's exception (formatted traceback) if it failed, else ``None``."""
        while self._error is None and self._error_recv.poll():
            try:
                self._error = self._error_recv.recv()
            except (EOFError, OSError):
                break
        return self._error

    def stop(self, wait: bool = True, timeout: float = 5.0) -> None:
        """Ask the child to stop; escalate to SIGTERM/SIGKILL after ``timeout``; release owned buffers."""
        self._stop_event.set()
        if self._popen is not None and wait:  # type: ignore[attr-defined]
            self.join(timeout)
            if self.is_alive():
                log.warning("%s did not stop within %.1f s; terminating it", self.name, timeout)
                self.terminate()
                self.join(1.0)
            if self.is_alive():
                self.kill()
                self.join(1.0)
        if wait or self._popen is None:  # type: ignore[attr-defined]
            self.release()

    def release(self) -> None:
        """Release the owned shared memory (idempotent). Called by ``stop``."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self: T) -> T:
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- child side --------------------------------------------------------------------------------------
    def should_stop(self) -> bool:
        """True once a stop was requested or the parent process died (we were re-parented)."""
        return self._stop_event.is_set() or os.getppid() != self._parent_pid

    def run(self) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        failed = False
        try:
            set_priority(self.priority_role, f"process '{self.name}'")
            self.setup()
            # What setup built (imports, drivers, models) lives as long as the process: moved out of the
            # collector's generations, the loop's collections stay short and do not pause a cycle for long.
            gc.collect()
            gc.freeze()
            self._ready_event.set()
            while not self.should_stop():
                self.step()
        except BaseException:  # noqa: BLE001 - report everything, including SystemExit from a device lib
            failed = True
            self._report(traceback.format_exc())
        finally:
            try:
                self.teardown()
            except BaseException:  # noqa: BLE001
                failed = True
                self._report("teardown failed:\n" + traceback.format_exc())
        if failed:
            sys.stderr.flush()
            os._exit(1)  # skip interpreter cleanup that could block on a wedged device library

    def _report(self, text: str) -> None:
        # The parent reports the failure (the CLI as one line); the traceback only when asked for.
        if debug_enabled():
            log.error("%s failed:\n%s", self.name, text)
        try:
            self._error_send.send(text)
        except (OSError, ValueError):
            pass

    def setup(self) -> None:
        """Open the device (runs in the child before the process reports ready)."""

    def step(self) -> None:
        """One iteration of the device loop (runs in the child until a stop is requested)."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Stop and close the device (runs in the child, always, even after a failure)."""
