"""Job mode: ask a container's wshd to start and hold a job itself.

wshd, the container's PID 1, then keeps the job's output and exit status in
`<container>/jobs/<id>/` with the same contract as `iomux-spawn` (see `jobs.py`
and `src/jobs/jobdir.h`), so `Job` reads it and a restarted server adopts it
unchanged. No process is started on this path: one request over
`run/wshd.sock`, one answer with the job's pid.

The wire format is the wsh <-> wshd protocol of `src/wsh/proto.h`, version 2:
a request frame with the WSH_FLAG_JOB flag and typed records.
"""

from __future__ import annotations

import array
import asyncio
import socket
import struct
from collections.abc import Sequence

from ...errors import WardenError
from ...protocol.catalogue import catalogue

REQUEST_MAGIC = b"WSHq"
RESPONSE_MAGIC = b"WSHr"
VERSION = 2
MIN_VERSION = 1
HEADER = struct.Struct("<4sHHI")  # magic, version, flags or status, body length
RECORD = struct.Struct("<BI")     # type, value length
MAX_BODY = 1024 * 1024
MAX_RESPONSE_BODY = 4096

FLAG_JOB = 0x2
STATUS_OK, STATUS_ERROR = 0, 1

REC_ARG, REC_USER, REC_ENV, REC_RLIMIT, REC_DIR = 1, 2, 3, 4, 5
REC_JOB, REC_OUTPUT_LIMIT, REC_DISCARD, REC_OUTPUT_FD = 6, 7, 8, 9

# The protocol's rlimit indexes (src/common/rlimit_table.h), by the lower-case
# names config.server.container_rlimits and Spawn requests use: the order of
# the ResourceLimits struct in spec/protocol.yml.
RLIMIT_INDEX = {name: index for index, name in enumerate(catalogue().structs["ResourceLimits"])}
UNLIMITED = 2**64 - 1

FAILED = "iomux-spawn failed"  # the message clients know from the iomux path
DEFAULT_COMMAND = ("/bin/bash",)


class JobModeUnsupported(WardenError):
    """This wshd predates job mode (an older container): use the iomux path."""

    def __init__(self, detail: str) -> None:
        super().__init__(FAILED, detail)


class OutputFdUnsupported(WardenError):
    """This wshd holds jobs but cannot take their output file from us (an older
    container): ask again without one, and it creates output in the job directory."""

    def __init__(self, detail: str) -> None:
        super().__init__(FAILED, detail)


def _string(rec_type: int, value: str) -> bytes:
    data = value.encode()
    if b"\0" in data:
        raise WardenError(FAILED, f"NUL byte in {value!r}")
    return RECORD.pack(rec_type, len(data)) + data


def _u64(value: int) -> int:
    return UNLIMITED if value < 0 or value >= UNLIMITED else value


def encode_request(job_id: int | str, *, user: str, env: dict[str, str], rlimits: dict[str, int],
                   output_limit: int, discard_output: bool, command: Sequence[str] = DEFAULT_COMMAND,
                   work_dir: str | None = None, output_fd_passed: bool = False) -> bytes:
    """The request frame; raises WardenError for what wshd would refuse anyway."""
    body = [_string(REC_ARG, arg) for arg in command]
    body.append(_string(REC_USER, user))
    for name, value in env.items():
        if not name or "=" in name:
            raise WardenError(FAILED, f"invalid environment variable name {name!r}")
        body.append(_string(REC_ENV, f"{name}={value}"))
    for name, amount in rlimits.items():
        index = RLIMIT_INDEX.get(name.lower())
        if index is None:
            raise WardenError(FAILED, f"unknown rlimit {name!r}")
        limit = _u64(int(amount))
        body.append(RECORD.pack(REC_RLIMIT, 20) + struct.pack("<IQQ", index, limit, limit))
    if work_dir is not None:
        body.append(_string(REC_DIR, work_dir))
    body.append(_string(REC_JOB, str(job_id)))
    if output_limit:
        body.append(RECORD.pack(REC_OUTPUT_LIMIT, 8) + struct.pack("<Q", _u64(output_limit)))
    if discard_output:
        body.append(RECORD.pack(REC_DISCARD, 0))
    if output_fd_passed:
        body.append(RECORD.pack(REC_OUTPUT_FD, 0))
    payload = b"".join(body)
    if len(payload) > MAX_BODY:
        raise WardenError(FAILED, f"request too large ({len(payload)} bytes)")
    return HEADER.pack(REQUEST_MAGIC, VERSION, FLAG_JOB, len(payload)) + payload


def decode_response(header: bytes, body: bytes) -> int:
    """The job's pid from an answer; raises WardenError with wshd's message."""
    _, _, status, _ = HEADER.unpack(header)
    if status == STATUS_OK:
        if len(body) != 8:
            raise WardenError(FAILED, f"wshd: malformed answer ({len(body)}-byte body)")
        pid: int = struct.unpack("<II", body)[0]  # the body: pid, count of descriptors passed
        return pid
    message = body.decode("utf-8", "replace")
    # Only a wshd without job mode refuses the job flag or our version.
    if "unknown request flags" in message or "unsupported protocol version" in message:
        raise JobModeUnsupported(message)
    if f"unknown record type {REC_OUTPUT_FD}" in message:
        raise OutputFdUnsupported(message)
    raise WardenError(FAILED, message)


async def _recv_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise WardenError(FAILED, "wshd closed the connection without an answer")
        data += chunk
    return data


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _send_with_fd(loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes, fd: int) -> None:
    """sendall, with `fd` attached (SCM_RIGHTS) to the first bytes that go."""
    while True:
        try:
            sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
            break
        except (BlockingIOError, InterruptedError):
            writable: asyncio.Future[None] = loop.create_future()
            loop.add_writer(sock.fileno(), _wake, writable)
            try:
                await writable
            finally:
                loop.remove_writer(sock.fileno())
    if sent < len(data):
        await loop.sock_sendall(sock, data[sent:])


async def _exchange(socket_path: str, request: bytes, output_fd: int | None = None) -> int:
    """One request, one answer. A bare non-blocking socket: this is on every
    Spawn's path, and asyncio's stream machinery costs more than the exchange."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        try:
            await loop.sock_connect(sock, socket_path)
        except OSError as exc:
            raise WardenError(FAILED, f"connect {socket_path}: {exc.strerror or exc}") from None
        try:
            if output_fd is None:
                await loop.sock_sendall(sock, request)
            else:
                await _send_with_fd(loop, sock, request, output_fd)
            header = await _recv_exactly(loop, sock, HEADER.size)
            magic, version, _, length = HEADER.unpack(header)
            if magic != RESPONSE_MAGIC or not MIN_VERSION <= version <= VERSION or length > MAX_RESPONSE_BODY:
                raise WardenError(FAILED, f"wshd: malformed answer header {header!r}")
            body = await _recv_exactly(loop, sock, length)
        except OSError as exc:
            raise WardenError(FAILED, f"talking to wshd: {exc.strerror or exc}") from None
    finally:
        sock.close()
    return decode_response(header, body)


async def spawn_job(socket_path: str, job_id: int, *, user: str, env: dict[str, str],
                    rlimits: dict[str, int], output_limit: int, discard_output: bool,
                    timeout: float = 10, command: Sequence[str] = DEFAULT_COMMAND,
                    work_dir: str | None = None, output_fd: int | None = None) -> int:
    """Start job `job_id` through the wshd listening on `socket_path`; return its pid.

    The job directory `<container>/jobs/<job_id>/` must exist and hold `script`
    (the job's stdin). The job runs `command` (default bash) as `user` with the
    fresh environment HOME, USER, PATH plus `env`, the given rlimits (lower-case
    names; soft = hard; a value <= -1 or >= 2**64-1 means unlimited) on top of
    wshd's defaults, and in `work_dir` (default: the user's home). Its output is
    kept up to `output_limit` bytes (0: no limit) unless `discard_output`.

    Raises WardenError("iomux-spawn failed", <wshd's message>) when the job
    could not be started (JobModeUnsupported, a subclass, for a wshd that
    predates job mode). Set-up failures inside the job (an unknown user, a bad
    rlimit) are reported like on the wsh path: `wsh: ...` on the job's stderr
    and exit status 255.

    With `output_fd`, wshd appends the job's output records to that file (sent
    along; the caller keeps and closes its copy) instead of creating `output`
    in the job directory (OutputFdUnsupported: this wshd cannot).
    """
    request = encode_request(job_id, user=user, env=env, rlimits=rlimits, output_limit=output_limit,
                             discard_output=discard_output, command=command, work_dir=work_dir,
                             output_fd_passed=output_fd is not None)
    try:
        async with asyncio.timeout(timeout):
            return await _exchange(socket_path, request, output_fd)
    except TimeoutError:
        raise WardenError(FAILED, f"wshd did not answer within {timeout:g} s") from None
