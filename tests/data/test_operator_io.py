"""The operator's side of collect without a display: preview composition and terminal keys."""

from __future__ import annotations

import os

import numpy as np

from robot_stack.data.preview import compose_preview
from robot_stack.data.terminal_keys import TerminalKeys


def test_preview_tiles_cameras_and_draws_status():
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 255  # RGB red
    square = np.full((100, 100, 3), 128, np.uint8)
    image = compose_preview([red, square, None], ["REC episode 3  12.0 s", "c start  s stop"], height=120)
    assert image.shape == (120, 160 + 120 + 160, 3)
    bottom = image[-10:]
    assert (bottom[:, :160, 2] == 255).all() and (bottom[:, :160, :2] == 0).all()  # red became BGR red
    assert (bottom[:, 160:280] == 128).all()
    band = image[:50].astype(int)
    assert band[:, :, 2].max() == 255 and (band[:, :, 2] > band[:, :, 0] + 100).any()  # red REC text drawn
    plain = compose_preview([square], [], height=120)
    assert (plain == 128).all()


def test_terminal_keys_from_a_pipe_until_end_of_input():
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as stream, TerminalKeys(stream) as keys:
        assert keys.poll() == []
        os.write(write_fd, b"c\ns x\n")
        assert keys.poll() == ["c", "s", "x"]
        os.write(write_fd, b"q")
        os.close(write_fd)
        assert keys.poll() == ["q"]
        assert keys.poll() == []
