"""The `warden` command: options, then one command (one-shot) or a prompt (interactive)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import BinaryIO

from warden.client import Client

from .errors import UsageError
from .help import usage
from .history import History
from .interactive import FAILURES, interactive, report
from .options import parse_options
from .output import Console
from .shell import Shell


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the process exit status."""
    try:
        return run_cli(
            sys.argv[1:] if argv is None else argv,
            stdout=sys.stdout.buffer,
            stderr=sys.stderr.buffer,
        )
    except BrokenPipeError:
        # The reader of our output went away (`warden ... | head`): stop quietly, and
        # keep the interpreter from failing again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def run_cli(
    argv: list[str],
    *,
    stdout: BinaryIO,
    stderr: BinaryIO,
    read_line: Callable[[str], str] = input,
    history: History | None = None,
) -> int:
    console = Console(stdout, stderr)
    try:
        options = parse_options(argv)
    except UsageError as exc:
        console.error(f"{exc}\nUse --help for usage.")
        return 1
    if options.help:
        console.line(usage())
        return 0
    client = Client(options.socket_path)
    shell = Shell(client, console, trace=options.trace)
    try:
        if options.command:
            return one_shot(shell, options.command)
        return interactive(shell, exit_on_error=options.exit_on_error, history=history, read_line=read_line)
    finally:
        client.close()


def one_shot(shell: Shell, tokens: list[str]) -> int:
    """Exit 1 on any error (upstream exited 0 after a command error, hiding failures)."""
    try:
        return shell.execute(tokens)
    except FAILURES as exc:
        report(shell, exc)
        return 1
    except KeyboardInterrupt:
        shell.console.error("\nInterrupted.")
        return 130
