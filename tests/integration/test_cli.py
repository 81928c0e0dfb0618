"""The `warden` command against a real server."""

from __future__ import annotations

import subprocess
import sys


def warden(server, *args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "warden.repl", "--socket", server.socket_path, "--", *args],
        capture_output=True, timeout=60, input=input,
    )


def test_one_shot_commands_and_run_exit_status(server):
    created = warden(server, "create", "--handle", "cli")
    assert created.returncode == 0, created.stderr
    assert created.stdout.decode().strip() == "handle : cli"
    run = warden(server, "run", "--handle", "cli", "--script", "echo out; echo err >&2; exit 3")
    assert run.returncode == 3
    assert run.stdout == b"out\n" and run.stderr == b"err\n"
    info = warden(server, "info", "--handle", "cli").stdout.decode()
    assert "state : active" in info.splitlines()


def test_errors_exit_non_zero_without_a_traceback(server):
    result = warden(server, "info", "--handle", "missing")
    assert result.returncode == 1
    assert b"unknown handle" in result.stderr
    assert b"Traceback" not in result.stderr
