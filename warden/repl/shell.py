"""Executing one command line against a warden client."""

from __future__ import annotations

from typing import Any

from warden.client import Client

from .commands import HELP_COMMAND, Command, lookup
from .errors import HelpRequested
from .flags import parse_flags
from .help import command_help, command_table
from .output import Console, render

HELP_WORDS = (HELP_COMMAND, "--help")


class Shell:
    """Runs commands and writes their output; the caller decides what errors mean."""

    def __init__(self, client: Client, console: Console, trace: bool = False) -> None:
        self.client = client
        self.console = console
        self.trace = trace
        # False once a command has started a job: re-running the line after a broken
        # connection would start the job a second time.
        self.retryable = True

    def execute(self, tokens: list[str]) -> int:
        """Run one command; return its status (a `run`'s exit status, otherwise 0)."""
        self.retryable = True
        if self.trace:
            self.console.line("+ " + " ".join(tokens))
        name, args = tokens[0], tokens[1:]
        if name in HELP_WORDS:
            self.console.line(command_table())
            return 0
        command = lookup(name)
        if args[:1] and args[0] in HELP_WORDS:
            self.console.line(command_help(command))
            return 0
        try:
            payload = parse_flags(command, args)
        except HelpRequested:
            self.console.line(command_help(command))
            return 0
        return self._dispatch(command, payload)

    def _dispatch(self, command: Command, payload: dict[str, Any]) -> int:
        if command.name == "run":
            return self._run(payload)
        if command.name == "stream":
            self._stream(payload["handle"], payload["job_id"])
            return 0
        response = self.client.call(command.message.name, **payload)
        for line in render(response):
            self.console.line(line)
        return 0

    def _run(self, payload: dict[str, Any]) -> int:
        """`run` is Spawn then Stream, so output shows up while the job runs."""
        job_id = self.client.call("Spawn", **payload)["job_id"]
        self.retryable = False
        status = self._stream(payload["handle"], job_id)
        return 0 if status is None else status

    def _stream(self, handle: str, job_id: int) -> int | None:
        stream = self.client.stream(handle, job_id)
        with stream:
            for chunk in stream:
                self.console.output(chunk.name, chunk.data)
        return stream.result.exit_status
