"""The Linux backend: real containers from namespaces, cgroups, overlayfs and veth.

Each operation runs a script from `root/linux` (parameters in the environment,
upstream names) or a C helper; Python only reads statistics back. Rules and
limits are recorded in the snapshot so that a restarted server can re-apply them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shlex
import socket
from pathlib import Path
from typing import Any

from .. import scripts
from ..errors import WardenError
from ..pool import PoolExhausted
from ..protocol.catalogue import catalogue
from ..server.dispatch import check_net_out
from .base import ACTIVE, OUT_OF_MEMORY, Container
from .context import Context
from . import wshd
from .insecure import job_lang
from .jobs import Job, remove_linked_output

log = logging.getLogger("warden.linux")

CGROUP_ROOT = Path("/sys/fs/cgroup")
NO_LIMIT = 4294967295  # BandwidthStat for "no limit set"
SRC = Path(__file__).resolve().parents[2] / "src"
DISK_KEYS = ("block_soft", "block_hard", "inode_soft", "inode_hard")


def _key_values(text: str) -> dict[str, str]:
    values = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            values[key] = value
    return values


def mount_point(path: str) -> str:
    """The mount point of the filesystem holding `path` (where quotas are set)."""
    current = Path(path).resolve()
    device = current.stat().st_dev
    while current.parent != current and current.parent.stat().st_dev == device:
        current = current.parent
    return str(current)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class LinuxContainer(Container):
    backend = "linux"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._oom: asyncio.subprocess.Process | None = None
        self._oom_task: asyncio.Task | None = None
        # Cleared when this container's wshd turns out to predate output descriptors.
        self._wshd_takes_output_fd = True

    # ---- host setup and recovery ----------------------------------------------------

    @classmethod
    async def setup(cls, ctx: Context) -> None:
        config = ctx.config
        script = ctx.root_path / "setup.sh"
        if not script.exists():
            return
        try:
            await scripts.run([str(script)], {
                "POOL_NETWORK": config.network.pool_network,
                "ALLOW_NETWORKS": " ".join(config.network.allow_networks),
                "ALLOW_HOST_ACCESS": "true" if config.network.allow_host_access else "false",
                "CONTAINER_ROOTFS_PATH": config.server.container_rootfs_path,
                "CONTAINER_DEPOT_PATH": config.server.container_depot_path,
                "DISK_QUOTA_ENABLED": "true" if config.server.disk_quota_enabled else "false",
            }, timeout=600)
        except WardenError as exc:
            raise WardenError(f"root/linux/setup.sh failed: {exc.data or exc.message}") from None

    @classmethod
    def alive(cls, path: Path) -> bool:
        """A container lives while its wshd answers on run/wshd.sock."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                probe.connect(str(path / "run" / "wshd.sock"))
            except OSError:
                return False
        return True

    async def restore(self) -> None:
        await self._sh("net.sh", "setup")
        for host_port, container_port in self.res.net_in:
            await self._net_in_rule(host_port, container_port)
        for rule in self.res.net_out:
            await self._sh("net.sh", "out", env=rule)
        limits = self.res.limits
        if limits.get("memory") is not None:
            await self.limit_memory(limits["memory"], record=False)
        if limits.get("cpu") is not None:
            await self.limit_cpu(limits["cpu"], record=False)
        if limits.get("bandwidth"):
            bw = limits["bandwidth"]
            await self.limit_bandwidth(bw["rate"], bw["burst"], record=False)

    # ---- scripts --------------------------------------------------------------------

    def script_env(self) -> dict[str, str]:
        config = self.ctx.config
        subnet = self.res.subnet
        assert subnet is not None and self.res.uid is not None
        return {
            "id": self.id,
            "network_host_ip": str(subnet.host_ip),
            "network_container_ip": str(subnet.container_ip),
            "network_netmask": subnet.netmask,
            "user_uid": str(self.res.uid),
            "rootfs_path": self.res.rootfs or config.server.container_rootfs_path,
            "allow_nested_warden": "true" if config.server.allow_nested_warden else "false",
            "container_iface_mtu": str(config.network.mtu),
            "dns_servers": "\n".join(config.network.dns_servers),
        }

    async def _sh(self, name: str, *args: str, env: dict[str, Any] | None = None) -> scripts.Result:
        return await scripts.run([str(self.path / name), *args], env)

    # ---- lifecycle --------------------------------------------------------------------

    async def do_create(self, request: dict[str, Any]) -> None:
        rootfs = request.get("rootfs")
        if rootfs is not None:
            if not Path(rootfs).is_dir():
                raise WardenError(f"rootfs {rootfs} not found")
            self.res.rootfs = rootfs
        elif not Path(self.ctx.config.server.container_rootfs_path).is_dir():
            raise WardenError(f"rootfs {self.ctx.config.server.container_rootfs_path} not found")
        for mount in request.get("bind_mounts") or []:
            if not Path(mount["src_path"]).exists():
                raise WardenError(f"Source path for bind mount does not exist: {mount['src_path']}")
            dst = mount["dst_path"]
            if not dst.startswith("/") or ".." in dst.split("/") or dst.rstrip("/") == "":
                raise WardenError(f"invalid request: bind mount dst_path must be an absolute path "
                                  f"without '..' and not '/': {dst!r}")
        self.res.bind_mounts = [dict(m) for m in request.get("bind_mounts") or []]
        if self.ctx.config.server.disk_quota_enabled:
            await scripts.run(["setquota", "-u", str(self.res.uid), "0", "0", "0", "0",
                               mount_point(self.ctx.config.server.container_depot_path)])
        env = self.script_env()
        if not self.res.bind_mounts:
            env["START"] = "1"  # create.sh starts the container too: one process fewer
        await scripts.run([str(self.ctx.root_path / "create.sh"), str(self.path)], env)
        if self.res.bind_mounts:
            self._write_bind_mounts()
            await self._sh("start.sh")

    def _write_bind_mounts(self) -> None:
        """Bind mounts are made by wshd's after-pivot hook, in the container's own
        mount namespace only, so the host never sees them. After pivot_root the
        target resolves inside the container (its symlinks, e.g. /var/run -> /run,
        stay in it) and the host's source is reached through the old root at /mnt."""
        if not self.res.bind_mounts:
            return
        lines = ["", "# bind mounts requested by Create"]
        for mount in self.res.bind_mounts:
            mode = "ro" if mount["mode"] == "RO" else "rw"
            src = shlex.quote("/mnt" + os.path.realpath(mount["src_path"]))
            dst = shlex.quote(mount["dst_path"])
            test = "-d" if os.path.isdir(mount["src_path"]) else "-e"
            make = f"mkdir -p {dst}" if test == "-d" else f"mkdir -p \"$(dirname {dst})\" && touch {dst}"
            lines += [
                f"[[ {test} {dst} ]] || {{ {make}; }}",
                f"mount --bind {src} {dst}",
                f"mount -o remount,bind,{mode} {dst}",
            ]
        hook = self.path / "lib" / "hook-child-after-pivot.sh"
        with open(hook, "a") as f:
            f.write("\n".join(lines) + "\n")

    async def do_stop(self, kill: bool) -> None:
        await self._sh("stop.sh", *(["-w", "0"] if kill else []))

    async def after_stop(self) -> None:
        self._stop_oom_watcher()

    async def do_destroy(self) -> None:
        # destroy.sh kills wshd, PID 1 of the container: every process goes with it.
        self._stop_oom_watcher()
        await scripts.run([str(self.ctx.root_path / "destroy.sh"), str(self.path)])

    def has_processes(self) -> bool:
        """Anything in the container besides wshd (jobs, or what they left running)?"""
        try:
            with open(self.cgroup("cpu") / "cgroup.procs") as f:
                return len(f.read().split()) > 1
        except OSError:
            return super().has_processes()

    # ---- jobs ---------------------------------------------------------------------

    async def start_job(self, job: Job, request: dict[str, Any]) -> None:
        """wshd, already running in the container, holds the job itself: no process
        is started on this path. Jobs with a log_tag go through iomux-spawn, which
        can reach the host's syslog socket (wshd, after pivot_root, cannot)."""
        if job.log_tag is None:
            try:
                return await self._start_in_wshd(job, request)
            except wshd.JobModeUnsupported:
                remove_linked_output(job.dir)  # a container started by an older wshd
        await super().start_job(job, request)

    async def _start_in_wshd(self, job: Job, request: dict[str, Any]) -> None:
        spawn = functools.partial(
            wshd.spawn_job, str(self.path / "run" / "wshd.sock"), job.id,
            user="root" if request.get("privileged") else "vcap",
            env={"LANG": job_lang()},
            rlimits=self.rlimits_for(request.get("rlimits")),
            output_limit=self.ctx.config.server.job_output_limit,
            discard_output=job.discard_output,
        )
        if job.discard_output or not self._wshd_takes_output_fd:
            await spawn()
            return
        output_fd = self._open_job_output(job)
        try:
            await spawn(output_fd=output_fd)
        except wshd.OutputFdUnsupported:
            # This wshd writes output into the job directory itself (and is
            # not asked again until the server restarts).
            self._wshd_takes_output_fd = False
            remove_linked_output(job.dir)
            await spawn()
        finally:
            os.close(output_fd)

    @property
    def job_output_dir(self) -> Path:
        return self.path / "job-output"

    def _open_job_output(self, job: Job) -> int:
        """The job's output file, on the depot's disk, linked as `output` from the
        job directory (on a tmpfs when setup.sh could mount one): wshd, in the
        container's memory cgroup, writes it, and tmpfs pages would count
        against the container's memory limit with no way to reclaim them, so a
        chatty job could get its container killed. Page cache is written back
        and reclaimed instead."""
        path = self.job_output_dir / str(job.id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            self.job_output_dir.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, flags, 0o600)
        try:
            os.symlink(path, job.dir / "output")
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        return fd

    def sweep_job_outputs(self) -> None:
        try:
            names = os.listdir(self.job_output_dir)
        except FileNotFoundError:
            return
        for name in names:
            if not name.isdigit() or int(name) not in self.jobs:
                (self.job_output_dir / name).unlink(missing_ok=True)

    def job_argv(self, job: Job, request: dict[str, Any]) -> list[str]:
        """The iomux path (log_tag jobs): iomux-spawn holds wsh, which runs the job."""
        user = "root" if request.get("privileged") else "vcap"
        return self.iomux_spawn_argv(job) + [str(job.dir), "--", str(self.path / "bin" / "wsh"),
                                             "--socket", str(self.path / "run" / "wshd.sock"),
                                             "--user", user, "/bin/bash"]

    def job_env(self, request: dict[str, Any]) -> dict[str, str]:
        env = {"LANG": job_lang(), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        for name, value in self.rlimits_for(request.get("rlimits")).items():
            env[f"RLIMIT_{name.upper()}"] = str(value)
        return env

    # ---- files --------------------------------------------------------------------

    def _rsh(self) -> str:
        return f"{self.path / 'bin' / 'wsh'} --socket {self.path / 'run' / 'wshd.sock'} --rsh"

    async def copy_in(self, src_path: str, dst_path: str) -> None:
        await scripts.run(["rsync", "-r", "-p", "--links", "-e", self._rsh(), src_path,
                           f"vcap@container:{dst_path}"])

    async def copy_out(self, src_path: str, dst_path: str, owner: str | None) -> None:
        await scripts.run(["rsync", "-r", "-p", "--links", "-e", self._rsh(),
                           f"vcap@container:{src_path}", dst_path])
        if owner:
            await scripts.run(["chown", "-R", owner, dst_path])

    # ---- network ---------------------------------------------------------------------

    async def _net_in_rule(self, host_port: int, container_port: int) -> None:
        await self._sh("net.sh", "in", env={"HOST_PORT": host_port, "CONTAINER_PORT": container_port})

    async def net_in(self, host_port: int | None, container_port: int | None) -> dict[str, int]:
        pooled = host_port is None
        if pooled:
            try:
                host_port = self.ctx.ports.acquire_port()
            except PoolExhausted as exc:
                raise WardenError(str(exc)) from None
        assert host_port is not None
        container_port = host_port if container_port is None else container_port
        try:
            await self._net_in_rule(host_port, container_port)
        except BaseException:
            if pooled:
                self.ctx.ports.release(host_port)
            raise
        if pooled:
            self.res.ports.append(host_port)
        self.res.net_in.append([host_port, container_port])
        self.write_snapshot()
        return {"host_port": host_port, "container_port": container_port}

    async def net_out(self, request: dict[str, Any]) -> None:
        check_net_out(request)
        port_range = request.get("port_range")
        ports = port_range if port_range is not None else (str(request["port"]) if request.get("port") is not None else "")
        icmp_type, icmp_code = request.get("icmp_type"), request.get("icmp_code")
        rule = {
            "NETWORK": request.get("network") or "",
            "PORTS": ports,
            "PROTOCOL": (request.get("protocol") or "TCP").lower(),
            "ICMP_TYPE": "" if icmp_type is None or icmp_type < 0 else str(icmp_type),
            "ICMP_CODE": "" if icmp_code is None or icmp_code < 0 else str(icmp_code),
            "LOG": "true" if request.get("log") else "false",
        }
        await self._sh("net.sh", "out", env=rule)
        self.res.net_out.append(rule)
        self.write_snapshot()

    # ---- limits ---------------------------------------------------------------------

    def cgroup(self, subsystem: str) -> Path:
        return CGROUP_ROOT / subsystem / "warden" / f"instance-{self.id}"

    async def limit_memory(self, limit: int | None, record: bool = True) -> dict[str, Any]:
        env: dict[str, Any] = {}
        if limit is not None:
            await self._start_oom_watcher()
            env["LIMIT_IN_BYTES"] = limit
        try:
            result = await self._sh("limit_memory.sh", env=env)
        except WardenError as exc:
            raise WardenError(exc.data if exc.data and exc.data.startswith("Failed") else
                              f"Failed setting memory limit: {exc.data}") from None
        if limit is not None and record:
            self.res.limits["memory"] = limit
            self.write_snapshot()
        return {"limit_in_bytes": int(result.stdout.split()[0])}

    async def limit_cpu(self, shares: int | None, record: bool = True) -> dict[str, Any]:
        env = {"LIMIT_IN_SHARES": shares} if shares is not None else {}
        try:
            result = await self._sh("limit_cpu.sh", env=env)
        except WardenError as exc:
            detail = exc.data or ""
            raise WardenError(detail if detail.startswith("Failed") else f"Failed setting cpu shares: {detail}") from None
        if shares is not None and record:
            self.res.limits["cpu"] = shares
            self.write_snapshot()
        return {"limit_in_shares": int(result.stdout.split()[0])}

    async def limit_bandwidth(self, rate: int, burst: int, record: bool = True) -> dict[str, Any]:
        await self._sh("net_rate.sh", env={"RATE": rate * 8, "BURST": burst})
        if record:
            self.res.limits["bandwidth"] = {"rate": rate, "burst": burst}
            self.write_snapshot()
        return {"rate": rate, "burst": burst}

    async def limit_disk(self, request: dict[str, Any]) -> dict[str, Any]:
        if not (self.path / "limit_disk.sh").exists():
            return {}
        current = await self._disk_info()
        blocks = {k: int(current.get(k, 0) or 0) for k in DISK_KEYS}
        # Later fields win: bytes, then blocks, then inodes; `*_hard` over its aliases.
        for prefix, scale in (("byte", 1024), ("block", 1)):
            for name, key in ((f"{prefix}_limit", "block_hard"), (prefix, "block_hard"),
                              (f"{prefix}_soft", "block_soft"), (f"{prefix}_hard", "block_hard")):
                value = request.get(name)
                if value is not None:
                    blocks[key] = -(-value // scale) if scale > 1 else value
        for name, key in (("inode_limit", "inode_hard"), ("inode", "inode_hard"),
                          ("inode_soft", "inode_soft"), ("inode_hard", "inode_hard")):
            if request.get(name) is not None:
                blocks[key] = request[name]
        env = {k.upper(): v for k, v in blocks.items()}
        result = await self._sh("limit_disk.sh", env={**env, **self._quota_env()})
        self.res.limits["disk"] = blocks
        self.write_snapshot()
        return _disk_response(_key_values(result.stdout.decode()))

    async def _disk_info(self) -> dict[str, str]:
        result = await self._sh("limit_disk.sh", env=self._quota_env())
        return _key_values(result.stdout.decode())

    def _quota_env(self) -> dict[str, str]:
        """Where per-uid quotas are read on hosts that have them (unused with the pool)."""
        return {"REPQUOTA": str(SRC / "repquota" / "repquota"),
                "CONTAINER_DEPOT_MOUNT_POINT_PATH": mount_point(self.ctx.config.server.container_depot_path)}

    # ---- OOM -----------------------------------------------------------------------

    async def _start_oom_watcher(self) -> None:
        if self._oom is not None and self._oom.returncode is None:
            return
        oom = SRC / "oom" / "oom"
        if not oom.exists():
            return
        self._oom = await asyncio.create_subprocess_exec(
            str(oom), str(self.cgroup("memory")),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        self._oom_task = self.ctx.spawn_background(self._watch_oom(self._oom))

    async def _watch_oom(self, proc: asyncio.subprocess.Process) -> None:
        status = await proc.wait()
        if status != 0 or proc is not self._oom:
            return
        self.log.info("out of memory")
        self.add_event(OUT_OF_MEMORY)
        if self.state == ACTIVE:
            try:
                await self.stop()
            except WardenError as exc:
                self.log.error("stop after OOM failed", extra={"data": {"error": exc.message}})
        else:
            self.write_snapshot()

    def _stop_oom_watcher(self) -> None:
        proc, self._oom = self._oom, None
        if proc is not None and proc.returncode is None:
            proc.kill()

    # ---- info -----------------------------------------------------------------------

    async def do_info(self, live: bool = True) -> dict[str, Any]:
        """Stats from the cgroup files; with `live`, also bandwidth read back from tc
        and disk usage (each a script run). The info embedded in Link/Run/Stream
        answers is not live: it reports the limits as applied, and costs no process."""
        info: dict[str, Any] = {}
        memory = self._memory_stat()
        if memory:
            info["memory_stat"] = memory
        cpu = self._cpu_stat()
        if cpu:
            info["cpu_stat"] = cpu
        if not live:
            bandwidth = self.res.limits.get("bandwidth")
            if bandwidth:
                info["bandwidth_stat"] = {"in_rate": bandwidth["rate"], "in_burst": bandwidth["burst"],
                                          "out_rate": bandwidth["rate"], "out_burst": bandwidth["burst"]}
            else:
                info["bandwidth_stat"] = dict.fromkeys(("in_rate", "in_burst", "out_rate", "out_burst"), NO_LIMIT)
            return info
        info["bandwidth_stat"] = await self._bandwidth_stat()
        if (self.path / "limit_disk.sh").exists():
            try:
                values = await self._disk_info()
                info["disk_stat"] = {"bytes_used": int(values.get("bytes_used", 0)),
                                     "inodes_used": int(values.get("inodes_used", 0))}
            except (WardenError, ValueError):
                pass
        return info

    def _memory_stat(self) -> dict[str, int]:
        fields = catalogue().structs["MemoryStat"]
        stats: dict[str, int] = {}
        try:
            text = (self.cgroup("memory") / "memory.stat").read_text()
        except OSError:
            return stats
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key in fields and value.isdigit():
                stats[key] = int(value)
        return stats

    def _cpu_stat(self) -> dict[str, int]:
        usage = _read_int(self.cgroup("cpuacct") / "cpuacct.usage")
        if usage is None:
            return {}
        stat = {"usage": usage}
        try:
            for line in (self.cgroup("cpuacct") / "cpuacct.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key in ("user", "system"):
                    stat[key] = int(value)
        except (OSError, ValueError):
            pass
        return stat

    async def _bandwidth_stat(self) -> dict[str, int]:
        stat = {"in_rate": NO_LIMIT, "in_burst": NO_LIMIT, "out_rate": NO_LIMIT, "out_burst": NO_LIMIT}
        if not (self.path / "net.sh").exists():
            return stat
        for verb, prefix in (("get_ingress_info", "in"), ("get_egress_info", "out")):
            try:
                values = _key_values((await self._sh("net.sh", verb)).stdout.decode())
            except WardenError:
                continue
            if "rate" in values:
                stat[f"{prefix}_rate"] = int(values["rate"]) // 8
            if "burst" in values:
                stat[f"{prefix}_burst"] = int(values["burst"])
        return stat


def _disk_response(values: dict[str, str]) -> dict[str, int]:
    block_soft = int(values.get("block_soft", 0) or 0)
    block_hard = int(values.get("block_hard", 0) or 0)
    inode_soft = int(values.get("inode_soft", 0) or 0)
    inode_hard = int(values.get("inode_hard", 0) or 0)
    return {
        "block_limit": block_hard, "block": block_hard, "block_soft": block_soft, "block_hard": block_hard,
        "inode_limit": inode_hard, "inode": inode_hard, "inode_soft": inode_soft, "inode_hard": inode_hard,
        "byte_limit": block_hard * 1024, "byte": block_hard * 1024,
        "byte_soft": block_soft * 1024, "byte_hard": block_hard * 1024,
    }
