"""Running the Linux backend's scripts: the host-wide ones in `root/linux` and
each container's own copies of `root/linux/skeleton` in its directory.

Parameters go in through the environment, with upstream warden's names; a
failure is a WardenError carrying the script's stderr (see `warden.scripts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ... import scripts
from ...pool import Subnet


@dataclass(frozen=True)
class Shell:
    root: Path       # root/linux: setup.sh, create.sh, destroy.sh, ...
    container: Path  # the container's directory: net.sh, limit_*.sh, stop.sh, ...

    def has(self, name: str) -> bool:
        """Does the container have this script? (a container made by an older
        skeleton may lack one)."""
        return (self.container / name).exists()

    async def run(self, name: str, *args: str, env: dict[str, Any] | None = None) -> scripts.Result:
        """One of the container's own scripts."""
        return await scripts.run([str(self.container / name), *args], env)

    async def run_host(self, name: str, *args: str, env: dict[str, Any] | None = None,
                       timeout: float | None = None) -> scripts.Result:
        """One of the host-wide scripts in root/linux."""
        return await scripts.run([str(self.root / name), *args], env, timeout=timeout)


def container_env(container_id: str, subnet: Subnet, uid: int, rootfs: str, *, nested: bool,
                  mtu: int, dns_servers: list[str], pids_limit: int | None = None) -> dict[str, str]:
    """What create.sh and the skeleton's setup.sh read about a new container
    (`pids_limit` None: no pids.max)."""
    return {
        "id": container_id,
        "network_host_ip": str(subnet.host_ip),
        "network_container_ip": str(subnet.container_ip),
        "network_netmask": subnet.netmask,
        "user_uid": str(uid),
        "rootfs_path": rootfs,
        "allow_nested_warden": "true" if nested else "false",
        "container_iface_mtu": str(mtu),
        "dns_servers": "\n".join(dns_servers),
        "container_pids_limit": str(pids_limit or ""),
    }
