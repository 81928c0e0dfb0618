"""JSON-lines logging with upstream warden's level names.

One object per line (timestamp, level, source, message, data, and the container
handle when there is one), so an operator can grep it or feed it to a collector.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = {
    "off": logging.CRITICAL + 10,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "debug1": logging.DEBUG - 1,
    "debug2": logging.DEBUG - 2,
    "all": 1,
}
NAMES = {
    logging.CRITICAL: "fatal",
    logging.ERROR: "error",
    logging.WARNING: "warn",
    logging.INFO: "info",
    logging.DEBUG: "debug",
    logging.DEBUG - 1: "debug1",
    logging.DEBUG - 2: "debug2",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": round(record.created, 6),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "log_level": NAMES.get(record.levelno, record.levelname.lower()),
            "source": record.name,
            "message": record.getMessage(),
        }
        handle = getattr(record, "handle", None)
        if handle is not None:
            entry["handle"] = handle
        data = getattr(record, "data", None)
        if data:
            entry["data"] = data
        if record.exc_info:
            entry["backtrace"] = self.formatException(record.exc_info).splitlines()
        return json.dumps(entry, default=str)


def setup(level: str, file: str | None = None) -> None:
    root = logging.getLogger("warden")
    root.handlers.clear()
    handler: logging.Handler
    handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    root.propagate = False
