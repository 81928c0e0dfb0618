"""Jobs: scripts started in a container whose output and exit status outlive us.

A job lives in `<container>/jobs/<id>/`, held by the `iomux-spawn` daemon:

    script       the script text (the job's stdin)
    meta.json    what the server must remember (discard_output, log_tag)
    output       records: 1 byte stream (1 stdout, 2 stderr), 4 bytes BE length, data
    notify.sock  one byte per appended record to every connected reader; EOF at the end
    status       exit status, then `output limit exceeded` if the cap killed the job

The file is the truth, so a restarted server replays a job from its first byte and
nothing is lost or duplicated. Readers connect to `notify.sock` before reading the
file, so no wake-up can be missed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

STREAMS = {1: "stdout", 2: "stderr"}
HEADER = struct.Struct(">BI")
LIMIT_LINE = "output limit exceeded"


@dataclass(frozen=True)
class Status:
    exit_status: int
    limit_exceeded: bool = False

    @classmethod
    def read(cls, path: Path) -> Status | None:
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return None
        try:
            code = int(lines[0])
        except (IndexError, ValueError):
            return cls(255)
        return cls(code, LIMIT_LINE in lines[1:])


@dataclass
class Output:
    stdout: bytes
    stderr: bytes


# Up to this size a finished job's output is read into memory for Link and Run;
# beyond, it is sent from its file (StreamBytes), so the server's memory does
# not grow with it.
INLINE_OUTPUT_MAX = 1 << 20


def finished_output(f: BinaryIO) -> tuple[bytes | StreamBytes, bytes | StreamBytes]:
    """stdout and stderr of a finished job, for Link and Run: bytes when the
    output is small, else StreamBytes (on descriptors of their own: `f` can be
    closed at once; close them once sent)."""
    if os.fstat(f.fileno()).st_size <= INLINE_OUTPUT_MAX:
        output = read_output(f)
        return output.stdout, output.stderr
    lengths = OutputCursor(f, only=()).measure()
    return StreamBytes(f, "stdout", lengths["stdout"]), StreamBytes(f, "stderr", lengths["stderr"])


def close_result(result: dict[str, Any]) -> None:
    """Closes the StreamBytes of a Link or Run result (sent or not)."""
    for value in result.values():
        if isinstance(value, StreamBytes):
            value.close()


def read_output(f: BinaryIO) -> Output:
    """The whole output of a finished job, stdout and stderr apart."""
    data = f.read()
    view = memoryview(data)
    out: list[memoryview] = []
    err: list[memoryview] = []
    pos = 0
    while len(data) - pos >= HEADER.size:
        stream, length = HEADER.unpack_from(data, pos)
        end = pos + HEADER.size + length
        if end > len(data):
            break  # cut short: the holder died while writing it
        (err if STREAMS.get(stream) == "stderr" else out).append(view[pos + HEADER.size:end])
        pos = end
    return Output(b"".join(out), b"".join(err))


class Notifier:
    """A connection to the holder's `notify.sock`. A bare non-blocking socket:
    every job opens one or more, and asyncio streams cost more than the wait."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    @classmethod
    async def connect(cls, path: Path) -> Notifier | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            await asyncio.get_running_loop().sock_connect(sock, str(path))
        except OSError:
            sock.close()
            return None  # gone (finished) or refused (the holder died)
        return cls(sock)

    async def wait(self) -> bool:
        """Wait for news; False once the holder has closed (the job is over).

        The holder may reset rather than close connections as it exits."""
        try:
            return bool(await asyncio.get_running_loop().sock_recv(self._sock, 65536))
        except OSError:
            return False

    def close(self) -> None:
        self._sock.close()


class Job:
    """One job of one container, whether it is running or finished but not yet linked."""

    def __init__(self, job_id: int, directory: Path, discard_output: bool = False, log_tag: str | None = None) -> None:
        self.id = job_id
        self.dir = directory
        self.discard_output = discard_output
        self.log_tag = log_tag
        self.status: Status | None = None
        self._done = asyncio.get_running_loop().create_future()
        self._watcher: asyncio.Task[None] | None = None

    # ---- files -----------------------------------------------------------------

    @property
    def output_path(self) -> Path:
        return self.dir / "output"

    def write_meta(self) -> None:
        """Only what differs from the defaults (the common job has no meta file)."""
        if self.discard_output or self.log_tag is not None:
            meta = {"discard_output": self.discard_output, "log_tag": self.log_tag}
            (self.dir / "meta.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, job_id: int, directory: Path) -> Job:
        try:
            meta = json.loads((directory / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        return cls(job_id, directory, bool(meta.get("discard_output")), meta.get("log_tag"))

    def open_output(self) -> BinaryIO | None:
        """Open early: the fd stays readable if the directory is removed meanwhile."""
        try:
            return open(self.output_path, "rb")
        except FileNotFoundError:
            return None

    def retire(self) -> bool:
        """Rename the directory out of the way of recovery; False if it is gone."""
        retired = self.dir.with_name(f".gone-{self.id}")
        try:
            os.rename(self.dir, retired)
        except OSError:
            return False
        self.dir = retired
        return True

    @property
    def started(self) -> bool:
        """Did a holder take the job on? It listens on notify.sock until it
        writes status; before that, the directory is only what Spawn prepared."""
        return (self.dir / "notify.sock").exists() or (self.dir / "status").exists()

    def remove(self) -> None:
        remove_job_dir(self.dir)

    # ---- completion --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self._done.done()

    def watch(self, on_done: Callable[[Job], None]) -> None:
        """Follow the job in the background; `on_done(job)` runs once it has finished."""
        self._watcher = asyncio.create_task(self._watch(on_done), name=f"job-{self.id}")

    async def _watch(self, on_done: Callable[[Job], None]) -> None:
        notifier = await Notifier.connect(self.dir / "notify.sock")
        if notifier is not None:
            try:
                while await notifier.wait():
                    pass
            finally:
                notifier.close()
        status = Status.read(self.dir / "status")
        if status is None:
            # The holder is gone without leaving a status: killed, or the machine died.
            status = Status(255)
        self.status = status
        if not self._done.done():
            self._done.set_result(status)
        on_done(self)

    async def wait(self) -> Status:
        return await asyncio.shield(self._done)

    def cancel(self) -> None:
        """Stop following (server drain); the job itself keeps running."""
        if self._watcher is not None:
            self._watcher.cancel()

    # ---- reading -----------------------------------------------------------------

    async def follow(self, f: BinaryIO) -> AsyncIterator[tuple[str, bytes | FileSpan]]:
        """Every record from the first, live, until the job has finished.

        Output comes as `OutputCursor` gives it: small records of one stream
        joined, large ones as spans of the file."""
        cursor = OutputCursor(f)
        notifier = await Notifier.connect(self.dir / "notify.sock")
        try:
            while True:
                for chunk in cursor.available():
                    yield chunk
                if notifier is not None:
                    if not await notifier.wait():
                        notifier.close()
                        notifier = None
                elif self.running:
                    await self.wait()
                else:
                    for chunk in cursor.available():
                        yield chunk
                    return
        finally:
            if notifier is not None:
                notifier.close()


def remove_job_dir(directory: Path) -> None:
    """A handful of files, unlinked directly (rmtree only for surprises), and
    the output file on disk when `output` is a link to it."""
    remove_linked_output(directory)
    try:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)


def remove_linked_output(directory: Path) -> None:
    """Removes `output` and, when it is a link (see LinuxContainer), what it points to."""
    link = os.path.join(directory, "output")
    try:
        target = os.readlink(link)
    except OSError:
        return  # none, or a plain file
    for path in (target, link):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


READ_SIZE = 256 * 1024
SPAN_MIN = 64 * 1024


@dataclass(frozen=True)
class FileSpan:
    """Payload bytes left in the output file, to be sent with sendfile(2): a
    fast job's output then goes from the file to the client's socket without
    being copied through Python. Records are never changed once complete."""

    file: BinaryIO
    offset: int
    length: int

    def __len__(self) -> int:
        return self.length

    def read(self) -> bytes:
        return os.pread(self.file.fileno(), self.length, self.offset)


class StreamBytes:
    """One stream of a finished job's output, left in the output file: its
    length (for the frame's bin header) and its bytes in order, produced on
    demand by `parts()` as bytes (runs of small records) and FileSpans."""

    def __init__(self, f: BinaryIO, name: str, length: int) -> None:
        self.name = name
        self.length = length
        self._file = os.fdopen(os.dup(f.fileno()), "rb")

    def __len__(self) -> int:
        return self.length

    def parts(self) -> Iterator[bytes | FileSpan]:
        for _, data in OutputCursor(self._file, only=(self.name,)).available():
            yield data

    def read(self) -> bytes:
        return b"".join(p.read() if isinstance(p, FileSpan) else p for p in self.parts())

    def close(self) -> None:
        self._file.close()


class OutputCursor:
    """Walks the complete records of an output file from the first.

    Runs of small records of one stream come out joined as bytes (a chatty job
    costs few frames; memory stays bounded by READ_SIZE); a record of SPAN_MIN
    bytes or more comes out as a FileSpan. After a span only the next header
    is read: a fast writer's records are large one after the other.

    `only` names the streams to give out (default both); records of the others
    are passed over, large ones without reading them. Either way `lengths`
    counts the bytes of each stream passed."""

    def __init__(self, f: BinaryIO, only: tuple[str, ...] = ("stdout", "stderr")) -> None:
        self._file = f
        self._fd = f.fileno()
        self._only = only
        self.offset = 0
        self.lengths = {"stdout": 0, "stderr": 0}
        self._header_only = False  # after a large record, the next is likely large too

    def measure(self) -> dict[str, int]:
        """Walk to the end of what the file holds; the bytes of each stream."""
        for _ in self.available():
            pass
        return self.lengths

    def available(self) -> Iterator[tuple[str, bytes | FileSpan]]:
        while True:
            size = os.fstat(self._fd).st_size
            if size - self.offset < HEADER.size:
                return
            header_only = self._header_only
            self._header_only = False
            want = HEADER.size if header_only else min(READ_SIZE, size - self.offset)
            data = os.pread(self._fd, want, self.offset)
            consumed = yield from self._records(data, size)
            if consumed:
                self.offset += consumed
            elif not header_only:
                return  # only part of a record is there: the holder is writing it

    def _records(self, data: bytes, size: int) -> Generator[tuple[str, bytes | FileSpan], None, int]:
        """Yields what `data` (read at self.offset) holds; returns the bytes consumed."""
        view = memoryview(data)
        name = ""  # the stream of the records in `parts`
        parts: list[memoryview] = []
        pos = 0
        while len(data) - pos >= HEADER.size:
            stream, length = HEADER.unpack_from(data, pos)
            record_name = STREAMS.get(stream, "stdout")
            start = pos + HEADER.size
            end = start + length
            wanted = record_name in self._only
            if length >= SPAN_MIN and self.offset + end <= size:
                if parts and wanted:
                    yield name, b"".join(parts)
                    name, parts = "", []
                if wanted:
                    yield record_name, FileSpan(self._file, self.offset + start, length)
                self.lengths[record_name] += length
                pos = end
                if end >= len(data):
                    self._header_only = True
                    break
                continue
            if end > len(data):
                break
            self.lengths[record_name] += length
            pos = end
            if not wanted:
                continue
            if record_name != name and parts:
                yield name, b"".join(parts)
                parts = []
            name = record_name
            parts.append(view[start:end])
        if parts:
            yield name, b"".join(parts)
        return pos


class JobIds:
    """Job ids unique for the server's lifetime and across restarts.

    A block of ids is reserved on disk before any is handed out, so a crash can
    skip ids but never reuse one, and a Spawn costs no file write most of the time.
    """

    BLOCK = 1000

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._next = int(path.read_text().strip() or 0)
        except (OSError, ValueError):
            self._next = 1
        self._next = max(self._next, 1)
        self._reserved = self._next

    def seen(self, job_id: int) -> None:
        if job_id >= self._next:
            self._next = job_id + 1

    def next(self) -> int:
        if self._next >= self._reserved:
            self._reserved = self._next + self.BLOCK
            tmp = self._path.with_name(self._path.name + ".tmp")
            tmp.write_text(f"{self._reserved}\n")
            os.replace(tmp, self._path)
        job_id = self._next
        self._next += 1
        return job_id
