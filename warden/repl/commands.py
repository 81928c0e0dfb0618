"""The REPL's commands: one per request type of the catalogue, named in snake_case.

Generating them from `spec/protocol.yml` keeps the command set, the flags and the help
complete (upstream's hand-written table forgot `limit_bandwidth`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from warden.client import snake_case
from warden.protocol import Catalogue, Field, Message, catalogue

from .errors import CommandError

# Where the REPL does something other than the bare request, its description says so.
DESCRIPTION_OVERRIDES = {
    "Run": "Spawn a script and stream its output; exit with its exit status.",
    "Stream": "Stream a job's output as it is produced.",
}

HELP_COMMAND = "help"
HELP_DESCRIPTION = "Show help."


@dataclass(frozen=True)
class Command:
    name: str
    message: Message
    description: str

    @property
    def fields(self) -> dict[str, Field]:
        assert self.message.request is not None
        return self.message.request


@functools.cache
def commands(cat: Catalogue | None = None) -> dict[str, Command]:
    """Every command by name, sorted by name."""
    cat = cat or catalogue()
    found = {}
    for name in cat.request_types():
        message = cat.messages[name]
        description = DESCRIPTION_OVERRIDES.get(name, message.doc)
        found[snake_case(name)] = Command(snake_case(name), message, description)
    return dict(sorted(found.items()))


def lookup(name: str) -> Command:
    try:
        return commands()[name]
    except KeyError:
        raise CommandError(f"Command: '{name}' is non-existent.") from None
