"""The command-line dispatcher: subcommands listed, python -m works, errors are one line."""

import subprocess
import sys

from forensics.cli import COMMANDS, main


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "forensics", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_console_script_matches_module(tmp_path):
    out = subprocess.run(["forensics", "--help"], capture_output=True, text=True, check=True).stdout
    assert "COMMAND" in out


def test_user_error_is_one_line_with_status_2(tmp_path, capsys):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    status = main(["synth", "--out", str(target)])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("forensics synth: error:") and len(err.splitlines()) == 1
    assert str(target) in err
    assert (target / "notes.txt").read_text() == "mine"
