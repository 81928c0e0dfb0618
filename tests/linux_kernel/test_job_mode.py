"""Job mode: a real container's wshd starts and holds jobs itself.

Jobs are spawned with `warden.container.linux.wshd.spawn_job` after the job
directory and its `script` are created the way `Container.spawn` does, and
read back with `Job` from `warden.container.jobs`, the server's own reader.
Needs root, the rootfs and the binaries in root/linux/skeleton/bin. The
module fixture always runs destroy.sh and checks that nothing is left.

`test_timings` compares spawn + wait-for-status of `true` on this path with
the iomux-spawn + wsh path and with a bare `wsh /bin/true`, and prints the
numbers (run with -s to see them).
"""
import array
import asyncio
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import time

import pytest

from tests.support import needs_kernel, wait_for
from warden.container.jobs import Job, Status
from warden.container.linux.wshd import spawn_job
from warden.errors import WardenError

from .kernel import skip_reason, started_container

pytestmark = needs_kernel(skip_reason())

LANG = {"LANG": "en_US.UTF-8"}


@pytest.fixture(scope="module")
def container(request):
    # Jobs need no network filters.
    c = started_container(request, networking=False)
    c.job_ids = itertools.count(1)
    return c


def new_job_dir(c, script):
    job_id = next(c.job_ids)
    directory = c.path / "jobs" / str(job_id)
    directory.mkdir(parents=True)
    (directory / "script").write_bytes(script.encode() if isinstance(script, str) else script)
    return job_id, directory


async def spawn(c, script, *, user="vcap", env=None, rlimits=None, output_limit=0, discard=False):
    """A started job, followed by a Job as the server would."""
    job_id, directory = new_job_dir(c, script)
    pid = await spawn_job(str(c.socket), job_id, user=user, env=LANG if env is None else env,
                          rlimits=rlimits or {}, output_limit=output_limit, discard_output=discard)
    job = Job(job_id, directory, discard)
    job.pid = pid
    job.watch(lambda _job: None)
    return job


async def collect(job):
    """Every record as the server streams it, then the status."""
    with job.open_output() as f:
        records = [record async for record in job.follow(f)]
    return records, await asyncio.wait_for(job.wait(), 30)


def run(coro):
    return asyncio.run(coro)


def joined(records, name):
    return b"".join(data for stream, data in records if stream == name)


def test_order_status_and_pid_files(container):
    async def main():
        job = await spawn(container, "echo o1; sleep 0.05; echo e1 >&2; sleep 0.05; echo o2; exit 3\n")
        records, status = await collect(job)
        assert records == [("stdout", b"o1\n"), ("stderr", b"e1\n"), ("stdout", b"o2\n")]
        assert status == Status(3)
        assert (job.dir / "child_pid").read_text() == f"{job.pid}\n"
        wshd_pid = (container.path / "run" / "wshd.pid").read_text().strip()
        assert (job.dir / "pid").read_text().strip() == wshd_pid
        assert not (job.dir / "notify.sock").exists()
        assert (job.dir / "output").stat().st_mode & 0o777 == 0o600
    run(main())


def test_killed_by_signal_is_255(container):
    async def main():
        records, status = await collect(await spawn(container, "echo before; kill -9 $$; echo after\n"))
        assert records == [("stdout", b"before\n")]
        assert status == Status(255)
    run(main())


def test_output_limit(container):
    async def main():
        job = await spawn(container, "echo -n 12345; echo -n abcde >&2; head -c 100000 /dev/zero; sleep 30\n",
                          output_limit=1000)
        t0 = time.monotonic()
        records, status = await collect(job)
        assert time.monotonic() - t0 < 10  # killed, not waited for
        assert status == Status(255, limit_exceeded=True)
        assert sum(len(data) for _, data in records) == 1000
        assert joined(records, "stdout").startswith(b"12345") and joined(records, "stderr") == b"abcde"
        assert (job.dir / "status").read_text() == "255\noutput limit exceeded\n"
    run(main())


def test_discard(container):
    async def main():
        records, status = await collect(await spawn(container, "echo hidden; echo more >&2; exit 4\n",
                                                    discard=True))
        assert records == [] and status == Status(4)
    run(main())


def test_rlimits(container):
    async def main():
        records, _ = await collect(await spawn(container, "ulimit -n; ulimit -Hn\n", rlimits={"nofile": 77}))
        assert joined(records, "stdout") == b"77\n77\n"
        records, _ = await collect(await spawn(container, "ulimit -n; ulimit -c\n"))
        assert joined(records, "stdout") == b"1024\n0\n"
    run(main())


def test_users_and_env(container):
    async def main():
        records, _ = await collect(await spawn(container, "id -u; id -G; echo $HOME:$USER; pwd\n"))
        uid = str(container.user_uid)
        assert joined(records, "stdout").decode().split("\n") == [uid, uid, "/home/vcap:vcap", "/home/vcap", ""]
        records, _ = await collect(await spawn(container, "id -u; echo $HOME\n", user="root"))
        assert joined(records, "stdout") == b"0\n/root\n"
        records, _ = await collect(await spawn(container, "echo $LANG\n", env={"LANG": "C.UTF-8"}))
        assert joined(records, "stdout") == b"C.UTF-8\n"
        records, status = await collect(await spawn(container, "true\n", user="nobody-here"))
        assert status == Status(255) and b"unknown user" in joined(records, "stderr")
    run(main())


def test_job_gets_no_host_descriptors(container):
    async def main():
        script = "ls /proc/self/fd/; ls /proc/1/fd/ >/dev/null 2>&1 || echo denied\n"
        records, status = await collect(await spawn(container, script))
        # 0-2, and 3: the directory ls itself opened.
        assert joined(records, "stdout") == b"0\n1\n2\n3\ndenied\n" and status == Status(0)
    run(main())


def test_spawn_errors(container):
    async def main():
        job_id = next(container.job_ids)
        (container.path / "jobs" / str(job_id)).mkdir()
        with pytest.raises(WardenError) as info:
            await spawn_job(str(container.socket), job_id, user="vcap", env={}, rlimits={},
                            output_limit=0, discard_output=False)
        assert info.value.message == "iomux-spawn failed" and "open script" in info.value.data
        assert not (container.path / "jobs" / str(job_id) / "notify.sock").exists()
        with pytest.raises(WardenError) as info:
            await spawn_job(str(container.path / "run" / "nope.sock"), job_id, user="vcap", env={}, rlimits={},
                            output_limit=0, discard_output=False)
        assert info.value.message == "iomux-spawn failed" and "connect" in info.value.data
    run(main())


def test_output_to_a_passed_file(container, tmp_path):
    """With an output descriptor, wshd appends the records there and creates
    no output file in the job directory (the server links one to it)."""
    async def main():
        job_id, directory = new_job_dir(container, "echo out; echo err >&2; exit 5\n")
        target = tmp_path / "output"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            await spawn_job(str(container.socket), job_id, user="vcap", env=LANG, rlimits={},
                            output_limit=0, discard_output=False, output_fd=fd)
        finally:
            os.close(fd)
        os.symlink(target, directory / "output")
        job = Job(job_id, directory)
        job.watch(lambda _job: None)
        records, status = await collect(job)
        assert records == [("stdout", b"out\n"), ("stderr", b"err\n")] and status == Status(5)
        assert (directory / "output").is_symlink()
    run(main())


def raw_exchange(c, frame: bytes, fds: list[int]) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(c.socket))
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        sock.sendmsg([frame], ancillary)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        return answer


def test_output_descriptor_and_record_must_go_together(container, tmp_path):
    from warden.container.linux.wshd import encode_request

    job_id, directory = new_job_dir(container, "true\n")
    plain = dict(user="vcap", env={}, rlimits={}, output_limit=0, discard_output=False)
    with open(tmp_path / "f", "wb") as f:
        answer = raw_exchange(container, encode_request(job_id, **plain, output_fd_passed=True), [])
        assert b"output descriptor record without a descriptor" in answer
        answer = raw_exchange(container, encode_request(job_id, **plain), [f.fileno()])
        assert b"a descriptor came with a request that takes none" in answer
        answer = raw_exchange(container, encode_request(job_id, **plain, output_fd_passed=True),
                              [f.fileno(), f.fileno()])
        assert b"more than one descriptor" in answer
    assert sorted(os.listdir(directory)) == ["script"], "no job was started"


def test_fifty_concurrent_jobs(container):
    async def main():
        jobs = await asyncio.gather(*(spawn(container, f"sleep 0.2; echo job {i}; exit {i}\n") for i in range(50)))
        results = await asyncio.gather(*(collect(job) for job in jobs))
        for i, (records, status) in enumerate(results):
            assert records == [("stdout", f"job {i}\n".encode())] and status == Status(i)
    run(main())


def test_serves_while_a_job_runs(container):
    async def main():
        long_job = await spawn(container, "sleep 2; echo done\n")
        t0 = time.monotonic()
        records, status = await collect(await spawn(container, "echo quick\n"))
        assert records == [("stdout", b"quick\n")] and status == Status(0)
        assert time.monotonic() - t0 < 1.5
        assert long_job.running
        return long_job

    t0 = time.monotonic()
    res = container.wsh("echo", "hi", timeout=5)
    assert res.stdout == b"hi\n"
    long_job = run(main())
    assert time.monotonic() - t0 < 2

    async def finish():
        job = Job.load(long_job.id, long_job.dir)
        job.watch(lambda _job: None)
        return await collect(job)
    records, status = run(finish())
    assert records == [("stdout", b"done\n")] and status == Status(0)


def test_slow_reader_does_not_block(container):
    async def main():
        job_id, directory = new_job_dir(container, "for i in $(seq 20000); do echo $i; done; exit 5\n")
        pid = await spawn_job(str(container.socket), job_id, user="vcap", env=LANG, rlimits={},
                              output_limit=0, discard_output=False)
        assert pid > 0
        # A reader that connects and never reads, with a tiny receive buffer.
        with socket.socket(socket.AF_UNIX) as stuck:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            stuck.connect(str(directory / "notify.sock"))
            deadline = time.monotonic() + 30
            while not (directory / "status").exists():
                assert time.monotonic() < deadline, "the job holder is blocked"
                await asyncio.sleep(0.02)
        job = Job(job_id, directory)
        job.watch(lambda _job: None)
        records, status = await collect(job)
        assert status == Status(5)
        assert joined(records, "stdout").split(b"\n")[-2] == b"20000"
    run(main())


def test_iomux_link_replays(container):
    async def main():
        job = await spawn(container, "echo out; echo err >&2; exit 6\n")
        await collect(job)
        return job
    job = run(main())
    res = subprocess.run([str(container.path / "bin" / "iomux-link"), str(job.dir)], capture_output=True, timeout=10)
    assert (res.returncode, res.stdout, res.stderr) == (6, b"out\n", b"err\n")


def test_survives_the_server_and_stop_ends_it(container):
    async def first_server():
        job = await spawn(container, "echo started; sleep 100\n")
        return job.id, job.dir, job.pid

    job_id, directory, pid = run(first_server())  # that "server" is gone now
    # Its first line written, the job is in its `sleep 100`: still running, unreaped.
    wait_for(lambda: b"started" in (directory / "output").read_bytes(), what="the job's first line")
    assert not (directory / "status").exists() and (directory / "notify.sock").exists()
    assert container.sh(f"kill -0 {pid} && echo alive").strip() == "alive"

    async def second_server():
        job = Job.load(job_id, directory)  # as recovery adopts it
        job.watch(lambda _job: None)
        records = []
        replayed = asyncio.Event()

        async def follow():
            with job.open_output() as f:
                async for record in job.follow(f):
                    records.append(record)
                    replayed.set()
            return await asyncio.wait_for(job.wait(), 30)

        follower = asyncio.ensure_future(follow())
        await asyncio.wait_for(replayed.wait(), 10)
        assert not follower.done()  # it follows a running job: only the stop ends it
        stop = await asyncio.create_subprocess_exec(str(container.path / "stop.sh"), "-w", "0",
                                                    env=container.env)
        assert await stop.wait() == 0
        return records, await follower

    records, status = run(second_server())
    assert records == [("stdout", b"started\n")]
    assert status == Status(255)
    assert (directory / "status").read_text() == "255\n"


# ---- timings ---------------------------------------------------------------------------------

def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def test_timings(container, capsys):
    iterations = int(os.environ.get("WARDEN_JOB_TIMING_ITERATIONS", "200"))
    bin_dir = container.path / "bin"
    sock = str(container.socket)

    async def job_mode():
        job_id, directory = new_job_dir(container, "true\n")
        t0 = time.perf_counter()
        await spawn_job(sock, job_id, user="vcap", env=LANG, rlimits={}, output_limit=10 << 20,
                        discard_output=False)
        job = Job(job_id, directory)
        job.watch(lambda _job: None)
        status = await job.wait()
        elapsed = time.perf_counter() - t0
        assert status == Status(0)
        shutil.rmtree(directory)
        return elapsed

    async def iomux_path():
        job_id, directory = new_job_dir(container, "true\n")
        argv = [str(bin_dir / "iomux-spawn"), "-i", str(directory / "script"), "-l", str(10 << 20),
                str(directory), "--", str(bin_dir / "wsh"), "--socket", sock, "--user", "vcap", "/bin/bash"]
        env = {"LANG": LANG["LANG"], "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE)
        await proc.communicate()
        assert proc.returncode == 0
        job = Job(job_id, directory)
        job.watch(lambda _job: None)
        status = await job.wait()
        elapsed = time.perf_counter() - t0
        assert status == Status(0)
        shutil.rmtree(directory)
        return elapsed

    async def bare_wsh():
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(str(bin_dir / "wsh"), "--socket", sock, "--user", "vcap",
                                                    "/bin/true", stdin=asyncio.subprocess.DEVNULL)
        assert await proc.wait() == 0
        return time.perf_counter() - t0

    async def measure(fn):
        for _ in range(10):  # warm up
            await fn()
        return [await fn() for _ in range(iterations)]

    results = {}
    for name, fn in (("job mode (spawn_job + status)", job_mode),
                     ("iomux-spawn + wsh (+ status)", iomux_path),
                     ("wsh /bin/true", bare_wsh)):
        times = run(measure(fn))
        results[name] = (statistics.median(times) * 1000, percentile(times, 0.95) * 1000)
    with capsys.disabled():
        print(f"\njob start + exit status of `true`, {iterations} iterations (ms):")
        for name, (median, p95) in results.items():
            print(f"  {name:32} median {median:6.2f}  p95 {p95:6.2f}")
    # Speed is judged by `invoke bench`, not here (this machine is shared and
    # noisy); this test checks that every path ran every iteration to a status.
    assert all(median > 0 for median, _ in results.values()), results
