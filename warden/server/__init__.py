"""The warden daemon: `python -m warden.server --config FILE`."""

from .app import Server, StartupError

__all__ = ["Server", "StartupError"]
