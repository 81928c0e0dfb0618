"""root/linux/skeleton/lib/cgroup.sh and the limit scripts on both layouts.

Most tests run the scripts against a fake cgroup tree (plain files in a temp
dir, WARDEN_CGROUP_ROOT / the record's base pointing there), so they need no
root and run on any host. The last ones use the real cgroup2 mount of a hybrid
host (/sys/fs/cgroup/unified, which has no controllers) for what only the
kernel can show: moving a process, the devices program, cgroup.kill, removal.
They make only groups named warden-scratch-*, and remove them.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKELETON = REPO / "root" / "linux" / "skeleton"
LIB = SKELETON / "lib"
V1_UNLIMITED = "9223372036854771712"
CID = "abc123def45"


def bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=30)


def container(tmp_path: Path, layout: str | None, base: Path | None = None) -> Path:
    """A depot with a layout record (None: no record) and one container dir."""
    depot = tmp_path / "depot"
    depot.mkdir()
    if layout is not None:
        text = f"layout={layout}\n" + (f"base={base}\n" if base else "")
        (depot / ".cgroup-layout").write_text(text)
    target = depot / CID
    shutil.copytree(SKELETON, target, symlinks=True, ignore=shutil.ignore_patterns("bin"))
    (target / "etc").mkdir(exist_ok=True)
    (target / "etc" / "config").write_text(f"id={CID}\n")
    return target


def v2_group(base: Path, **files: str) -> Path:
    group = base / f"instance-{CID}"
    group.mkdir(parents=True)
    for name, text in files.items():
        (group / name.replace("_", ".")).write_text(text + "\n")
    return group


def lib(script: str) -> str:
    return f"set -euo pipefail; source lib/common.sh; source lib/cgroup.sh; {script}"


# ---- the record -----------------------------------------------------------------------


def test_no_record_is_v1_and_paths_are_v1s(tmp_path):
    target = container(tmp_path, None)
    out = bash(lib('cgroup_dir memory; echo "$cgroup_layout $REPLY"'), target, WARDEN_CGROUP_ROOT="/cg")
    assert out.stdout.split() == ["v1", f"/cg/memory/warden/instance-{CID}"]


def test_hybrid_record_uses_the_v1_paths(tmp_path):
    target = container(tmp_path, "hybrid")
    out = bash(lib('cgroup_dir cpu; echo "$cgroup_layout $REPLY"'), target, WARDEN_CGROUP_ROOT="/cg")
    assert out.stdout.split() == ["hybrid", f"/cg/cpu/warden/instance-{CID}"]


def test_v2_record_gives_one_group_for_every_subsystem(tmp_path):
    base = tmp_path / "cg" / "system.slice" / "warden.service" / "warden"
    target = container(tmp_path, "v2", base)
    out = bash(lib("cgroup_dir memory; a=$REPLY; cgroup_dir cpu; b=$REPLY; cgroup_dir x other; "
                   'echo "$cgroup_layout $a $b $REPLY"'), target)
    assert out.stdout.split() == ["v2", f"{base}/instance-{CID}", f"{base}/instance-{CID}",
                                  f"{base}/instance-other"]


def test_root_scripts_load_the_record_of_the_depot_they_are_given(tmp_path):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    # From /, as root setup.sh and clear.sh run: / is no container dir.
    out = bash(f"set -eu; cd /; source {LIB}/common.sh; source {LIB}/cgroup.sh; a=$cgroup_layout; "
               f'cgroup_load_layout {target.parent}; echo "$a $cgroup_layout $cgroup_base"', LIB, id=CID)
    assert out.stdout.split() == ["v1", "v2", str(base)]


# ---- finding groups and processes -------------------------------------------------------


def test_v2_ids_processes_and_nested_groups(tmp_path):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    group = v2_group(base, cgroup_procs="11\n12", cgroup_events="populated 1\nfrozen 0")
    (group / "nested" / "deeper").mkdir(parents=True)
    (group / "nested" / "cgroup.procs").write_text("13\n")
    (group / "nested" / "deeper" / "cgroup.procs").write_text("14\n")
    (base / "instance-gone").mkdir()
    (base / "instance-gone" / "cgroup.events").write_text("populated 0\n")
    (base.parent / "server").mkdir()
    out = bash(lib('cgroup_read_procs --first; echo "${container_pid_list[*]}"; '
                   'cgroup_read_procs; echo "${container_pid_list[*]}"; '
                   'cgroup_instance_ids; echo "${cgroup_ids[*]}"; '
                   f'cgroup_has_processes {CID} && echo busy; cgroup_has_processes gone || echo empty; '
                   'cgroup_has_processes nothere || echo none'), target)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "11 12"
    assert sorted(lines[1].split()) == ["11", "12", "13", "14"]
    assert sorted(lines[2].split()) == [CID, "gone"]
    assert lines[3:] == ["busy", "empty", "none"]


def test_v2_check_ready_names_the_missing_controller(tmp_path):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    out = bash(lib("cgroup_check_ready || echo \"$cgroup_error\""), target)
    assert f"no cgroup v2 group {base}" in out.stdout
    base.mkdir(parents=True)
    (base / "cgroup.subtree_control").write_text("cpu memory io\n")
    out = bash(lib("cgroup_check_ready || echo \"$cgroup_error\""), target)
    assert f"the pids controller is not enabled in {base}/cgroup.subtree_control" in out.stdout
    (base / "cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    out = bash(lib("cgroup_check_ready && echo ready"), target)
    assert out.stdout.strip() == "ready"


def test_v2_enable_writes_only_what_is_missing_and_names_the_file(tmp_path):
    top = tmp_path / "top"
    top.mkdir()
    (top / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (top / "cgroup.subtree_control").write_text("memory pids\n")
    target = container(tmp_path, None)
    # A plain file keeps only the last write: the last controller missing.
    out = bash(lib(f"cgroup_v2_enable {top}; cat {top}/cgroup.subtree_control"), target)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "+cpuset"
    (top / "cgroup.controllers").write_text("cpuset io memory pids\n")
    (top / "cgroup.subtree_control").write_text("\n")
    out = bash(lib(f'cgroup_v2_enable {top} || echo "$cgroup_error"'), target)
    assert out.stdout.strip() == (f"the cpu controller is not available in {top} "
                                  "(its cgroup.controllers has: cpuset io memory pids)")


# ---- limit_cpu.sh -----------------------------------------------------------------------


@pytest.mark.parametrize(("shares", "weight", "answer"), [
    ("1024", "39", "1024"), ("2", "1", "2"), ("1", "1", "2"), ("0", "1", "2"),
    ("262144", "10000", "262144"), ("99999999999999999999", "10000", "262144"), ("512", "20", "512"),
])
def test_v2_cpu_shares_become_runcs_weight_and_read_back_as_set(tmp_path, shares, weight, answer):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    group = v2_group(base, cpu_weight="100")
    out = bash("./limit_cpu.sh", target)
    assert (out.returncode, out.stdout) == (0, "1024\n")  # never set: v1's default
    out = bash("./limit_cpu.sh", target, LIMIT_IN_SHARES=shares)
    assert (out.returncode, out.stdout, out.stderr) == (0, answer + "\n", "")
    assert (group / "cpu.weight").read_text() == weight + "\n"
    assert bash("./limit_cpu.sh", target).stdout == answer + "\n"


def test_cpu_on_v2_without_a_group_fails_as_on_v1(tmp_path):
    target = container(tmp_path, "v2", tmp_path / "cg" / "warden")
    out = bash("./limit_cpu.sh", target, LIMIT_IN_SHARES="10")
    assert out.returncode == 1
    assert out.stderr.startswith("Failed setting cpu shares: no cpu cgroup ")


def test_v1_cpu_is_unchanged(tmp_path):
    target = container(tmp_path, None)
    group = tmp_path / "cg" / "cpu" / "warden" / f"instance-{CID}"
    group.mkdir(parents=True)
    (group / "cpu.shares").write_text("1024\n")
    out = bash("./limit_cpu.sh", target, LIMIT_IN_SHARES="77", WARDEN_CGROUP_ROOT=str(tmp_path / "cg"))
    assert out.stdout == "77\n"


# ---- limit_memory.sh ----------------------------------------------------------------------


def test_v2_memory_limit_sets_max_and_no_swap(tmp_path):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    group = v2_group(base, memory_max="max", memory_swap_max="max", memory_current="4096")
    assert bash("./limit_memory.sh", target).stdout == V1_UNLIMITED + "\n"
    out = bash("./limit_memory.sh", target, LIMIT_IN_BYTES="0104857600")
    assert (out.returncode, out.stdout, out.stderr) == (0, "104857600\n", "")
    assert (group / "memory.max").read_text() == "104857600\n"
    assert (group / "memory.swap.max").read_text() == "0\n"
    # Beyond what the kernel counts: no limit, as on v1.
    out = bash("./limit_memory.sh", target, LIMIT_IN_BYTES="99999999999999999999")
    assert out.stdout == V1_UNLIMITED + "\n"
    assert (group / "memory.max").read_text() == "max\n"


def test_v2_memory_limit_below_usage_that_cannot_be_reclaimed_changes_nothing(tmp_path):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    group = v2_group(base, memory_max="209715200", memory_swap_max="max", memory_current="104857600")
    out = bash("./limit_memory.sh", target, LIMIT_IN_BYTES="1048576")  # no memory.reclaim here
    assert out.returncode == 1
    assert out.stderr.startswith("Failed setting memory limit: Device or resource busy")
    assert (group / "memory.max").read_text() == "209715200\n"
    assert (group / "memory.swap.max").read_text() == "max\n"


def test_v2_memory_limit_that_fails_puts_the_swap_limit_back(tmp_path):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    group = v2_group(base, memory_swap_max="max", memory_current="0")
    (group / "memory.max").mkdir()  # unwritable: the write fails
    out = bash("./limit_memory.sh", target, LIMIT_IN_BYTES="1048576")
    assert out.returncode == 1
    assert out.stderr.startswith("Failed setting memory limit: ")
    assert (group / "memory.swap.max").read_text() == "max\n"


# ---- the real cgroup2 of a hybrid host ------------------------------------------------------

UNIFIED = Path("/sys/fs/cgroup/unified")
DEVICES_BPF = REPO / "src" / "devices" / "devices-bpf"


def unified_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not (UNIFIED / "cgroup.procs").exists():
        return f"no cgroup2 at {UNIFIED} (not a hybrid host)"
    return None


@pytest.fixture
def scratch_base():
    reason = unified_reason()
    if reason:
        pytest.skip(reason)
    base = UNIFIED / f"warden-scratch-{random.randrange(16**8):08x}"
    base.mkdir()
    try:
        yield base
    finally:
        for group in sorted(base.glob("**/"), key=lambda p: -len(p.parts)):
            if group == base:
                continue
            try:
                (group / "cgroup.kill").write_text("1")
            except OSError:
                pass
            for _ in range(100):
                try:
                    group.rmdir()
                    break
                except OSError:
                    subprocess.run(["sleep", "0.02"])
        base.rmdir()


def test_setup_on_a_cgroup2_without_controllers_names_the_file(tmp_path):
    reason = unified_reason()
    if reason:
        pytest.skip(reason)
    if "memory" in (UNIFIED / "cgroup.controllers").read_text().split():
        pytest.skip(f"{UNIFIED} has controllers: setup would really enable them")
    target = container(tmp_path, None)
    out = bash(lib(f'cgroup_setup {target.parent} || echo "$cgroup_error"'), target,
               WARDEN_CGROUP_ROOT=str(UNIFIED))
    assert out.stdout.strip().startswith(f"the cpu controller is not available in {UNIFIED} ")
    assert not (target.parent / ".cgroup-layout").exists()


def test_instance_on_real_cgroup2_devices_kill_and_remove(tmp_path, scratch_base):
    if not os.access(DEVICES_BPF, os.X_OK):
        pytest.skip(f"{DEVICES_BPF} not built")
    target = container(tmp_path, "v2", scratch_base)
    (target / "bin").mkdir()
    shutil.copy2(DEVICES_BPF, target / "bin")
    node = tmp_path / "disk"
    subprocess.run(["mknod", str(node), "b", "7", "0"], check=True)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        rules = "'c 1:3 rw' 'c 1:5 rw' 'c 1:8 rw' 'c 1:9 rw' 'c 5:0 rw' 'c 5:2 rw' 'c 136:* rw' 'c 10:229 rw'"
        out = bash(lib(f"cgroup_check_ready || true; cgroup_create_instance {sleeper.pid} {rules}; "
                       "cgroup_read_procs; echo \"${container_pid_list[*]}\"; "
                       f"cgroup_has_processes {CID} && echo busy"), target, allow_nested_warden="false")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [str(sleeper.pid), "busy"]
        group = scratch_base / f"instance-{CID}"
        probe = (f"echo $BASHPID >{group}/nested/cgroup.procs; head -c1 /dev/zero >/dev/null && echo zero-ok; "
                 f"head -c1 {node} 2>&1; true")
        (group / "nested").mkdir()
        out = bash(probe, tmp_path)
        assert "zero-ok" in out.stdout
        assert "Operation not permitted" in out.stdout
        # Destroy's way: everything killed, nested groups first, then the group.
        out = bash(lib("find_cgroup_subsystems; cgroup_kill_all; "
                       "for i in {1..200}; do cgroup_read_procs; ((${#container_pid_list[@]})) || break; sleep 0.01; done; "
                       "cgroup_remove_instance && echo removed"), target)
        assert out.stdout.strip() == "removed", out.stderr
        assert sleeper.wait(timeout=5) == -9
        assert not group.exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def fake_v1_root(root: Path, hybrid: bool) -> None:
    for s in ("cpu", "cpuacct", "cpuset", "memory", "devices", "pids"):
        (root / s).mkdir(parents=True)
        (root / s / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    if hybrid:
        (root / "unified").mkdir()
        (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")


@pytest.mark.parametrize("hybrid", [False, True])
def test_setup_records_v1_or_hybrid_and_makes_the_v1_parents(tmp_path, hybrid):
    root = tmp_path / "cg"
    fake_v1_root(root, hybrid)
    target = container(tmp_path, None)
    out = bash(lib(f"cgroup_setup {target.parent}"), target, WARDEN_CGROUP_ROOT=str(root))
    assert out.returncode == 0, out.stderr
    layout = "hybrid" if hybrid else "v1"
    assert (target.parent / ".cgroup-layout").read_text() == f"layout={layout}\n"
    assert not (target.parent / ".cgroup-layout.new").exists()
    assert all((root / s / "warden").is_dir() for s in ("cpu", "cpuacct", "cpuset", "memory", "devices", "pids"))
    assert (root / "cpuset" / "warden" / "cpuset.cpus").read_text() == "0-1\n"


def test_setup_without_v1_hierarchies_names_them(tmp_path):
    root = tmp_path / "cg"
    (root / "memory").mkdir(parents=True)
    target = container(tmp_path, None)
    out = bash(lib(f'cgroup_setup {target.parent} || echo "$cgroup_error"'), target, WARDEN_CGROUP_ROOT=str(root))
    assert out.stdout.startswith(f"cgroup v1 hierarchies missing at {root}: cpu cpuacct cpuset memory devices.")


def test_no_record_on_a_cgroup2_root_is_v2_with_the_undelegated_base(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    target = container(tmp_path, None)
    out = bash(lib('echo "$cgroup_layout $cgroup_base"'), target, WARDEN_CGROUP_ROOT=str(root))
    assert out.stdout.split() == ["v2", f"{root}/warden"]


def test_delegated_setup_refuses_the_root_cgroup(tmp_path):
    if Path("/proc/self/cgroup").read_text().count("0::/\n") == 0:
        pytest.skip("this process is not in the v2 root cgroup")
    target = container(tmp_path, None)
    out = bash(lib('cgroup_v2_prepare || echo "$cgroup_error"'), target, WARDEN_CGROUP_DELEGATED="1")
    assert "this process is in the root cgroup: nothing is delegated" in out.stdout


def fake_cgroup2(top: Path) -> None:
    top.mkdir(parents=True, exist_ok=True)
    (top / "cgroup.controllers").write_text("cpu memory pids\n")
    (top / "cgroup.subtree_control").write_text("cpu memory pids\n")


@pytest.mark.parametrize(("own", "mode", "expected"), [
    ("/system.slice/warden.service/server", "auto", "system.slice/warden.service/warden"),
    ("/system.slice/warden.service/server", "1", "system.slice/warden.service/warden"),
    ("/system.slice/warden.service", "auto", "warden"),  # systemd < 254: outside the unit
    ("/system.slice/warden.service/server", "", "warden"),
])
def test_where_the_v2_base_goes(tmp_path, own, mode, expected):
    root = tmp_path / "cg"
    fake_cgroup2(root)
    fake_cgroup2(root / own.strip("/"))
    fake_cgroup2(root / own.strip("/").rsplit("/", 1)[0])
    fake_cgroup2(root / expected)  # mkdir of a plain dir makes no control files
    target = container(tmp_path, None)
    script = lib(f'cgroup_v2_own_group() {{ REPLY={own}; }}; cgroup_v2_prepare; echo "$cgroup_base"')
    out = bash(script, target, WARDEN_CGROUP_ROOT=str(root), WARDEN_CGROUP_DELEGATED=mode)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{root}/{expected}"
    if mode == "auto" and expected == "warden":
        assert "is not a server leaf" in out.stderr


def test_leaving_a_delegated_group_moves_every_process_into_the_server_leaf(tmp_path, scratch_base):
    own = scratch_base / "own"
    own.mkdir()
    target = container(tmp_path, None)
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    try:
        for proc in sleepers:
            (own / "cgroup.procs").write_text(str(proc.pid))
        out = bash(lib(f"cgroup_v2_leave_group {own} && cgroup_v2_leave_group {own} && echo moved"), target)
        assert out.stdout.strip() == "moved", out.stderr
        assert (own / "cgroup.procs").read_text() == ""
        assert sorted((own / "server" / "cgroup.procs").read_text().split()) == sorted(str(p.pid) for p in sleepers)
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()


def test_the_pids_limit_reaches_create_and_etc_config_keeps_it():
    from ipaddress import IPv4Address

    from warden.container.linux.shell import container_env
    from warden.pool import Subnet

    subnet = Subnet(IPv4Address("10.254.0.0"))
    env = container_env(CID, subnet, 10000, "/rootfs", nested=False, mtu=1500, dns_servers=[], pids_limit=1024)
    assert env["container_pids_limit"] == "1024"
    assert container_env(CID, subnet, 10000, "/rootfs", nested=False, mtu=1500, dns_servers=[])[
        "container_pids_limit"] == ""
    assert "container_pids_limit" in (SKELETON / "setup.sh").read_text()


def test_pids_limit_is_written_to_pids_max_only_when_set(tmp_path):
    target = container(tmp_path, None)
    group = tmp_path / "g"
    group.mkdir()
    (group / "pids.max").write_text("max\n")
    bash(lib(f"cgroup_set_pids_limit {group}"), target, container_pids_limit="0")
    assert (group / "pids.max").read_text() == "max\n"
    bash(lib(f"cgroup_set_pids_limit {group}"), target, container_pids_limit="")
    assert (group / "pids.max").read_text() == "max\n"
    bash(lib(f"cgroup_set_pids_limit {group}"), target, container_pids_limit="1024")
    assert (group / "pids.max").read_text() == "1024\n"


def test_v1_instance_gets_pids_max_devices_and_the_pid(tmp_path):
    root = tmp_path / "cg"
    fake_v1_root(root, hybrid=False)
    target = container(tmp_path, None)
    for s in ("cpu", "cpuacct", "cpuset", "memory", "devices", "pids"):
        group = root / s / "warden" / f"instance-{CID}"
        group.mkdir(parents=True)
        for name in ("cgroup.procs", "pids.max", "devices.allow", "devices.deny"):
            (group / name).write_text("")
    out = bash(lib("find_cgroup_subsystems; cgroup_create_instance 4242 'c 1:3 rw' 'c 1:5 rw'"), target,
               WARDEN_CGROUP_ROOT=str(root), container_pids_limit="1024")
    assert out.returncode == 0, out.stderr
    pids = root / "pids" / "warden" / f"instance-{CID}"
    assert (pids / "pids.max").read_text() == "1024\n"
    assert (pids / "cgroup.procs").read_text() == "4242\n"
    devices = root / "devices" / "warden" / f"instance-{CID}"
    assert (devices / "devices.deny").read_text() == "a\n"
    assert (devices / "devices.allow").read_text() == "c 1:5 rw\n"  # the last of one write each


def test_v2_instance_without_the_devices_helper_is_refused(tmp_path):
    base = tmp_path / "cg" / "warden"
    target = container(tmp_path, "v2", base)
    group = v2_group(base, cgroup_procs="", pids_max="max")
    out = bash(lib("cgroup_create_instance 4242 'c 1:3 rw'"), target, container_pids_limit="99")
    assert out.returncode == 1
    assert "bin/devices-bpf is missing" in out.stderr
    assert (group / "cgroup.procs").read_text() == "\n"  # the init never moved in
    out = bash(lib("cgroup_create_instance 4242"), target, container_pids_limit="99", allow_nested_warden="true")
    assert out.returncode == 0, out.stderr
    assert (group / "cgroup.procs").read_text() == "4242\n"
    assert (group / "pids.max").read_text() == "99\n"
