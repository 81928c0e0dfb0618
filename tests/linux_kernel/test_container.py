"""A real Linux container: create, start, run jobs through wsh, stop, destroy.

Needs root, the rootfs built by root/linux/rootfs/setup.sh and the wshd/wsh
binaries in root/linux/skeleton/bin (make -C src/wsh, then copy). It works in
the kernel for real: an overlay mount (only inside the container's mount
namespace), cgroups under <subsystem>/warden/instance-<id>, a veth pair and
an ifb named w-<id>-N on 10.254.255.0/30. The only traffic it sends is one
ICMP echo to the container's own address. A module fixture always runs
destroy.sh and then checks that nothing of the container is left.
"""
import contextlib
import hashlib
import os
import shutil
import subprocess
import time

import pytest

from tests import cgroups
from tests.support import needs_kernel

from .kernel import CGROUP_ROOT, ROOT_LINUX, icmp_echo, leftovers, skip_reason, started_container

pytestmark = needs_kernel(skip_reason())


@pytest.fixture(scope="module")
def container(request):
    return started_container(request)


def test_users(container):
    assert container.sh("id -u", user="vcap").strip() == str(container.user_uid)
    assert container.sh("id -G", user="vcap").strip() == str(container.user_uid)
    assert container.sh("id -u").strip() == "0"
    assert container.sh("echo $HOME:$USER", user="vcap").strip() == "/home/vcap:vcap"


def test_hostname(container):
    assert container.sh("hostname").strip() == container.id


def test_pid_namespace(container):
    lines = container.sh("ps -eo pid=,args=").strip().splitlines()
    processes = dict(line.strip().split(None, 1) for line in lines)
    assert processes["1"] == f"wshd: {container.id}"
    assert len(processes) <= 4, processes


def test_proc_and_dev(container):
    mounts = container.sh("cat /proc/self/mounts")
    assert "proc /proc proc" in mounts
    assert "devpts /dev/pts devpts" in mounts
    assert "tmpfs /dev/shm tmpfs" in mounts
    assert container.sh("echo data >/dev/shm/f && cat /dev/shm/f", user="vcap") == "data\n"
    assert container.sh("echo x >/dev/null; head -c 4 /dev/urandom | wc -c", user="vcap").strip() == "4"


def test_rlimits(container):
    assert container.sh("ulimit -n", env={"RLIMIT_NOFILE": "77"}).strip() == "77"
    assert container.sh("ulimit -Sn; ulimit -Hn", user="vcap",
                        env={"RLIMIT_NOFILE": "77 88"}).split() == ["77", "88"]
    assert container.sh("ulimit -n; ulimit -c").split() == ["1024", "0"]
    res = container.wsh("true", env={"RLIMIT_NOFILE": "many"})
    assert res.returncode == 255 and b"RLIMIT_NOFILE" in res.stderr


def test_exit_status(container):
    assert container.wsh("bash", "-c", "exit 42").returncode == 42
    assert container.wsh("bash", "-c", "kill -9 $$").returncode == 255
    assert container.wsh("true", user="nosuchuser").returncode == 255
    res = container.wsh("bash", "-c", "echo out; echo err >&2; exit 3", user="vcap")
    assert (res.returncode, res.stdout, res.stderr) == (3, b"out\n", b"err\n")


def test_stdin(container):
    data = os.urandom(2 * 1024 * 1024)
    res = container.wsh("sha256sum", input=data, user="vcap")
    assert res.returncode == 0
    assert res.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    res = container.wsh("cat", input=data)
    assert res.stdout == data


def test_lang(container):
    out = container.sh("echo $LANG; locale 2>&1 >/dev/null | wc -l", env={"LANG": "en_US.UTF-8"})
    assert out.split() == ["en_US.UTF-8", "0"]


def test_rsync_in_and_out(container, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(100000))
    os.symlink("a.txt", src / "link")
    rsh = " ".join([*container.wsh_argv("--rsh")[:-1], "--rsh"])
    subprocess.run(["rsync", "-e", rsh, "-r", "-p", "--links", f"{src}/", "vcap@container:/home/vcap/copied/"],
                   check=True, capture_output=True, timeout=60)
    assert container.sh("cat copied/a.txt; readlink copied/link; stat -c %U copied/sub/b.bin",
                        user="vcap").split() == ["alpha", "a.txt", "vcap"]
    out = tmp_path / "out"
    subprocess.run(["rsync", "-e", rsh, "-r", "-p", "--links", "vcap@container:/home/vcap/copied/", f"{out}/"],
                   check=True, capture_output=True, timeout=60)
    assert (out / "a.txt").read_text() == "alpha\n"
    assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert os.readlink(out / "link") == "a.txt"


def test_overlay_only_in_container(container):
    with open("/proc/self/mounts") as f:
        host = f.read()
    assert str(container.path) not in host
    assert f"upperdir={container.path}" in container.sh("cat /proc/self/mounts")


def test_network(container):
    assert f"inet {container.container_ip}/30" in container.sh("ip -o addr show")
    assert f"default via {container.host_ip}" in container.sh("ip route")
    if shutil.which("ping"):
        subprocess.run(["ping", "-c1", "-W1", container.container_ip], check=True, capture_output=True,
                       timeout=10)
    else:
        assert icmp_echo(container.container_ip)


@contextlib.contextmanager
def sleeping_job(container, script="sleep 1000"):
    """A job (through wsh) whose `sleep 1000` is running when this yields;
    killed afterwards if the test left it alive."""
    job = subprocess.Popen(container.wsh_argv("bash", "-c", script, user="vcap"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if "sleep 1000" in container.sh("ps -eo args="):
                break
            time.sleep(0.02)
        else:
            pytest.fail("the job did not start")
        yield job
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_stop_kills_jobs_but_not_wshd(container):
    wshd_pid = (container.path / "run" / "wshd.pid").read_text().strip()
    # A job that would leave a mark if it got TERM: -w 0 must KILL at once.
    script = "trap 'touch /tmp/got-term' TERM; sleep 1000 & wait"
    with sleeping_job(container, script) as job:
        container.script(container.path / "stop.sh", "-w", "0")
        assert job.wait(timeout=30) == 255
    assert "sleep 1000" not in container.sh("ps -eo args=")
    assert container.sh("test -e /tmp/got-term && echo termed || echo killed").strip() == "killed"
    assert os.path.exists(f"/proc/{wshd_pid}")
    assert container.sh("ps -eo pid=,args=").split("\n")[0].split(None, 1) == ["1", f"wshd: {container.id}"]


@pytest.mark.skipif(cgroups.v2(), reason="v1's fallback between hierarchies: v2 has one group per container")
def test_stop_reads_another_cgroup_when_cpu_has_no_procs(container, tmp_path):
    """stop.sh finds the processes in the first cgroup.procs it can read. A
    fake cgroup root (WARDEN_CGROUP_ROOT) whose cpu hierarchy lacks the
    container's group stands in for an unreadable cpu file."""
    fake = tmp_path / "cgroup"
    (fake / "cpu").mkdir(parents=True)
    env = dict(container.env, WARDEN_CGROUP_ROOT=str(fake))

    def stop():
        return subprocess.run([str(container.path / "stop.sh"), "-w", "0"], env=env, capture_output=True,
                              text=True, timeout=60)

    with sleeping_job(container) as job:
        # No group readable: nothing to stop.
        res = stop()
        assert res.returncode == 0, res.stderr
        assert job.poll() is None
        # cpu's file is missing, memory's is read.
        os.symlink(CGROUP_ROOT / "memory", fake / "memory")
        res = stop()
        assert res.returncode == 0, res.stderr
        assert job.wait(timeout=5) == 255
    assert container.sh("ps -eo pid=,args=").split("\n")[0].split(None, 1) == ["1", f"wshd: {container.id}"]


def test_destroy_removes_everything(container):
    container.script(ROOT_LINUX / "destroy.sh", container.path)
    assert not container.path.exists()
    assert leftovers(container.depot, container.id) == []
    # Idempotent.
    container.script(ROOT_LINUX / "destroy.sh", container.path)
