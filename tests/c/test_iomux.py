"""Tests of the iomux-spawn / iomux-link C helpers and of the job reader contract.

The reader here is the same algorithm the server uses: connect to notify.sock,
then alternate between reading complete records from `output` and waiting for
a wake-up byte; EOF on the socket means `status` has been written.
"""

import os
import select
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
IOMUX_DIR = ROOT / "src" / "iomux"
SPAWN = IOMUX_DIR / "iomux-spawn"
LINK = IOMUX_DIR / "iomux-link"

pytestmark = pytest.mark.skipif(
    not SPAWN.exists() or not LINK.exists(),
    reason=f"{SPAWN} not built; run `make -C {ROOT / 'src'}` first",
)

STDOUT, STDERR = 1, 2
HEADER = struct.Struct(">BI")


class Job:
    def __init__(self, jobdir, pid, child_pid):
        self.jobdir = jobdir
        self.pid = pid
        self.child_pid = child_pid

    def status_path(self):
        return self.jobdir / "status"

    def kill(self):
        if self.status_path().exists():
            return  # finished: the pids may belong to someone else now
        for kill in (lambda: os.killpg(self.child_pid, signal.SIGKILL),
                     lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                kill()
            except ProcessLookupError:
                pass


@pytest.fixture
def spawn(tmp_path):
    jobs = []

    def start(*args, name="job"):
        jobdir = tmp_path / name
        jobdir.mkdir()
        options, command = [], list(args)
        if "--" in command:
            cut = command.index("--")
            options, command = command[:cut], command[cut + 1:]
        result = subprocess.run([SPAWN, *options, jobdir, "--", *command],
                                capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, result.stderr
        fields = dict(part.split("=") for part in result.stdout.split())
        assert result.stdout == f"pid={fields['pid']} child_pid={fields['child_pid']}\n"
        job = Job(jobdir, int(fields["pid"]), int(fields["child_pid"]))
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.kill()


def parse_records(data):
    """Returns the complete records in data and the number of bytes they use."""
    records, offset = [], 0
    while len(data) - offset >= HEADER.size:
        stream, length = HEADER.unpack_from(data, offset)
        assert stream in (STDOUT, STDERR)
        end = offset + HEADER.size + length
        if end > len(data):
            break
        records.append((stream, data[offset + HEADER.size:end]))
        offset = end
    return records, offset


def follow(jobdir, timeout=15.0):
    """Reads a job's output until it finishes: returns (records, status lines)."""
    records, offset = [], 0
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(jobdir / "notify.sock"))
        finished = False
    except OSError:
        finished = True  # already done (or the spawner is gone)
    deadline = time.monotonic() + timeout
    try:
        with open(jobdir / "output", "rb") as output:
            while True:
                output.seek(offset)
                new, used = parse_records(output.read())
                records += new
                offset += used
                if finished:
                    break
                ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise TimeoutError(f"job in {jobdir} did not finish")
                try:
                    finished = sock.recv(256) == b""
                except ConnectionResetError:
                    finished = True
    finally:
        sock.close()
    return records, (jobdir / "status").read_text().splitlines()


def test_c_test_suite():
    proc = subprocess.Popen(["make", "-C", IOMUX_DIR, "test"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # run.sh kills its jobs on TERM
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, out
    assert "iomux: all tests passed" in out


def test_reader_follows_alternating_streams(spawn):
    script = ("for i in 1 2 3 4 5; do echo out$i; sleep 0.05; echo err$i >&2; sleep 0.05; done; "
              "exit 3")
    job = spawn("sh", "-c", script)
    records, status = follow(job.jobdir)

    expected = []
    for i in range(1, 6):
        expected += [(STDOUT, f"out{i}\n".encode()), (STDERR, f"err{i}\n".encode())]
    assert records == expected
    assert status == ["3"]
    assert not (job.jobdir / "notify.sock").exists()

    late_records, late_status = follow(job.jobdir)  # a reader arriving after the end
    assert (late_records, late_status) == (records, status)


def test_concurrent_readers_see_everything(spawn, tmp_path):
    go = tmp_path / "go"
    script = f"seq 1 2000; while [ ! -e {go} ]; do sleep 0.02; done; seq 2001 4000 >&2"
    job = spawn("sh", "-c", script)

    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # never reads its wake-ups
    stuck.connect(str(job.jobdir / "notify.sock"))
    try:
        # The first half written while a reader ignores its wake-ups:
        wait_for(lambda: b"2000\n" in (job.jobdir / "output").read_bytes(), what="seq 1 2000 in the output")
        go.touch()
        results = [follow(job.jobdir) for _ in range(3)]
    finally:
        stuck.close()

    for records, status in results:
        out = b"".join(data for stream, data in records if stream == STDOUT)
        err = b"".join(data for stream, data in records if stream == STDERR)
        assert out.decode().split() == [str(i) for i in range(1, 2001)]
        assert err.decode().split() == [str(i) for i in range(2001, 4001)]
        assert all(0 < len(data) <= 65536 for _, data in records)
        assert status == ["0"]


def test_stuck_reader_does_not_block_the_job(spawn):
    # Hundreds of records: far more wake-ups than a socket buffer holds.
    script = "sleep 0.3; i=0; while [ $i -lt 3000 ]; do echo $i; i=$((i+1)); done"
    job = spawn("sh", "-c", script)
    stuck = []
    try:
        for _ in range(5):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stuck.append(sock)
            sock.connect(str(job.jobdir / "notify.sock"))
        deadline = time.monotonic() + 15
        while not job.status_path().exists():
            assert time.monotonic() < deadline, "job blocked by readers that never read"
            time.sleep(0.05)
    finally:
        for sock in stuck:
            sock.close()
    records, status = follow(job.jobdir)
    assert b"".join(data for _, data in records).decode().split() == [str(i) for i in range(3000)]
    assert status == ["0"]


def test_output_limit_seen_by_reader(spawn):
    job = spawn("-l", "100", "--", "sh", "-c", "head -c 1000 /dev/zero; sleep 30")
    records, status = follow(job.jobdir)
    assert sum(len(data) for _, data in records) == 100
    assert status == ["255", "output limit exceeded"]


def test_link_replays_and_returns_status(spawn):
    job = spawn("sh", "-c", "echo hi; sleep 0.05; echo there >&2; exit 9")
    result = subprocess.run([LINK, job.jobdir], capture_output=True, timeout=15)
    assert (result.returncode, result.stdout, result.stderr) == (9, b"hi\n", b"there\n")


def receive_datagrams(sock, job, timeout=10.0):
    """Collects datagrams until the job has finished and the socket is quiet."""
    datagrams = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            datagrams.append(sock.recv(65536))
        elif job.status_path().exists() and not (job.jobdir / "notify.sock").exists():
            return datagrams
    raise TimeoutError("job did not finish")


@pytest.mark.parametrize("discard", [False, True])
def test_syslog_datagrams(spawn, tmp_path, discard):
    log_path = tmp_path / "log.sock"
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(str(log_path))
    try:
        script = ("echo hello; sleep 0.1; echo oops >&2; sleep 0.1; "
                  "printf '%2500s\\n' '' | tr ' ' x; sleep 0.1; printf partial")
        options = ["-t", "warden.tag", "-s", str(log_path)] + (["-d"] if discard else [])
        job = spawn(*options, "--", "sh", "-c", script)
        datagrams = receive_datagrams(log, job)
    finally:
        log.close()

    assert datagrams == [
        b"<14>warden.tag: hello",
        b"<11>warden.tag: oops",
        b"<14>warden.tag: " + b"x" * 1024,
        b"<14>warden.tag: " + b"x" * 1024,
        b"<14>warden.tag: " + b"x" * 452,
        b"<14>warden.tag: partial",
    ]
    assert (job.jobdir / "status").read_text() == "0\n"
    assert ((job.jobdir / "output").stat().st_size == 0) == discard
