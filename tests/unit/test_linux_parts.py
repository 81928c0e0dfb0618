"""The Linux backend's parts on their own: cgroup drivers, NetOut rules, disk
limits, bind mounts; and the records they share (typed requests, snapshots)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from warden.container.linux.cgroups import (
    V1,
    V1_UNLIMITED,
    V2,
    Layout,
    layout_of,
    parse_layout,
    unrecorded_layout,
)
from warden.container.linux.disk import disk_response, requested_blocks
from warden.container.linux.files import bind_mount_lines
from warden.container.linux.net import net_out_rule
from warden.container.resources import MalformedSnapshot, Resources, Snapshot
from warden.errors import WardenError
from warden.pool import Subnet
from warden.protocol import REQUESTS, catalogue, generate, parse_message, wire_fields
from warden.server.dispatch import ROUTES


def request(kind: str, **payload):
    return parse_message({"type": kind, "payload": payload})


# ---- cgroups -------------------------------------------------------------------------


def test_v1_driver_reads_stats_from_its_groups(tmp_path):
    memory = tmp_path / "memory" / "warden" / "instance-abc"
    cpuacct = tmp_path / "cpuacct" / "warden" / "instance-abc"
    memory.mkdir(parents=True)
    cpuacct.mkdir(parents=True)
    (memory / "memory.stat").write_text("cache 4096\nrss 8192\nnot_in_spec 1\nswap -1\n")
    (cpuacct / "cpuacct.usage").write_text("123456\n")
    (cpuacct / "cpuacct.stat").write_text("user 7\nsystem 3\n")
    driver = V1("abc", root=tmp_path)
    assert driver.memory_stat() == {"cache": 4096, "rss": 8192}
    assert driver.cpu_stat() == {"usage": 123456, "user": 7, "system": 3}
    assert driver.procs_file() == tmp_path / "cpu" / "warden" / "instance-abc" / "cgroup.procs"
    assert driver.oom_target() == memory


def test_v1_driver_without_groups_reports_nothing(tmp_path):
    driver = V1("gone", root=tmp_path)
    assert driver.memory_stat() == {} and driver.cpu_stat() == {}


# ---- net -------------------------------------------------------------------------------


def test_net_out_rule_forms():
    assert net_out_rule(request("NetOut", handle="h", network="10.0.0.0/8", port_range="80:90",
                                protocol="UDP", log=True)) == {
        "NETWORK": "10.0.0.0/8", "PORTS": "80:90", "PROTOCOL": "udp",
        "ICMP_TYPE": "", "ICMP_CODE": "", "LOG": "true"}
    icmp = net_out_rule(request("NetOut", handle="h", network="1.2.3.4", protocol="ICMP", icmp_type=8, icmp_code=-1))
    assert (icmp["PORTS"], icmp["ICMP_TYPE"], icmp["ICMP_CODE"]) == ("", "8", "")
    assert net_out_rule(request("NetOut", handle="h", port=53))["PORTS"] == "53"


# ---- disk ------------------------------------------------------------------------------


def test_requested_blocks_later_fields_win():
    current = {"block_soft": 1, "block_hard": 2, "inode_soft": 3, "inode_hard": 4}
    blocks = requested_blocks(request("LimitDisk", handle="h", byte_limit=1025, block_soft=9, inode=5), current)
    assert blocks == {"block_soft": 9, "block_hard": 2, "inode_soft": 3, "inode_hard": 5}
    assert requested_blocks(request("LimitDisk", handle="h"), current) == current
    # bytes round up to whole 1 KiB blocks, and blocks given too win over bytes
    assert requested_blocks(request("LimitDisk", handle="h", byte_hard=1), current)["block_hard"] == 1
    assert requested_blocks(request("LimitDisk", handle="h", byte=4096, block=7), current)["block_hard"] == 7


def test_disk_response_names_every_alias():
    response = disk_response({"block_soft": "10", "block_hard": "20", "inode_hard": "5"})
    assert response["byte_limit"] == 20 * 1024 and response["byte_soft"] == 10 * 1024
    assert response["inode"] == response["inode_limit"] == 5 and response["inode_soft"] == 0
    assert set(response) == set(catalogue().messages["LimitDisk"].response)


# ---- files -----------------------------------------------------------------------------


def test_bind_mount_lines_quote_and_reach_the_host_through_mnt(tmp_path):
    src = tmp_path / "a dir"
    src.mkdir()
    lines = bind_mount_lines([{"src_path": str(src), "dst_path": "/data/x y", "mode": "RO"}])
    assert f"mount --bind '/mnt{src}' '/data/x y'" in lines
    assert "mount -o remount,bind,ro '/data/x y'" in lines
    assert "[[ -d '/data/x y' ]] || { mkdir -p '/data/x y'; }" in lines


# ---- requests and snapshots --------------------------------------------------------------


def test_generated_requests_match_the_spec():
    assert generate.render(catalogue()) == generate.TARGET.read_text(), \
        "run python -m warden.protocol.generate"
    assert set(REQUESTS) == set(catalogue().request_types()) == set(ROUTES)


def test_typed_requests_carry_structs_and_wire_names():
    spawn = request("Spawn", handle="h", script="echo", rlimits={"as": 1, "nofile": 2})
    assert spawn.script == b"echo" and spawn.privileged is False
    assert wire_fields(spawn.rlimits) == {"as": 1, "nofile": 2}
    create = request("Create", bind_mounts=[{"src_path": "/a", "dst_path": "/b", "mode": "RW"}])
    assert create.bind_mounts[0].mode == "RW" and create.handle is None


def test_snapshot_round_trip():
    res = Resources("abc", "h", Subnet(ipaddress.IPv4Address("10.254.0.4")), 10001, [61001], [[61001, 8080]],
                    [{"NETWORK": "", "PORTS": "80"}], {"memory": 1 << 20}, [{"src_path": "/a", "dst_path": "/b",
                                                                             "mode": "RO"}], "/rootfs")
    snapshot = Snapshot("linux", "stopped", 30, ["out of memory"], res)
    assert Snapshot.from_dict(snapshot.to_dict(), "linux") == snapshot


@pytest.mark.parametrize("raw,message", [
    ([], "malformed snapshot"),
    ({"state": "active"}, "malformed snapshot"),
    ({"state": "born", "resources": {}}, "snapshot state 'born'"),
    ({"state": "active", "backend": "insecure", "resources": {}}, "made by the insecure backend"),
    ({"state": "active", "resources": {"handle": "h"}}, "malformed snapshot resources"),
    ({"state": "active", "resources": {"container_id": "a", "handle": "h", "uid": "x"}},
     "malformed snapshot resources"),
])
def test_snapshot_refuses_what_cannot_come_back(raw, message):
    with pytest.raises(MalformedSnapshot, match=message):
        Snapshot.from_dict(raw, "linux")


def test_v2_driver_reports_v1_names_and_units(tmp_path):
    group = tmp_path / "instance-abc"
    group.mkdir()
    (group / "memory.stat").write_text("anon 8192\nfile 4096\nfile_mapped 1024\npgfault 10\npgmajfault 1\n"
                                       "inactive_file 4096\nactive_anon 8192\nslab 77\n")
    (group / "memory.swap.current").write_text("0\n")
    (group / "memory.max").write_text("1048576\n")
    (group / "memory.swap.max").write_text("0\n")
    (group / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 0\n")
    driver = V2("abc", tmp_path)
    stat = driver.memory_stat()
    assert stat["cache"] == stat["total_cache"] == 4096 and stat["rss"] == stat["total_rss"] == 8192
    assert stat["mapped_file"] == 1024 and stat["swap"] == 0 and stat["pgfault"] == 10
    assert stat["hierarchical_memory_limit"] == stat["hierarchical_memsw_limit"] == 1048576
    assert set(stat) <= set(catalogue().structs["MemoryStat"])
    assert driver.cpu_stat() == {"usage": 2_500_000_000, "user": 200, "system": 50}
    assert driver.procs_file() == group / "cgroup.procs" and driver.oom_target() == group
    (group / "memory.max").write_text("max\n")
    (group / "memory.swap.max").write_text("max\n")
    assert driver.memory_stat()["hierarchical_memory_limit"] == V1_UNLIMITED
    assert driver.memory_stat()["hierarchical_memsw_limit"] == V1_UNLIMITED


def test_layout_record_picks_the_driver(tmp_path):
    assert isinstance(parse_layout("").driver("x"), V1)
    assert isinstance(parse_layout("layout=hybrid\n").driver("x"), V1)
    v2 = parse_layout(f"layout=v2\nbase={tmp_path}/warden\n")
    assert v2 == Layout("v2", tmp_path / "warden")
    driver = v2.driver("x")
    assert isinstance(driver, V2) and driver.procs_file() == tmp_path / "warden" / "instance-x" / "cgroup.procs"
    assert layout_of(tmp_path / "nowhere") == unrecorded_layout()


def test_no_record_is_v1_or_on_a_cgroup2_root_the_undelegated_base(tmp_path):
    assert unrecorded_layout(tmp_path) == Layout()
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    assert unrecorded_layout(tmp_path) == Layout("v2", tmp_path / "warden")


# ---- client paths ------------------------------------------------------------------------


def test_resolve_in_root_keeps_symlinks_inside(tmp_path):
    from warden.container.paths import resolve_in_root

    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "abs").symlink_to("/real")
    (root / "rel").symlink_to("real")
    (root / "out").symlink_to(tmp_path)
    (root / "up").symlink_to("../../..")
    (root / "loop").symlink_to("loop")
    assert resolve_in_root(root, "/abs/f") == str(root / "real" / "f")
    assert resolve_in_root(root, "rel/") == str(root / "real") + "/"
    assert resolve_in_root(root, "/out/secret") == str(root / tmp_path.relative_to("/") / "secret")
    assert resolve_in_root(root, "/up/etc/passwd") == str(root / "etc" / "passwd")
    assert resolve_in_root(root, "/") == str(root) + "/"
    with pytest.raises(WardenError, match="too many levels"):
        resolve_in_root(root, "/loop/x")


@pytest.mark.parametrize("value", ["--rsh=sh -c id", "-e", "relative", "localhost:/etc", "a\0b", ""])
def test_host_paths_refused(value):
    from warden.container.paths import host_path

    with pytest.raises(WardenError, match=r"^invalid request: src_path must be an absolute host path"):
        host_path("src_path", value)


def test_container_paths_cannot_read_as_options():
    from warden.container.paths import container_path

    assert container_path("dst_path", "--rsh=x") == "./--rsh=x"
    assert container_path("dst_path", "/abs") == "/abs"


def test_linux_copies_put_every_client_value_after_the_end_of_options(fp, tmp_path):
    from types import SimpleNamespace

    from warden.container.linux.files import Files

    files = Files(SimpleNamespace(path=tmp_path))  # type: ignore[arg-type]
    fp.register(["rsync", fp.any()], occurrences=2)
    fp.register(["chown", fp.any()])
    asyncio.run(files.copy_in(request("CopyIn", handle="h", src_path="/host/src", dst_path="-x")))
    asyncio.run(files.copy_out(request("CopyOut", handle="h", src_path="in", dst_path="/host/dst", owner="vcap:vcap")))
    copy_in, copy_out, chown = [list(call) for call in fp.calls]
    assert copy_in[copy_in.index("--") + 1:] == ["/host/src", "vcap@container:./-x"]
    assert copy_out[copy_out.index("--") + 1:] == ["vcap@container:./in", "/host/dst"]
    assert chown == ["chown", "-R", "-h", "--", "vcap:vcap", "/host/dst"]
    with pytest.raises(WardenError, match=r"^invalid request: owner"):
        asyncio.run(files.copy_out(request("CopyOut", handle="h", src_path="/a", dst_path="/b",
                                           owner="--reference=/etc/shadow")))
