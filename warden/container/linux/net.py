"""Networking of one container: NetIn (DNAT from a host port), NetOut (egress
rules), and LimitBandwidth (tbf on the veth and its ifb, both ways).

Every rule and limit is recorded in the container's resources, so `restore`
can apply them again after a restart; `net.sh` does the kernel work.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...errors import WardenError
from ...pool import PoolExhausted
from ...protocol import requests as rq
from .shell import Shell

if TYPE_CHECKING:
    from ..base import Container

NO_LIMIT = 4294967295  # BandwidthStat for "no limit set"
PORT_RANGE = re.compile(r"^(\d+):(\d+)$")
BANDWIDTH_KEYS = ("in_rate", "in_burst", "out_rate", "out_burst")


def check_net_out(request: rq.NetOutRequest) -> None:
    if request.network is None and request.port is None and request.port_range is None:
        raise WardenError("Please specify network, port, and/or port_range.")
    if request.port_range is not None:
        match = PORT_RANGE.match(request.port_range)
        if not match:
            raise WardenError(f"invalid request: port_range must be MIN:MAX, got {request.port_range!r}")
        low, high = int(match[1]), int(match[2])
        if high < low:
            raise WardenError("Port range maximum must be greater than minimum")
        if high > 65535:
            raise WardenError(f"invalid request: port_range maximum {high} is above 65535")


def net_out_rule(request: rq.NetOutRequest) -> dict[str, str]:
    """A checked NetOut as net.sh's parameters (also what the snapshot keeps)."""
    check_net_out(request)
    if request.port_range is not None:
        ports = request.port_range
    else:
        ports = str(request.port) if request.port is not None else ""
    icmp_type, icmp_code = request.icmp_type, request.icmp_code
    return {
        "NETWORK": request.network or "",
        "PORTS": ports,
        "PROTOCOL": (request.protocol or "TCP").lower(),
        "ICMP_TYPE": "" if icmp_type is None or icmp_type < 0 else str(icmp_type),
        "ICMP_CODE": "" if icmp_code is None or icmp_code < 0 else str(icmp_code),
        "LOG": "true" if request.log else "false",
    }


def key_values(text: str) -> dict[str, str]:
    """`key=value` tokens, as net.sh and limit_disk.sh print them."""
    values = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            values[key] = value
    return values


class Net:
    def __init__(self, container: Container, shell: Shell) -> None:
        self.container = container
        self.shell = shell

    async def restore(self) -> None:
        res = self.container.res
        await self.shell.run("net.sh", "setup")
        for host_port, container_port in res.net_in:
            await self._net_in_rule(host_port, container_port)
        for rule in res.net_out:
            await self.shell.run("net.sh", "out", env=rule)
        bandwidth = res.limits.get("bandwidth")
        if bandwidth:
            await self.limit_bandwidth(bandwidth["rate"], bandwidth["burst"], record=False)

    # ---- NetIn ----------------------------------------------------------------

    async def _net_in_rule(self, host_port: int, container_port: int) -> None:
        await self.shell.run("net.sh", "in", env={"HOST_PORT": host_port, "CONTAINER_PORT": container_port})

    async def net_in(self, host_port: int | None, container_port: int | None) -> dict[str, int]:
        ports, res = self.container.ctx.ports, self.container.res
        pooled = host_port is None
        if host_port is None:
            try:
                host_port = ports.acquire_port()
            except PoolExhausted as exc:
                raise WardenError(str(exc)) from None
        container_port = host_port if container_port is None else container_port
        try:
            await self._net_in_rule(host_port, container_port)
        except BaseException:
            if pooled:
                ports.release(host_port)
            raise
        if pooled:
            res.ports.append(host_port)
        res.net_in.append([host_port, container_port])
        self.container.write_snapshot()
        return {"host_port": host_port, "container_port": container_port}

    # ---- NetOut ---------------------------------------------------------------

    async def net_out(self, request: rq.NetOutRequest) -> None:
        rule = net_out_rule(request)
        await self.shell.run("net.sh", "out", env=rule)
        self.container.res.net_out.append(rule)
        self.container.write_snapshot()

    # ---- bandwidth ------------------------------------------------------------

    async def limit_bandwidth(self, rate: int, burst: int, record: bool = True) -> dict[str, Any]:
        await self.shell.run("net_rate.sh", env={"RATE": rate * 8, "BURST": burst})
        if record:
            self.container.res.limits["bandwidth"] = {"rate": rate, "burst": burst}
            self.container.write_snapshot()
        return {"rate": rate, "burst": burst}

    def bandwidth_as_applied(self) -> dict[str, int]:
        """BandwidthStat from the recorded limit: costs no process."""
        bandwidth = self.container.res.limits.get("bandwidth")
        if not bandwidth:
            return dict.fromkeys(BANDWIDTH_KEYS, NO_LIMIT)
        return {"in_rate": bandwidth["rate"], "in_burst": bandwidth["burst"],
                "out_rate": bandwidth["rate"], "out_burst": bandwidth["burst"]}

    async def bandwidth_stat(self) -> dict[str, int]:
        """BandwidthStat read back from tc (two script runs)."""
        stat = dict.fromkeys(BANDWIDTH_KEYS, NO_LIMIT)
        if not self.shell.has("net.sh"):
            return stat
        for verb, prefix in (("get_ingress_info", "in"), ("get_egress_info", "out")):
            try:
                values = key_values((await self.shell.run("net.sh", verb)).stdout.decode())
            except WardenError:
                continue
            if "rate" in values:
                stat[f"{prefix}_rate"] = int(values["rate"]) // 8
            if "burst" in values:
                stat[f"{prefix}_burst"] = int(values["burst"])
        return stat
