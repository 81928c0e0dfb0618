"""The insecure backend's scripts run directly on a scratch depot, without a server.

Jobs here are plain process groups (a session leader whose pid is the job's
`child_pid`), children of the test, which reaps them as iomux-spawn would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import wait_for

from .server import ROOT

INSECURE = ROOT / "root" / "insecure"


def create(depot: Path, name: str) -> Path:
    path = depot / name
    subprocess.run([str(INSECURE / "create.sh"), str(path)], check=True, capture_output=True, timeout=30)
    return path


@contextlib.contextmanager
def undeletable(path: Path):
    """rm -rf cannot remove path's dir: an immutable file for root, a
    read-only dir for anyone else."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip(f"chattr +i does not work on {path}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(0o755)


def test_clear_reports_a_failed_destroy_and_skips_what_is_not_a_container(tmp_path):
    depot = tmp_path / "depot"
    containers = [create(depot, name) for name in ("one", "stuck", "two")]
    # Not containers: the server's job id counter, and what recovery skips too.
    (depot / ".job-ids").write_text("7\n")
    (depot / ".hidden").mkdir()
    (depot / "tmp").mkdir()
    (depot / "tmp" / "file").write_text("x")
    pinned = depot / "stuck" / "root" / "pinned" / "file"
    pinned.parent.mkdir()
    pinned.write_text("x")
    with undeletable(pinned):
        res = subprocess.run([str(INSECURE / "clear.sh"), str(depot)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert sorted(res.stdout.splitlines()) == sorted(f"Destroying {c}" for c in containers)
    assert f"Failed destroying {depot / 'stuck'}\n" in res.stderr
    assert f"Failed destroying {depot / 'one'}" not in res.stderr
    # The other containers went; the rest of the depot is untouched.
    assert sorted(p.name for p in depot.iterdir()) == [".hidden", ".job-ids", "stuck", "tmp"]
    assert (depot / "tmp" / "file").exists()
    # Once nothing fails, clear.sh finishes the half removed container.
    res = subprocess.run([str(INSECURE / "clear.sh"), str(depot)], capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"Destroying {depot / 'stuck'}\n", "")
    assert sorted(p.name for p in depot.iterdir()) == [".hidden", ".job-ids", "tmp"]


@pytest.fixture
def container(tmp_path):
    return create(tmp_path / "depot", "c")


@pytest.fixture
def start_job(container):
    """Starts a job in container; every job is killed and reaped at the end."""
    jobs: list[subprocess.Popen] = []

    def start(ignore_term: bool = False) -> subprocess.Popen:
        job_dir = container / "jobs" / str(len(jobs) + 1)
        job_dir.mkdir()
        ready = job_dir / "ready"
        # An ignored TERM stays ignored across exec.
        script = ("trap '' TERM; " if ignore_term else "") + f': >"{ready}"; exec sleep 1000'
        job = subprocess.Popen(["bash", "-c", script], start_new_session=True)
        jobs.append(job)
        (job_dir / "child_pid").write_text(f"{job.pid}\n")
        wait_for(ready.exists, timeout=10, what="the job to start")
        return job

    yield start
    for job in jobs:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()


def stop(container: Path, job: subprocess.Popen, *args: str) -> subprocess.CompletedProcess:
    """Runs stop.sh while reaping the job (stop.sh waits until its process
    group is gone, and a zombie still counts)."""
    proc = subprocess.Popen([str(container / "stop.sh"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for(lambda: job.poll() is not None or proc.poll() is not None, timeout=30, what="the job or stop.sh to end")
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_stop_fractional_grace_period_terms_first(container, start_job):
    job = start_job()
    res = stop(container, job, "-w", "1.5")
    assert (res.returncode, res.stderr) == (0, "")
    assert job.returncode == -signal.SIGTERM


def test_stop_fractional_grace_period_then_kills(container, start_job):
    job = start_job(ignore_term=True)
    res = stop(container, job, "-w", "0.2")
    assert (res.returncode, res.stderr) == (0, "")
    assert job.returncode == -signal.SIGKILL


@pytest.mark.parametrize("seconds", ["abc", "1.", ".5", "-1", "1e3", "1,5", "1.5s", ""])
def test_stop_refuses_a_grace_period_that_is_not_seconds(container, start_job, seconds):
    job = start_job()
    res = stop(container, job, "-w", seconds)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == f"usage: {container / 'stop.sh'} [-w SECONDS]\n"
    assert job.poll() is None
