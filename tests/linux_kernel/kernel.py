"""Helpers for the tests that run real containers (root, rootfs, binaries)."""
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from tests import cgroups

REPO = Path(__file__).resolve().parents[2]
ROOT_LINUX = REPO / "root" / "linux"
SKELETON_BIN = ROOT_LINUX / "skeleton" / "bin"
ROOTFS = Path(os.environ.get("WARDEN_TEST_ROOTFS", "/var/lib/warden/rootfs"))
CGROUP_ROOT = Path("/sys/fs/cgroup")

NETWORK = "10.254.255.0/28"   # the tests use the first /30s of it
NETMASK = "255.255.255.252"
BASE32 = "0123456789abcdefghijklmnopqrstuv"


def skip_reason():
    """Why real-container tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (mounts, cgroups, namespaces, interfaces)"
    if not (ROOTFS / ".warden-rootfs-complete").exists():
        return f"no rootfs at {ROOTFS}: run root/linux/rootfs/setup.sh {ROOTFS}"
    for name in ("wshd", "wsh"):
        if not os.access(SKELETON_BIN / name, os.X_OK):
            return f"{SKELETON_BIN / name} missing: make -C src/wsh and copy wshd, wsh there"
    if (reason := cgroups.missing()) is not None:
        return reason
    busy = subprocess.run(["ip", "-o", "addr", "show", "to", NETWORK], capture_output=True, text=True)
    if busy.returncode != 0 or busy.stdout.strip():
        return f"{NETWORK} is already in use on this host"
    return None


def leftovers(depot, cid):
    """Everything of container cid still in the kernel, as a list of strings."""
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mountpoint = line.split()[1]
            if mountpoint.startswith(str(depot)):
                found.append("mount " + mountpoint)
    net = Path("/sys/class/net")
    found += ["interface " + p.name for p in net.glob(f"w-{cid}-*")]
    found += ["cgroup " + str(p) for p in cgroups.instance_groups(cid)]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        # A zombie is dead already; reaping it is up to the host's init.
        if cmdline.startswith(f"wshd: {cid}".encode()) and state != "Z":
            found.append(f"process {proc.name} ({cmdline!r})")
    return found


def new_id():
    return "tst" + "".join(random.choice(BASE32) for _ in range(8))


class Container:
    """A container dir in depot; slot n uses the n-th /30 of NETWORK."""

    def __init__(self, depot, slot=0, **env):
        self.id = new_id()
        self.depot = Path(depot)
        self.host_ip = f"10.254.255.{slot * 4 + 1}"
        self.container_ip = f"10.254.255.{slot * 4 + 2}"
        self.path = self.depot / self.id
        self.user_uid = 10000 + random.randrange(1000, 2000)
        self.socket = self.path / "run" / "wshd.sock"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "id": self.id,
            "network_host_ip": self.host_ip,
            "network_container_ip": self.container_ip,
            "network_netmask": NETMASK,
            "user_uid": str(self.user_uid),
            "rootfs_path": str(ROOTFS),
            "allow_nested_warden": "false",
            "container_iface_mtu": "1500",
            "dns_servers": "",
        }
        self.env.update(env)

    def create_and_start(self):
        self.script(ROOT_LINUX / "create.sh", self.path)
        self.script(self.path / "start.sh")

    def destroy(self, check=True):
        return self.script(ROOT_LINUX / "destroy.sh", self.path, check=check)

    def script(self, *cmd, check=True, timeout=60):
        res = subprocess.run([str(c) for c in cmd], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def wsh_argv(self, *args, user=None):
        argv = [str(self.path / "bin" / "wsh"), "--socket", str(self.socket)]
        if user:
            argv += ["--user", user]
        return argv + list(args)

    def wsh(self, *args, user=None, env=None, input=b"", timeout=30):
        full_env = {"PATH": "/usr/bin:/bin"}
        full_env.update(env or {})
        return subprocess.run(self.wsh_argv(*args, user=user), input=input, env=full_env,
                              capture_output=True, timeout=timeout)

    def sh(self, command, user=None, env=None):
        res = self.wsh("bash", "-c", command, user=user, env=env)
        assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
        return res.stdout.decode()


def started_container(request, networking=True):
    """A container made by create.sh and started by start.sh in a fresh depot,
    destroyed at the end of the requesting scope; the teardown fails the test
    if destroy.sh fails or anything of the container is left. Without
    networking the container gets no iptables chains (start.sh and destroy.sh
    run net.sh only when it is executable)."""
    depot = tempfile.mkdtemp(prefix="warden-test-depot-")
    c = Container(depot)

    def teardown():
        try:
            res = c.script(ROOT_LINUX / "destroy.sh", c.path, check=False)
            left = leftovers(c.depot, c.id)
        finally:
            shutil.rmtree(depot, ignore_errors=True)
        assert res.returncode == 0, f"destroy.sh failed: {res.stderr}"
        assert not left, f"left behind: {left}"

    request.addfinalizer(teardown)
    c.script(ROOT_LINUX / "create.sh", c.path)
    net = c.path / "net.sh"
    if not networking and net.exists():
        net.chmod(0o644)
    c.script(c.path / "start.sh")
    return c


def icmp_echo(addr, timeout=1.0):
    """One ICMP echo with a raw socket (for hosts without ping)."""
    def checksum(data):
        if len(data) % 2:
            data += b"\0"
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        total = (total >> 16) + (total & 0xFFFF)
        total += total >> 16
        return ~total & 0xFFFF

    ident = os.getpid() & 0xFFFF
    payload = b"warden-kernel-test"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(timeout)
        s.sendto(packet, (addr, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, (src, _) = s.recvfrom(2048)
            except TimeoutError:
                return False
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if src == addr and kind == 0 and rid == ident:
                return True
    return False
