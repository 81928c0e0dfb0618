"""The `warden` command-line REPL: one-shot (`warden -- <command> ...`) or interactive."""

from .cli import main, run_cli

__all__ = ["main", "run_cli"]
