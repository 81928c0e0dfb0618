"""Restart matrix on the Linux backend: drain and crash, nothing lost or leaked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import cgroups
from tests.support import wait_for

from ..integration.test_restart import EXPECTED_ERR, EXPECTED_OUT, PRINTER


def _chain_rules(cid: str) -> str:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return "\n".join(line for line in out.splitlines() if f"warden-i-{cid}" in line)


@pytest.mark.parametrize("how", ["drain", "crash"])
def test_linux_restart_keeps_containers_jobs_rules_and_limits(make_linux_server, how):
    server = make_linux_server()
    with server.connect() as wire:
        active = wire.call("Create", handle="active")["handle"]
        stopped = wire.call("Create", handle="stopped")["handle"]
        wire.call("Stop", handle=stopped)
        forward = wire.call("NetIn", handle=active, container_port=8080)
        wire.call("NetOut", handle=active, network="10.254.198.0/24", port=443)
        memory = wire.call("LimitMemory", handle=active, limit_in_bytes=256 * 1024 * 1024)["limit_in_bytes"]
        shares = wire.call("LimitCpu", handle=active, limit_in_shares=512)["limit_in_shares"]
        wire.call("LimitBandwidth", handle=active, rate=2000000, burst=20000)
        wire.call("LimitDisk", handle=active, byte_limit=300 * 1024 * 1024)
        finished = wire.call("Spawn", handle=active, script="echo done; exit 3")["job_id"]
        wait_for(lambda: finished not in wire.call("Info", handle=active)["job_ids"], what="job end")
        printing = wire.call("Spawn", handle=active, script=PRINTER)["job_id"]
        before = {h: wire.call("Info", handle=h) for h in (active, stopped)}
    cid = before[active]["container_path"].rsplit("/", 1)[1]
    rules_before = _chain_rules(cid)
    # Job output is kept on disk, linked from the job directories; files there
    # that no job refers to (a crash between creating and linking) go at start.
    outputs = Path(before[active]["container_path"]) / "job-output"
    assert sorted(p.name for p in outputs.iterdir()) == sorted([str(finished), str(printing)])
    (outputs / "424242").write_bytes(b"orphan")
    assert f"--dport {forward['host_port']}" in rules_before

    if how == "drain":
        assert server.drain() == 0
    else:
        server.crash()
    server.restart()

    with server.connect() as wire:
        assert sorted(wire.call("List")["handles"]) == sorted([active, stopped])
        for handle, info in before.items():
            after = wire.call("Info", handle=handle)
            for key in ("state", "host_ip", "container_ip", "container_path", "bandwidth_stat"):
                assert after[key] == info[key], key
        assert _chain_rules(cid) == rules_before
        assert wire.call("LimitMemory", handle=active)["limit_in_bytes"] == memory
        assert wire.call("LimitCpu", handle=active)["limit_in_shares"] == shares
        chunks, end = wire.stream(active, printing)
        assert end["exit_status"] == 9
        assert b"".join(d for n, d in chunks if n == "stdout") == EXPECTED_OUT
        assert b"".join(d for n, d in chunks if n == "stderr") == EXPECTED_ERR
        done = wire.call("Link", handle=active, job_id=finished)
        assert (done["exit_status"], done["stdout"]) == (3, b"done\n")
        wait_for(lambda: not any(outputs.iterdir()), what="consumed and orphaned job output removed")
        assert wire.call("Run", handle=active, script="echo alive")["stdout"] == b"alive\n"
        assert wire.call("NetIn", handle=active)["host_port"] == forward["host_port"] + 1
        assert wire.call("LimitDisk", handle=active)["byte_limit"] == 300 * 1024 * 1024
        # The OOM watcher is armed again: going over the limit stops the container.
        wire.call("Run", handle=active, script="perl -e '$x = \"x\" x (512 * 1024 * 1024)'")
        wait_for(lambda: wire.call("Info", handle=active)["state"] == "stopped", what="OOM stop")
        assert "out of memory" in wire.call("Info", handle=active)["events"]


def test_a_container_whose_init_died_is_destroyed_at_start(make_linux_server):
    server = make_linux_server()
    with server.connect() as wire:
        keep = wire.call("Create", handle="keep")["handle"]
        dead = wire.call("Create", handle="dead")["handle"]
        path = wire.call("Info", handle=dead)["container_path"]
    server.drain()
    pid = int(Path(f"{path}/run/wshd.pid").read_text())
    subprocess.run(["kill", "-9", str(pid)], check=True)
    server.restart()
    with server.connect() as wire:
        assert wire.call("List")["handles"] == [keep]
    cid = path.rsplit("/", 1)[1]
    import os

    assert not os.path.exists(path)
    assert not list(Path("/sys/class/net").glob(f"w-{cid}-*"))
    assert not cgroups.instance_groups(cid)
    assert _chain_rules(cid) == ""


def test_half_created_and_half_destroyed_containers_are_cleaned_at_start(make_linux_server):
    import os
    from pathlib import Path

    server = make_linux_server()
    with server.connect() as wire:
        keep = wire.call("Create", handle="keep")["handle"]
        victim = wire.call("Create", handle="victim")["handle"]
        victim_path = wire.call("Info", handle=victim)["container_path"]
    server.drain()
    # A crash in the middle of Destroy: the snapshot is gone, the container runs on.
    os.unlink(f"{victim_path}/snapshot.json")
    # A crash in the middle of Create: the directory is made, nothing started.
    half = server.depot / "tsthalf0001"
    env = dict(os.environ, id="tsthalf0001", network_host_ip="10.254.197.1", network_container_ip="10.254.197.2",
               network_netmask="255.255.255.252", user_uid="10099",
               rootfs_path=server.config["server"]["container_rootfs_path"])
    subprocess.run([str(Path("root/linux/create.sh").resolve()), str(half)], env=env, check=True,
                   capture_output=True)
    server.restart()
    with server.connect() as wire:
        assert wire.call("List")["handles"] == [keep]
    assert not os.path.exists(victim_path) and not half.exists()
    for cid in (victim_path.rsplit("/", 1)[1], "tsthalf0001"):
        assert not list(Path("/sys/class/net").glob(f"w-{cid}-*"))
        assert not cgroups.instance_groups(cid)
