import subprocess
import sys
from pathlib import Path

from robot_stack.cli import build_parser, main


def test_console_script_help_works():
    script = Path(sys.executable).parent / "robot-stack"  # installed by `pip install -e .`
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "usage: robot-stack" in result.stdout


def test_every_registered_subcommand_has_help(capsys):
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices if parser._subparsers else {}
    for name in subcommands:
        try:
            main([name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, name
        assert name in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: robot-stack" in capsys.readouterr().out
