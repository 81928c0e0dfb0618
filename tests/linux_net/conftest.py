"""Fixtures for the networking scripts: fake containers in a private "host".

Everything happens inside network namespaces these tests create (names
start with ``wtn-``), never in the machine's own: iptables rules, ip_forward
and interfaces are per namespace, so the scripts run for real on this
kernel without touching the host's firewall or another test's containers.

    wtn-h<r>    the "host": runs root/linux/net.sh and every container's net.sh,
                holds w-<id>-0 (host end, host_ip/30) and the ifb w-<id>-2
    wtn-<id>    one per fake container: w-<id>-1 (container_ip/30), default
                route via host_ip (what wshd's hooks would set up)
    wtn-o<r>    an "outside" client: wtn-out1 10.254.251.2/30, linked to the
                host's wtn-out0 10.254.251.1/30, and no route to the pool

Traffic goes only to addresses inside these namespaces. Each lab deletes all
of its namespaces (and with them every rule, interface and process) when it
is done, also after a failure; a session check confirms that nothing of
ours is left on the machine.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT_LINUX = REPO / "root" / "linux"
SKELETON = ROOT_LINUX / "skeleton"
GLOBAL_NET = ROOT_LINUX / "net.sh"
NETSERVER = Path(__file__).with_name("netserver.py")

POOL = "10.254.250.0/24"
OUTSIDE_HOST_IP = "10.254.251.1"
OUTSIDE_CLIENT_IP = "10.254.251.2"
NS_PREFIX = "wtn-"
BASE32 = "0123456789abcdefghijklmnopqrstuv"

# Ports the fake containers' servers listen on.
TCP_PORTS = [7000, 7001, 7002, 7003, 7004]
UDP_PORT = 7000
SINK_PORT = 7900
SOURCE_PORT = 7901
SOURCE_BYTES = 150_000

TOOLS = ["ip", "iptables", "iptables-save", "iptables-restore", "tc", "nc", "ping"]


def _skip_reason():
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, tc)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iptables iproute2 netcat-openbsd iputils-ping)"
    probe = subprocess.run(["iptables-save", "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"iptables-save does not work: {probe.stderr.strip()}"
    return None


SKIP_REASON = _skip_reason()


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.root)
            if SKIP_REASON is not None:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def run(argv, *, check=True, env=None, timeout=30, input=None):
    """Run argv; raise with its output when check and it fails."""
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update({k: str(v) for k, v in env.items()})
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=full_env,
                         timeout=timeout, input=input)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {res.returncode}\n"
                             f"stdout: {res.stdout}\nstderr: {res.stderr}")
    return res


def new_id() -> str:
    return "tn" + "".join(random.choice(BASE32) for _ in range(9))


def our_netns() -> list[str]:
    res = run(["ip", "netns", "list"])
    return [line.split()[0] for line in res.stdout.splitlines() if line.startswith(NS_PREFIX)]


class Netns:
    def __init__(self, name: str):
        self.name = name
        self.procs: list[subprocess.Popen] = []

    def exec(self, *argv, **kw):
        return run(["ip", "netns", "exec", self.name, *argv], **kw)

    def sh(self, script: str, **kw):
        return self.exec("bash", "-c", script, **kw)

    def ip_batch(self, commands: str):
        run(["ip", "-n", self.name, "-batch", "-"], input=commands)

    def serve(self, *args):
        """Start netserver.py in this namespace; returns once it listens."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.name, sys.executable, str(NETSERVER), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            raise AssertionError(f"netserver in {self.name} failed: {line}{proc.stderr.read()}")
        return proc

    # --- probes (short timeouts) ---------------------------------------------
    def tcp(self, ip: str, port: int) -> str:
        """'ok', 'refused' (RST or ICMP unreachable) or 'timeout' (dropped)."""
        res = self.exec("nc", "-z", "-v", "-n", "-w", "2", ip, port, check=False)
        if res.returncode == 0:
            return "ok"
        if "refused" in res.stderr or "unreachable" in res.stderr:
            return "refused"
        return "timeout"

    def udp(self, ip: str, port: int) -> bool:
        """True if a datagram to ip:port is echoed back."""
        res = self.exec("nc", "-u", "-n", "-w", "1", ip, port, input="hello\n", check=False)
        return "hello" in res.stdout

    def ping(self, ip: str) -> bool:
        return self.exec("ping", "-n", "-c", "1", "-W", "1", ip, check=False).returncode == 0

    def kill_procs(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()


class FakeContainer:
    """A container as the scripts see it, without wshd: interfaces, netns, dir."""

    def __init__(self, lab: Lab, index: int):
        self.lab = lab
        self.id = new_id()
        base = index * 4
        self.host_ip = f"10.254.250.{base + 1}"
        self.container_ip = f"10.254.250.{base + 2}"
        self.netns = Netns(NS_PREFIX + self.id)
        self.path = Path(lab.tmpdir) / self.id
        self.host_iface = f"w-{self.id}-0"
        self.ifb_iface = f"w-{self.id}-2"
        self.chain = f"warden-i-{self.id}"

    def build(self):
        self.make_dir()
        host = self.lab.host
        run(["ip", "netns", "add", self.netns.name])
        self.lab.namespaces.append(self.netns)
        run(["ip", "-n", host.name, "link", "add", self.host_iface, "type", "veth",
             "peer", "name", f"w-{self.id}-1", "netns", self.netns.name])
        host.ip_batch(f"addr add {self.host_ip}/30 dev {self.host_iface}\n"
                      f"link set {self.host_iface} up\n"
                      f"link add {self.ifb_iface} type ifb\n"
                      f"link set {self.ifb_iface} up\n")
        self.netns.ip_batch("link set lo up\n"
                            f"addr add {self.container_ip}/30 dev w-{self.id}-1\n"
                            f"link set w-{self.id}-1 up\n"
                            f"route add default via {self.host_ip}\n")
        return self

    def make_dir(self):
        """The container dir: etc/config, lib/ and the network scripts."""
        (self.path / "lib").mkdir(parents=True)
        (self.path / "etc").mkdir()
        (self.path / "run").mkdir()
        for name in ("net.sh", "net_rate.sh"):
            shutil.copy2(SKELETON / name, self.path / name)
        for name in ("common.sh", "ifaces.sh", "net-common.sh"):
            shutil.copy2(SKELETON / "lib" / name, self.path / "lib" / name)
        (self.path / "etc" / "config").write_text(
            f"id={self.id}\nnetwork_host_ip={self.host_ip}\n"
            f"network_container_ip={self.container_ip}\nnetwork_netmask=255.255.255.252\n"
            f"container_iface_mtu=1500\n")
        return self

    def net(self, verb: str, check=True, **env):
        """Run the container's net.sh in the host namespace."""
        return self.lab.host.exec(self.path / "net.sh", verb, env=env, check=check)

    def out(self, check=True, **env):
        full = {"NETWORK": "", "PORTS": "", "PROTOCOL": "tcp", "ICMP_TYPE": "", "ICMP_CODE": "",
                "LOG": "false"}
        full.update(env)
        return self.net("out", check=check, **full)

    def rate(self, rate, burst, check=True):
        return self.lab.host.exec(self.path / "net_rate.sh", env={"RATE": rate, "BURST": burst},
                                  check=check)

    def serve(self):
        return self.netns.serve("--tcp", ",".join(map(str, TCP_PORTS)), "--udp", str(UDP_PORT),
                                "--sink", str(SINK_PORT), "--source", f"{SOURCE_PORT}:{SOURCE_BYTES}")


class Lab:
    """A private host namespace with fake containers and an outside client."""

    def __init__(self, forward_policy: str = "ACCEPT"):
        tag = "".join(random.choice("0123456789abcdef") for _ in range(6))
        self.host = Netns(f"{NS_PREFIX}h{tag}")
        self.outside = Netns(f"{NS_PREFIX}o{tag}")
        self.namespaces: list[Netns] = []
        self.containers: list[FakeContainer] = []
        self.tmpdir = tempfile.mkdtemp(prefix="warden-linux-net-")
        self.forward_policy = forward_policy

    def build(self, n_containers: int = 0):
        run(["ip", "netns", "add", self.host.name])
        self.namespaces.append(self.host)
        self.host.ip_batch("link set lo up\n")
        if self.forward_policy != "ACCEPT":
            self.host.exec("iptables", "-w", "-P", "FORWARD", self.forward_policy)
        run(["ip", "netns", "add", self.outside.name])
        self.namespaces.append(self.outside)
        run(["ip", "-n", self.host.name, "link", "add", "wtn-out0", "type", "veth",
             "peer", "name", "wtn-out1", "netns", self.outside.name])
        self.host.ip_batch(f"addr add {OUTSIDE_HOST_IP}/30 dev wtn-out0\nlink set wtn-out0 up\n")
        self.outside.ip_batch(f"link set lo up\naddr add {OUTSIDE_CLIENT_IP}/30 dev wtn-out1\n"
                              "link set wtn-out1 up\n")
        for _ in range(n_containers):
            self.add_container()
        return self

    def add_container(self) -> FakeContainer:
        c = FakeContainer(self, len(self.containers)).build()
        self.containers.append(c)
        return c

    def global_net(self, verb: str = "setup", *, pool=POOL, allow_networks="", allow_host_access="false",
                   check=True):
        # pool=None: no POOL_NETWORK, i.e. `teardown` removes every pool's rules.
        env = {"ALLOW_NETWORKS": allow_networks, "ALLOW_HOST_ACCESS": allow_host_access}
        if pool is not None:
            env["POOL_NETWORK"] = pool
        return self.host.exec(GLOBAL_NET, verb, env=env, check=check)

    def iptables_save(self) -> str:
        """The host namespace's ruleset without the timestamp comments."""
        out = self.host.exec("iptables-save").stdout
        return "\n".join(line for line in out.splitlines() if not line.startswith("#"))

    def warden_lines(self) -> list[str]:
        return [line for line in self.iptables_save().splitlines() if "warden" in line]

    def cleanup(self):
        for ns in self.namespaces:
            ns.kill_procs()
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns.name], check=False)
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        left = [name for name in our_netns() if name in {ns.name for ns in self.namespaces}]
        assert not left, f"network namespaces left behind: {left}"


@pytest.fixture
def make_lab():
    """Factory of labs; each is removed at the end of the test, pass or fail."""
    labs: list[Lab] = []

    def make(n_containers: int = 0, forward_policy: str = "ACCEPT") -> Lab:
        lab = Lab(forward_policy)
        labs.append(lab)
        return lab.build(n_containers)

    yield make
    for lab in labs:
        lab.cleanup()


def _host_state():
    warden = [line for line in run(["iptables-save"]).stdout.splitlines() if "warden" in line]
    ifaces = sorted(p.name for p in Path("/sys/class/net").iterdir())
    return warden, ifaces


@pytest.fixture(scope="session", autouse=True)
def machine_left_clean():
    """Check that the machine's own namespace got nothing of ours."""
    if SKIP_REASON is not None:
        yield
        return
    before_rules, before_ifaces = _host_state()
    yield
    # Namespace deletion is asynchronous; interfaces go with it.
    deadline = time.monotonic() + 10
    while True:
        after_rules, after_ifaces = _host_state()
        new_ifaces = [i for i in after_ifaces if i not in before_ifaces and
                      (i.startswith("w-tn") or i.startswith(NS_PREFIX))]
        ns_left = our_netns()
        if (not new_ifaces and not ns_left) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    ours = [line for line in after_rules if line not in before_rules and
            ("10.254.250." in line or "10.254.251." in line or "-tn" in line)]
    assert not ns_left, f"test namespaces left: {ns_left}"
    assert not new_ifaces, f"test interfaces left in the host namespace: {new_ifaces}"
    assert not ours, f"rules of these tests in the host namespace: {ours}"
    # Another suite may change the host's rules meanwhile; ours never go there.
    if len(after_rules) != len(before_rules):
        print(f"note: host warden rules {len(before_rules)} -> {len(after_rules)} (not ours)")
