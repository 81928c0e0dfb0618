"""Resource pools: /30 networks, host ports and container uids.

Each pool hands entries out first-in, first-out; a released entry goes to the tail
and, for networks, stays unavailable for `release_delay` seconds so that a new
container never inherits packets or conntrack state meant for an old one.
"""

from __future__ import annotations

import collections
import ipaddress
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class PoolExhausted(Exception):
    """No entry is free; the message is what the client sees."""


class Pool(Generic[T]):
    def __init__(
        self,
        entries: Iterable[T],
        release_delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._all = list(entries)
        self._members = set(self._all)
        self._queue: collections.deque[tuple[float, T]] = collections.deque((0.0, e) for e in self._all)
        self._release_delay = release_delay
        self._clock = clock

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, entry: object) -> bool:
        return entry in self._members

    def take(self, what: str) -> T:
        """An entry, or PoolExhausted saying that no `what` is available."""
        entry = self.acquire()
        if entry is None:
            raise PoolExhausted(f"no {what} available")
        return entry

    def acquire(self) -> T | None:
        """The head of the queue, if its release delay has passed."""
        if self._queue and self._queue[0][0] <= self._clock():
            return self._queue.popleft()[1]
        return None

    def fetch(self, entry: T) -> bool:
        """Take one particular entry, if it is free and its delay has passed."""
        now = self._clock()
        for i, (ready, candidate) in enumerate(self._queue):
            if candidate == entry:
                if ready > now:
                    return False
                del self._queue[i]
                return True
        return False

    def remove(self, entry: T) -> None:
        """Take an entry out regardless of its delay (a recovered container holds it)."""
        for i, (_, candidate) in enumerate(self._queue):
            if candidate == entry:
                del self._queue[i]
                return

    def release(self, entry: T) -> None:
        if entry in self._members and all(e != entry for _, e in self._queue):
            self._queue.append((self._clock() + self._release_delay, entry))

    def rotate_past(self, entry: T) -> None:
        """Put free entries that come after `entry` (in pool order) at the head."""
        order = {e: i for i, e in enumerate(self._all)}
        if entry not in order:
            return
        cut = order[entry]
        items = sorted(self._queue, key=lambda item: (order[item[1]] <= cut, order[item[1]]))
        self._queue = collections.deque(items)


# ---- networks ---------------------------------------------------------------------


def parse_network(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError) as exc:
        raise ValueError(f"not an IPv4 network: {text!r} ({exc})") from None


@dataclass(frozen=True)
class Subnet:
    """One container's /30: base, host side (base+1) and container side (base+2)."""

    base: ipaddress.IPv4Address

    @property
    def host_ip(self) -> ipaddress.IPv4Address:
        return self.base + 1

    @property
    def container_ip(self) -> ipaddress.IPv4Address:
        return self.base + 2

    netmask = "255.255.255.252"

    def __str__(self) -> str:
        return str(self.base)


class NetworkPool(Pool[Subnet]):
    def __init__(self, network: str, release_delay: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        net = parse_network(network)
        # Aligned to a /30 only, as upstream: `10.254.0.8/24` starts at .8.
        start = int(ipaddress.IPv4Address(network.split("/")[0])) & ~3
        count = max(1, net.num_addresses // 4)
        self.network = net
        super().__init__(
            (Subnet(ipaddress.IPv4Address(start + 4 * i)) for i in range(count)),
            release_delay,
            clock,
        )

    def acquire_network(self, address: str | None = None) -> Subnet:
        if address is None:
            subnet = self.acquire()
            if subnet is None:
                raise PoolExhausted("Could not acquire network")
            return subnet
        try:
            base = ipaddress.IPv4Address(int(ipaddress.IPv4Address(address)) & ~3)
        except ValueError:
            raise PoolExhausted(f"Could not acquire network: {address}") from None
        subnet = Subnet(base)
        if not self.fetch(subnet):
            raise PoolExhausted(f"Could not acquire network: {address}")
        return subnet


class PortPool(Pool[int]):
    def __init__(self, start: int, size: int) -> None:
        super().__init__(range(start, start + size))

    def acquire_port(self) -> int:
        return self.take("port")


class UidPool(Pool[int]):
    def __init__(self, start: int, size: int, passwd: str = "/etc/passwd") -> None:
        taken = _passwd_uids(passwd)
        clash = sorted(taken & set(range(start, start + size)))
        if clash:
            raise ValueError(f"UID in user pool overlaps with user in {passwd}: {clash[0]}")
        super().__init__(range(start, start + size))

    def acquire_uid(self) -> int:
        return self.take("uid")


def _passwd_uids(path: str) -> set[int]:
    uids = set()
    try:
        with open(path) as f:
            for line in f:
                parts = line.split(":")
                if len(parts) > 2 and parts[2].isdigit():
                    uids.add(int(parts[2]))
    except OSError:
        pass
    return uids
