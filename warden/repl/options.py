"""The options before `--`, and the command tokens after it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from warden.client import DEFAULT_SOCKET_PATH

from .errors import UsageError

DELIMITER = "--"


@dataclass
class Options:
    socket_path: str = DEFAULT_SOCKET_PATH
    trace: bool = False
    exit_on_error: bool = False
    help: bool = False
    command: list[str] = field(default_factory=list)  # empty: interactive mode


def parse_options(argv: list[str]) -> Options:
    if argv.count(DELIMITER) > 1:
        raise UsageError("Delimiter: '--' specified multiple times.")
    if DELIMITER in argv:
        cut = argv.index(DELIMITER)
        before, command = argv[:cut], argv[cut + 1 :]
    else:
        before, command = argv, []
    options = Options(command=command)
    remaining = iter(before)
    for arg in remaining:
        name, sep, inline = arg.partition("=")
        if name == "--socket":
            options.socket_path = inline if sep else _value(name, remaining)
        elif arg == "--trace":
            options.trace = True
        elif arg == "--exit_on_error":
            options.exit_on_error = True
        elif arg in ("--help", "-h"):
            options.help = True
        elif arg.startswith("-"):
            raise UsageError(f"Invalid option: '{arg}'.")
        else:
            raise UsageError(f"Unexpected argument: '{arg}' (commands go after '--').")
    return options


def _value(name: str, remaining: Iterator[str]) -> str:
    value = next(remaining, None)
    if value is None:
        raise UsageError(f"Option: '{name}' needs a value.")
    return value
