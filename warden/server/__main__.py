"""Run the server in the foreground: `python -m warden.server --config FILE`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .. import config as config_module
from .. import logs
from .app import Server, StartupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warden.server", description="Run the warden server.")
    parser.add_argument("--config", "-c", default="config/linux.yml", help="YAML config (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"warden: config error: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.logging.level, config.logging.file)
    try:
        asyncio.run(_serve(config))
    except StartupError as exc:
        print(f"warden: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


async def _serve(config: config_module.Config) -> None:
    server = Server(config)
    await server.run()


if __name__ == "__main__":
    sys.exit(main())
