"""Tab completion: command names first, then the current command's `--field` flags."""

from __future__ import annotations

from .commands import HELP_COMMAND, commands


def candidates(before: str, text: str) -> list[str]:
    """Completions for the word `text`, given the line up to that word (`before`)."""
    words = before.split()
    if not words:
        names = [*commands(), HELP_COMMAND]
        return [name + " " for name in names if name.startswith(text)]
    command = commands().get(words[0])
    if command is None or not (text == "" or text.startswith("-")):
        return []
    flags = ["--help "]
    for field in command.fields.values():
        if field.repeated:
            flags.append(f"--{field.name}[")
        elif field.type == "message":
            flags.append(f"--{field.name}.")
        else:
            flags.append(f"--{field.name} ")
    return [flag for flag in flags if flag.startswith(text)]


class Completer:
    """The `readline` completer protocol: called with state 0, 1, ... until None."""

    def __init__(self, readline: object) -> None:
        self._readline = readline
        self._matches: list[str] = []

    def __call__(self, text: str, state: int) -> str | None:
        if state == 0:
            buffer = self._readline.get_line_buffer()  # type: ignore[attr-defined]
            begin = self._readline.get_begidx()  # type: ignore[attr-defined]
            self._matches = candidates(buffer[:begin], text)
        return self._matches[state] if state < len(self._matches) else None
