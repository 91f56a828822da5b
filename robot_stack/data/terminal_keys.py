"""``TerminalKeys``: single keys typed in the terminal (or piped to stdin), read without blocking.

Used when there is no preview window (``--no-preview``, no display), so an operator over SSH can still
start/stop/discard episodes. On a terminal, input is switched to cbreak mode (keys arrive without Enter,
Ctrl-C still interrupts) and restored on ``close``; piped input is read as it comes; at end of input
(``/dev/null``, a closed pipe) it simply reports no more keys.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from typing import TextIO


class TerminalKeys:
    """Non-blocking key reader on ``stream`` (default stdin); use as a context manager."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stdin
        self._fd: int | None = None
        self._saved: list | None = None
        try:
            self._fd = self.stream.fileno()
        except (AttributeError, ValueError, OSError):
            self._fd = None  # no usable stdin (closed, or replaced by an object without a descriptor)
        if self._fd is not None and os.isatty(self._fd):
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)

    def poll(self) -> list[str]:
        """Keys typed since the last poll (whitespace and newlines dropped)."""
        if self._fd is None:
            return []
        keys: list[str] = []
        while select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 64)
            if not data:  # end of input
                self._fd = None
                break
            keys += [ch for ch in data.decode(errors="replace") if not ch.isspace()]
        return keys

    def close(self) -> None:
        """Restore the terminal mode."""
        if self._saved is not None:
            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def __enter__(self) -> "TerminalKeys":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
