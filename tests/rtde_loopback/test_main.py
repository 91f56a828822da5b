"""``python -m robot_stack.hardware.robot.rtde_loopback``: serve a rig's simulated arm until interrupted."""

import signal
import socket
import subprocess
import sys
from pathlib import Path

from robot_stack.hardware.robot.rtde_loopback import find_free_loopback_host

RIG = Path(__file__).resolve().parents[2] / "hardware_configs" / "sim_ur5.yaml"
MODULE = "robot_stack.hardware.robot.rtde_loopback"


def test_serves_until_interrupted():
    host = find_free_loopback_host()
    proc = subprocess.Popen([sys.executable, "-m", MODULE, str(RIG), "--host", host],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert f"on {host}" in banner and "Ctrl-C" in banner
        with socket.create_connection((host, 29999), timeout=5) as sock:
            lines = sock.makefile("r")
            assert lines.readline().startswith("Connected: Universal Robots Dashboard Server")
            sock.sendall(b"get robot model\n")
            assert lines.readline().strip() == "UR5"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
        assert "connections=1" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_arguments_get_a_clear_message_and_no_traceback(tmp_path):
    for args, message in [
        ([str(tmp_path / "missing.yaml")], "rig file not found"),
        ([str(RIG), "--host", "192.168.1.10"], "not a loopback address"),
    ]:
        result = subprocess.run([sys.executable, "-m", MODULE, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr
