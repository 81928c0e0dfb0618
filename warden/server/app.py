"""The server process: start-up, the Unix socket, health check, drain and exit.

Start-up order matters: the backend prepares the host, containers on disk are
recovered, and only then does the socket accept clients and the pidfile appear,
so a client never sees a half-restored server.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import logging
import os
import signal
import socket
import struct
from pathlib import Path

from ..config import Config
from ..container import backend_class
from ..container.context import Context
from ..protocol import encode_error
from .connection import Connection
from .dispatch import Dispatcher
from .process import socket_answers
from .recovery import recover

log = logging.getLogger("warden.server")

# accept(2) errors that mean "no file descriptor or memory for one more client".
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


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
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._spare_fd: int | None = None  # given up to refuse a client when fds run out
        self._refusing: str | None = None  # why clients are being refused (this burst), or None
        self._closed = asyncio.Event()  # set when a connection closes: room for another
        self._tasks: set[asyncio.Task[None]] = set()  # one per connection, kept from the GC
        self._socket_gid: int | None = None
        self._health: asyncio.AbstractServer | None = None
        self._stopping = asyncio.Event()
        self._drained = False
        self._pidfile_written = False

    # ---- start ---------------------------------------------------------------------

    async def start(self) -> None:
        self._check_pidfile()
        self._socket_gid = self._resolve_group()
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
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        # Owner, group and mode are set before listen(), so no client slips in early.
        if self._socket_gid is not None:
            os.chown(path, -1, self._socket_gid)
        os.chmod(path, self.config.server.unix_domain_permissions)
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self._spare_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._accepting = asyncio.create_task(self._accept_loop())

    def _resolve_group(self) -> int | None:
        group = self.config.server.unix_domain_group
        if group is None or isinstance(group, int):
            return group
        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            raise StartupError(f"server.unix_domain_group: no group named {group!r} on this host "
                               f"(create it: groupadd --system {group}; install.sh does)") from None

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

    async def _accept_loop(self) -> None:
        """accept(2) until the drain: each client its own task, a client over
        `server.max_connections` or beyond the fd limit an Error and a close."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while not self._drained:
            try:
                sock, _ = await loop.sock_accept(self._listener)
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    await self._refuse_without_fds(exc)
                continue  # anything else (a client gone before accept) is that client's
            if len(self.connections) >= self.config.server.max_connections:
                self._refuse(sock, f"too many connections (server.max_connections: "
                                   f"{self.config.server.max_connections})")
                continue
            self._refusing = None
            await self._start_connection(sock)

    def _refuse(self, sock: socket.socket, why: str) -> None:
        """One Error frame, then close; one log line per burst of refusals."""
        if self._refusing is None:
            log.warning(f"refusing new clients: {why}", extra={"data": {
                "connections": len(self.connections)}})
        self._refusing = why
        try:
            sock.send(encode_error(why))  # a fresh socket has room for it
        except OSError:
            pass
        sock.close()

    async def _refuse_without_fds(self, exc: OSError) -> None:
        """Out of fds: give up the spare one to accept a client and tell it so;
        without a spare, wait until a connection closes (or a second passes)."""
        assert self._listener is not None
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
            try:
                sock, _ = self._listener.accept()
            except OSError:
                sock = None
            if sock is not None:
                self._refuse(sock, f"out of file descriptors ({exc.strerror})")
            try:
                self._spare_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass
            if sock is not None:
                return
        if self._refusing is None:
            log.warning("refusing new clients: out of file descriptors", extra={"data": {
                "error": exc.strerror, "connections": len(self.connections)}})
            self._refusing = "out of file descriptors"
        self._closed.clear()
        try:
            await asyncio.wait_for(self._closed.wait(), timeout=1)
        except TimeoutError:
            pass

    async def _start_connection(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**20, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock)
        except OSError:
            sock.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        conn = Connection(self, reader, writer, _peer(sock))
        self.connections.add(conn)
        task = asyncio.create_task(self._serve(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: Connection) -> None:
        try:
            await conn.serve()
        except Exception:  # one broken connection must not take others down
            log.exception("Disconnected client after error")
        finally:
            self.connections.discard(conn)
            self._closed.set()
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
        if self._accepting is not None:
            self._accepting.cancel()
        if self._listener is not None:
            self._listener.close()
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


def _peer(sock: socket.socket) -> dict[str, int] | None:
    """The client's pid, uid and gid as the kernel saw them at connect(2)."""
    try:
        pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError:
        return None
    return {"pid": pid, "uid": uid, "gid": gid}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
