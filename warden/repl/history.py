"""Command history kept in `~/.warden-history` as a JSON array of strings."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HISTORY_PATH = Path("~/.warden-history")
MAX_ENTRIES = 1000


@dataclass
class History:
    path: Path = DEFAULT_HISTORY_PATH
    entries: list[str] = field(default_factory=list)

    def load(self) -> list[str]:
        """Read the file; a missing or unreadable one is an empty history, not an error."""
        try:
            data = json.loads(self.path.expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = []
        if not isinstance(data, list):
            data = []
        self.entries = [entry for entry in data if isinstance(entry, str)][-MAX_ENTRIES:]
        return self.entries

    def add(self, line: str) -> None:
        self.entries.append(line)
        del self.entries[:-MAX_ENTRIES]

    def save(self) -> None:
        """Rewrite the file via a temporary one, so a crash never leaves it half written.
        Failing to save must not break the session."""
        path = self.path.expanduser()
        temporary = path.with_name(path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(self.entries), encoding="utf-8")
            os.replace(temporary, path)
        except OSError:
            pass
