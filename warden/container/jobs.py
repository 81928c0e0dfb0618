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
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, BinaryIO

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


class RecordParser:
    """Splits the output file into (stream name, bytes) records, across reads.

    Records are memoryviews into the data read, so a record's bytes are copied
    once, when the caller joins them (output can be gigabytes)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[str, memoryview]]:
        buffer = self._buffer + data if self._buffer else data
        view = memoryview(buffer)
        size = len(buffer)
        records = []
        offset = 0
        while size - offset >= HEADER.size:
            stream, length = HEADER.unpack_from(buffer, offset)
            end = offset + HEADER.size + length
            if end > size:
                break
            records.append((STREAMS.get(stream, "stdout"), view[offset + HEADER.size:end]))
            offset = end
        self._buffer = bytes(view[offset:]) if offset < size else b""
        return records


def read_output(f: BinaryIO) -> Output:
    out: list[memoryview] = []
    err: list[memoryview] = []
    for name, data in RecordParser().feed(f.read()):
        (out if name == "stdout" else err).append(data)
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
        self._watcher: asyncio.Task | None = None

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

    def remove(self) -> None:
        """A handful of files: unlinked directly, rmtree only for surprises."""
        try:
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            os.rmdir(self.dir)
        except OSError:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- completion --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self._done.done()

    def watch(self, on_done) -> None:
        """Follow the job in the background; `on_done(job)` runs once it has finished."""
        self._watcher = asyncio.create_task(self._watch(on_done), name=f"job-{self.id}")

    async def _watch(self, on_done) -> None:
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

    async def follow(self, f: BinaryIO) -> AsyncIterator[tuple[str, bytes]]:
        """Every record from the first, live, until the job has finished.

        Adjacent records of the same stream are merged (up to READ_SIZE), so a
        chatty job costs few frames; memory stays bounded by READ_SIZE."""
        parser = RecordParser()
        notifier = await Notifier.connect(self.dir / "notify.sock")
        try:
            while True:
                for chunk in _merged(parser, f):
                    yield chunk
                if notifier is not None:
                    if not await notifier.wait():
                        notifier.close()
                        notifier = None
                elif self.running:
                    await self.wait()
                else:
                    for chunk in _merged(parser, f):
                        yield chunk
                    return
        finally:
            if notifier is not None:
                notifier.close()


READ_SIZE = 1 << 20


def _merged(parser: RecordParser, f: BinaryIO):
    """What the file holds now, read in bounded pieces, same-stream runs joined."""
    while data := f.read(READ_SIZE):
        name, parts = None, []
        for record_name, record in parser.feed(data):
            if record_name != name and parts:
                yield name, b"".join(parts)
                parts = []
            name = record_name
            parts.append(record)
        if parts:
            yield name, b"".join(parts)


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
