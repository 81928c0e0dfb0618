"""Errors in what the user typed; the REPL prints them (never a traceback)."""


class ReplError(Exception):
    """Base class: a command line that cannot be turned into a request."""


class CommandError(ReplError):
    """An unknown command or an unusable command line."""


class FlagError(ReplError):
    """A flag that names no field, or a value that does not fit its field."""


class UsageError(ReplError):
    """Bad options before `--`."""


class HelpRequested(Exception):
    """`--help` appeared where a flag was expected: show the command's help instead."""
