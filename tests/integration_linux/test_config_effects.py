"""Config that reaches the container: MTU, DNS servers; and clear after a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import cgroups

from ..integration.server import ROOT


def test_mtu_and_dns_servers_reach_the_container(make_linux_server):
    server = make_linux_server(network={"mtu": 1454, "dns_servers": ["10.254.196.53", "10.254.196.54"]})
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        cid = wire.call("Info", handle=handle)["container_path"].rsplit("/", 1)[1]
        link = wire.call("Run", handle=handle, script=f"ip -o link show w-{cid}-1")["stdout"]
        assert b" mtu 1454 " in link
        assert Path(f"/sys/class/net/w-{cid}-0/mtu").read_text() == "1454\n"
        resolv = wire.call("Run", handle=handle, script="cat /etc/resolv.conf")["stdout"].decode()
        assert [line for line in resolv.splitlines() if line.startswith("nameserver")] == [
            "nameserver 10.254.196.53", "nameserver 10.254.196.54"]


def test_shm_pages_count_against_the_memory_limit(make_linux_server):
    server = make_linux_server()
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        wire.call("LimitMemory", handle=handle, limit_in_bytes=32 * 1024 * 1024)
        reply = wire.call("Run", handle=handle, script="dd if=/dev/zero of=/dev/shm/fill bs=1M count=64")
        assert reply["exit_status"] != 0
        info = wire.call("Info", handle=handle)
        assert "out of memory" in info["events"]


def test_clear_after_a_crash_removes_everything(make_linux_server):
    server = make_linux_server()
    with server.connect() as wire:
        handles = [wire.call("Create")["handle"] for _ in range(2)]
        wire.call("NetIn", handle=handles[0])
        wire.call("LimitDisk", handle=handles[1], byte_limit=50 * 1024 * 1024)
        wire.call("Spawn", handle=handles[1], script="sleep 1000")
        paths = [wire.call("Info", handle=h)["container_path"] for h in handles]
    server.crash()
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "warden.clear", "--config", str(server.config_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    pool = server.config["network"]["pool_network"].rsplit(".", 1)[0]
    for path in paths:
        cid = path.rsplit("/", 1)[1]
        assert not os.path.exists(path)
        assert not list(Path("/sys/class/net").glob(f"w-{cid}-*"))
        assert not cgroups.instance_groups(cid)
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert pool not in rules
    assert str(server.depot) not in Path("/proc/self/mounts").read_text()
