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


def test_a_failed_device_process_is_named_with_its_last_error(monkeypatch, capsys):
    import robot_stack.cli.cameras as cameras_cli
    from robot_stack.runtime import ProcessFailed

    child_traceback = ('Traceback (most recent call last):\n  File "x.py", line 1, in step\n'
                       "robot_stack.hardware.robot.interface.RobotUnreachableError: no UR at 10.0.0.2\n  check the cable")

    def fail(args):
        raise ProcessFailed("robot", child_traceback)

    monkeypatch.setattr(cameras_cli, "run", fail)
    assert main(["cameras"]) == 1
    err = capsys.readouterr().err
    assert err == "robot-stack cameras: process 'robot': RobotUnreachableError: no UR at 10.0.0.2 check the cable\n"

    # --debug adds the child's traceback (and the parent's) before that same last line.
    assert main(["--debug", "cameras"]) == 1
    err = capsys.readouterr().err
    assert 'File "x.py", line 1, in step' in err
    assert err.splitlines()[-1] == "robot-stack cameras: process 'robot': RobotUnreachableError: no UR at 10.0.0.2 check the cable"


def test_doctor_reports_cores_priorities_and_the_rig_and_names_each_fix(monkeypatch, capsys):
    from robot_stack.runtime import scheduling

    code = main(["doctor", "--rig", "sim_pusht"])
    out = capsys.readouterr().out
    assert "cores:" in out and "priority control" in out and "rig sim_pusht: servo loop" in out
    assert code == (1 if "warning:" in out else 0)

    monkeypatch.setattr(scheduling, "may_raise_priority", lambda: False)  # an unprivileged user
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "stays at nice" in out and "CAP_SYS_NICE" in out and "Real-time setup" in out

    assert main(["doctor", "--rig", "nowhere/rig.yaml"]) == 2
    assert "rig file not found" in capsys.readouterr().err
