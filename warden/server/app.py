"""The server process: start-up, the Unix socket, health check, drain and exit.

Start-up order matters: the backend prepares the host, containers on disk are
recovered, and only then does the socket accept clients and the pidfile appear,
so a client never sees a half-restored server.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from pathlib import Path

from ..config import Config
from ..container import backend_class
from ..container.context import Context
from .connection import Connection
from .dispatch import Dispatcher
from .process import socket_answers
from .recovery import recover

log = logging.getLogger("warden.server")


class StartupError(Exception):
    """The server cannot start; the message says why, for the operator."""


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.container_class = backend_class(config.server.backend)
        try:
            self.ctx = Context.from_config(config)
        except (ValueError, OSError) as exc:
            raise StartupError(str(exc)) from None
        self.dispatcher = Dispatcher(self.ctx, self.container_class)
        self.connections: set[Connection] = set()
        self._unix: asyncio.AbstractServer | None = None
        self._health: asyncio.AbstractServer | None = None
        self._stopping = asyncio.Event()
        self._drained = False
        self._pidfile_written = False

    # ---- start ---------------------------------------------------------------------

    async def start(self) -> None:
        self._check_pidfile()
        await self.container_class.setup(self.ctx)
        await recover(self.ctx, self.container_class)
        await self._listen()
        await self._listen_health()
        self._install_signals()
        self._write_pidfile()
        log.info("Listening", extra={"data": {"path": self.config.server.unix_domain_path,
                                              "backend": self.config.server.backend,
                                              "containers": len(self.ctx.registry)}})

    async def _listen(self) -> None:
        path = self.config.server.unix_domain_path
        if socket_answers(path, timeout=1):
            raise StartupError(f"another server is listening on {path}")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._unix = await asyncio.start_unix_server(self._accept, path=path, start_serving=False,
                                                     limit=2**20)
        # Permissions are set before the first accept, so no client slips in early.
        os.chmod(path, self.config.server.unix_domain_permissions)
        await self._unix.start_serving()

    async def _listen_health(self) -> None:
        port = self.config.health_check_port
        if port is None:
            return
        try:
            self._health = await asyncio.start_server(_health_check, "127.0.0.1", port)
        except OSError as exc:
            # The API matters more than the health check: serve without it.
            log.error("health check disabled", extra={"data": {
                "reason": f"health_check_server.port: cannot listen on 127.0.0.1:{port}: {exc.strerror}"}})

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.drain, sig)

    # ---- pidfile --------------------------------------------------------------------

    def _check_pidfile(self) -> None:
        path = self.config.server.pidfile
        if not path:
            return
        try:
            pid = int(Path(path).read_text().strip())
        except (OSError, ValueError):
            return
        if pid != os.getpid() and _process_alive(pid):
            raise StartupError(f"server.pidfile: {path} names a running process ({pid}); is warden already running?")

    def _write_pidfile(self) -> None:
        path = self.config.server.pidfile
        if not path:
            return
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        Path(tmp).write_text(f"{os.getpid()}\n")
        os.replace(tmp, path)
        self._pidfile_written = True

    def _remove_pidfile(self) -> None:
        if self._pidfile_written and self.config.server.pidfile:
            try:
                os.unlink(self.config.server.pidfile)
            except FileNotFoundError:
                pass

    # ---- clients -----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._drained:
            writer.close()
            return
        conn = Connection(self, reader, writer)
        self.connections.add(conn)
        try:
            await conn.serve()
        except Exception:  # one broken connection must not take others down
            log.exception("Disconnected client after error")
        finally:
            self.connections.discard(conn)
            if self._drained and not self.connections:
                self._stopping.set()

    # ---- drain and exit --------------------------------------------------------------

    def drain(self, sig: int = signal.SIGUSR2) -> None:
        """Stop accepting, close idle and waiting connections, let the rest finish."""
        if self._drained:
            return
        self._drained = True
        log.info("Draining", extra={"data": {"signal": signal.Signals(sig).name,
                                             "connections": len(self.connections)}})
        if self._unix is not None:
            self._unix.close()
        for conn in list(self.connections):
            conn.drain()
        if not self.connections:
            self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        log.info("Drain complete")
        for container in list(self.ctx.registry.values()):
            for job in container.jobs.values():
                job.cancel()  # stop following; the job itself keeps running
            try:
                container.write_snapshot()
            except OSError as exc:
                log.error("snapshot failed", extra={"handle": container.handle, "data": {"error": str(exc)}})
            container.cancel_grace_timer()
        for task in list(self.ctx.background):
            task.cancel()
        if self._health is not None:
            self._health.close()
        self._remove_pidfile()

    async def run(self) -> None:
        try:
            await self.start()
        except BaseException:
            self._remove_pidfile()
            raise
        await self.wait_stopped()


async def _health_check(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Any bytes in, one `200 OK` with an empty body out, then close."""
    try:
        await asyncio.wait_for(reader.read(4096), timeout=10)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
