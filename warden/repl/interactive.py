"""The interactive loop: prompt, split with shell rules, execute, keep history."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from types import ModuleType

from warden.client import ConnectionClosed, WardenError
from warden.protocol import InvalidRequest

from .completion import Completer
from .errors import ReplError
from .history import History
from .shell import Shell

PROMPT = "warden> "
FAILURES = (ReplError, WardenError, InvalidRequest)


def interactive(
    shell: Shell,
    *,
    exit_on_error: bool = False,
    history: History | None = None,
    read_line: Callable[[str], str] = input,
) -> int:
    """Run commands until EOF (status 0) or Ctrl-C; return the exit status."""
    history = history or History()
    _setup_readline(history, enabled=read_line is input)
    try:
        while True:
            try:
                line = read_line(PROMPT)
            except EOFError:
                return 0
            status = _handle_line(shell, line, history, exit_on_error)
            if status is not None:
                return status
    except KeyboardInterrupt:
        shell.console.error("\n\nExiting...\n")
        return 0


def _handle_line(shell: Shell, line: str, history: History, exit_on_error: bool) -> int | None:
    """Execute one line; return a status when the loop should end."""
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        shell.console.error(f"Parse error: {exc}.")
        return 1 if exit_on_error else None
    if not tokens:
        return None
    history.add(line)
    history.save()
    try:
        status = _execute_with_reconnect(shell, tokens)
    except FAILURES as exc:
        report(shell, exc)
        return 1 if exit_on_error else None
    return status if exit_on_error and status != 0 else None


def _execute_with_reconnect(shell: Shell, tokens: list[str]) -> int:
    try:
        return shell.execute(tokens)
    except ConnectionClosed:
        if not shell.retryable:
            raise
        shell.console.error("Reconnecting...")
        shell.client.close()
        shell.client.connect()
        return shell.execute(tokens)


def report(shell: Shell, exc: BaseException) -> None:
    """An error's message (and the server's extra data) on stderr, never a traceback."""
    shell.console.error(str(exc))
    data = getattr(exc, "data", None)
    if data:
        shell.console.error(data)


def _setup_readline(history: History, enabled: bool) -> ModuleType | None:
    """Wire history and completion into readline, when input() is really reading a line."""
    entries = history.load()
    if not enabled:
        return None
    try:
        import readline
    except ImportError:
        return None
    readline.clear_history()
    for entry in entries:
        readline.add_history(entry)
    readline.set_completer(Completer(readline))
    readline.set_completer_delims(" \t\n")
    readline.parse_and_bind("tab: complete")
    return readline
