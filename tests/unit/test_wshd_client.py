"""warden.container.linux.wshd: the job-mode request encoding and answer handling,
against a fake wshd on a Unix socket (no root, no container)."""

import asyncio
import struct

import pytest

from warden.container.linux import wshd
from warden.errors import WardenError


def records(frame):
    magic, version, flags, length = struct.unpack("<4sHHI", frame[:12])
    assert (magic, version, flags, length) == (b"WSHq", 2, 2, len(frame) - 12)
    out, off = [], 12
    while off < len(frame):
        rec_type, size = struct.unpack("<BI", frame[off:off + 5])
        out.append((rec_type, frame[off + 5:off + 5 + size]))
        off += 5 + size
    return out


def test_encoding():
    frame = wshd.encode_request(42, user="vcap", env={"LANG": "C.UTF-8"}, rlimits={"nofile": 77, "as": -1},
                                output_limit=1000, discard_output=True, work_dir="/tmp")
    assert records(frame) == [
        (1, b"/bin/bash"), (2, b"vcap"), (3, b"LANG=C.UTF-8"),
        (4, struct.pack("<IQQ", 9, 77, 77)), (4, struct.pack("<IQQ", 0, 2**64 - 1, 2**64 - 1)),
        (5, b"/tmp"), (6, b"42"), (7, struct.pack("<Q", 1000)), (8, b""),
    ]
    minimal = records(wshd.encode_request(1, user="root", env={}, rlimits={}, output_limit=0,
                                          discard_output=False))
    assert minimal == [(1, b"/bin/bash"), (2, b"root"), (6, b"1")]


@pytest.mark.parametrize("kwargs", [{"rlimits": {"bogus": 1}}, {"env": {"A=B": "x"}}, {"user": "a\0b"}])
def test_refused_before_sending(kwargs):
    args = dict(user="vcap", env={}, rlimits={}, output_limit=0, discard_output=False)
    args.update(kwargs)
    with pytest.raises(WardenError) as info:
        wshd.encode_request(1, **args)
    assert info.value.message == "iomux-spawn failed"


def answer(status, body, version=2):
    return b"WSHr" + struct.pack("<HHI", version, status, len(body)) + body


async def fake_wshd(tmp_path, reply):
    path = str(tmp_path / "wshd.sock")
    seen = []

    async def handle(reader, writer):
        header = await reader.readexactly(12)
        seen.append(header + await reader.readexactly(struct.unpack("<I", header[8:])[0]))
        if reply is not None:
            writer.write(reply)
            await writer.drain()
            writer.close()
        else:
            await asyncio.sleep(5)

    server = await asyncio.start_unix_server(handle, path)
    return server, path, seen


def spawn(path, timeout=10):
    return wshd.spawn_job(path, 7, user="vcap", env={}, rlimits={}, output_limit=0, discard_output=False,
                          timeout=timeout)


def test_pid_and_errors(tmp_path):
    async def main():
        server, path, seen = await fake_wshd(tmp_path, answer(0, struct.pack("<II", 1234, 0)))
        async with server:
            assert await spawn(path) == 1234
        assert records(seen[0])[-1] == (6, b"7")

        server, path, _ = await fake_wshd(tmp_path, answer(1, b"wshd: job 7: open script: No such file"))
        async with server:
            with pytest.raises(WardenError) as info:
                await spawn(path)
        assert (info.value.message, info.value.data) == ("iomux-spawn failed", "wshd: job 7: open script: No such file")

        old = b"wshd: bad request: unsupported protocol version 2 (this side speaks 1)"
        server, path, _ = await fake_wshd(tmp_path, answer(1, old, version=1))
        async with server:
            with pytest.raises(wshd.JobModeUnsupported) as info:
                await spawn(path)
        assert info.value.message == "iomux-spawn failed"

        server, path, _ = await fake_wshd(tmp_path, None)
        async with server:
            with pytest.raises(WardenError) as info:
                await spawn(path, timeout=0.2)
        assert "did not answer" in info.value.data

        with pytest.raises(WardenError) as info:
            await spawn(str(tmp_path / "absent.sock"))
        assert info.value.data.startswith("connect ")
    asyncio.run(main())


def test_the_output_file_goes_along_with_the_request(tmp_path):
    """The descriptor arrives with the request bytes (SCM_RIGHTS) and is the
    caller's file; the request says so with record 9."""
    import array
    import os
    import socket
    import threading

    path = str(tmp_path / "wshd.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    got: dict = {}

    def serve():
        conn, _ = listener.accept()
        with conn:
            fds = array.array("i")
            data, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, kind, payload in ancdata:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
            got["records"], got["fds"] = records(data), list(fds)
            for fd in fds:
                os.write(fd, b"written by wshd")
                os.close(fd)
            conn.sendall(answer(0, struct.pack("<II", 99, 0)))

    thread = threading.Thread(target=serve)
    thread.start()
    output = tmp_path / "output"
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        pid = asyncio.run(wshd.spawn_job(path, 7, user="vcap", env={}, rlimits={}, output_limit=0,
                                         discard_output=False, output_fd=fd))
    finally:
        os.close(fd)
        thread.join(5)
        listener.close()
    assert pid == 99
    assert len(got["fds"]) == 1 and got["records"][-1] == (9, b"")
    assert output.read_bytes() == b"written by wshd"


def test_a_wshd_without_output_descriptors_is_told_apart(tmp_path):
    async def main():
        refusal = b"wshd: bad request: unknown record type 9"
        server, path, _ = await fake_wshd(tmp_path, answer(1, refusal))
        async with server:
            with pytest.raises(wshd.OutputFdUnsupported) as info:
                await spawn(path)
        assert (info.value.message, info.value.data) == ("iomux-spawn failed", refusal.decode())
    asyncio.run(main())


class OldWshd:
    """A wshd from before output descriptors, on a thread: it refuses record 9
    (and drops descriptors, as read(2) does) and starts everything else."""

    def __init__(self, path: str) -> None:
        import socket
        import threading

        self.requests: list[tuple[list, int]] = []  # (records, descriptors received)
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen()
        self.listener.settimeout(10)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import array
        import os
        import socket

        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                data, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16))
                fds = array.array("i")
                for _, _, payload in ancdata:
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                for fd in fds:
                    os.close(fd)
                recs = records(data)
                self.requests.append((recs, len(fds)))
                if any(kind == 9 for kind, _ in recs):
                    conn.sendall(answer(1, b"wshd: bad request: unknown record type 9"))
                else:
                    conn.sendall(answer(0, struct.pack("<II", 42, 0)))

    def close(self) -> None:
        self.listener.close()


def test_a_container_with_an_older_wshd_keeps_output_in_the_job_directory(tmp_path):
    """Asked once with the output descriptor, refused, asked again without it:
    the job directory keeps no link to a file on disk, and later jobs of that
    container are asked without a descriptor at once."""
    from warden.config import from_dict
    from warden.container.base import Resources
    from warden.container.context import Context
    from warden.container.jobs import Job, JobIds
    from warden.container.linux import LinuxContainer
    from warden.pool import NetworkPool, PortPool, UidPool
    from warden.protocol.requests import SpawnRequest

    depot = tmp_path / "depot"
    path = depot / "c1"
    (path / "run").mkdir(parents=True)
    cfg = from_dict({"server": {"backend": "linux", "container_depot_path": str(depot)}})
    ctx = Context(config=cfg, networks=NetworkPool(cfg.network.pool_network, 0), ports=PortPool(61001, 10),
                  uids=UidPool(10000, 1, passwd=str(tmp_path / "passwd")), job_ids=JobIds(depot / ".job-ids"))
    old = OldWshd(str(path / "run" / "wshd.sock"))

    async def main():
        container = LinuxContainer(ctx, Resources("c1", "h"), path, None)
        for job_id in (1, 2):
            job = Job(job_id, path / "jobs" / str(job_id))
            job.dir.mkdir(parents=True)
            await container.start_job(job, SpawnRequest(handle="h", script=b""))
            assert not (job.dir / "output").exists() and not (job.dir / "output").is_symlink()
        return container

    try:
        container = asyncio.run(main())
    finally:
        old.close()
    kinds = [(sorted({k for k, _ in recs}), fds) for recs, fds in old.requests]
    with_fd = [fds for recs, fds in old.requests if any(k == 9 for k, _ in recs)]
    assert len(old.requests) == 3 and with_fd == [1], kinds
    assert list(container.job_output_dir.iterdir()) == []
