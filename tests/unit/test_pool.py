"""Resource pools (upstream-server.md section 4): FIFO, release delay, fetch, exhaustion."""

from __future__ import annotations

import ipaddress

import pytest

from warden.pool import NetworkPool, Pool, PoolExhausted, PortPool, Subnet, UidPool, parse_network


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drain(pool: Pool) -> list:
    out = []
    while (entry := pool.acquire()) is not None:
        out.append(entry)
    return out


def ip(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


# ---- generic pool ------------------------------------------------------------------------


def test_fifo_order():
    pool = Pool(["a", "b", "c"])
    assert len(pool) == 3
    assert [pool.acquire(), pool.acquire()] == ["a", "b"]
    assert len(pool) == 1
    assert pool.acquire() == "c"
    assert pool.acquire() is None


def test_release_goes_to_the_tail():
    pool = Pool([1, 2, 3])
    first = pool.acquire()
    pool.release(first)
    assert drain(pool) == [2, 3, 1]


def test_release_of_a_foreign_or_free_entry_is_ignored():
    pool = Pool([1, 2])
    pool.release(99)
    assert 99 not in pool
    pool.release(1)  # still free: no duplicate
    assert drain(pool) == [1, 2]


def test_release_delay_with_injected_clock():
    clock = Clock()
    pool = Pool(["a"], release_delay=5.0, clock=clock)
    entry = pool.acquire()
    pool.release(entry)
    assert pool.acquire() is None
    clock.now += 4.999
    assert pool.acquire() is None
    assert pool.fetch("a") is False
    clock.now += 0.001
    assert pool.acquire() == "a"


def test_fresh_entries_are_not_delayed():
    clock = Clock(0.0)
    pool = Pool(["a", "b"], release_delay=1000.0, clock=clock)
    assert pool.acquire() == "a"
    assert pool.fetch("b") is True


def test_delayed_head_blocks_acquire_like_upstream():
    # Upstream's acquire looks only at the head of the queue.
    clock = Clock()
    pool = Pool(["a", "b"], release_delay=5.0, clock=clock)
    a = pool.acquire()
    b = pool.acquire()
    pool.release(a)
    clock.now += 2
    pool.release(b)
    clock.now += 3
    assert pool.acquire() == "a"
    assert pool.acquire() is None
    clock.now += 2
    assert pool.acquire() == "b"


def test_fetch_a_specific_entry():
    pool = Pool([1, 2, 3])
    assert pool.fetch(2) is True
    assert pool.fetch(2) is False
    assert pool.fetch(7) is False
    assert drain(pool) == [1, 3]


def test_remove_ignores_the_delay():
    clock = Clock()
    pool = Pool([1, 2], release_delay=5.0, clock=clock)
    pool.release(pool.acquire())
    pool.remove(1)
    pool.remove(42)  # unknown: no error
    assert drain(pool) == [2]
    clock.now += 10
    assert pool.acquire() is None


def test_rotate_past():
    pool = Pool(range(6))
    assert pool.fetch(3) is True
    pool.rotate_past(3)
    assert drain(pool) == [4, 5, 0, 1, 2]


def test_rotate_past_unknown_entry_keeps_order():
    pool = Pool([1, 2, 3])
    pool.rotate_past(99)
    assert drain(pool) == [1, 2, 3]


def test_rotate_past_the_last_entry_keeps_pool_order():
    pool = Pool([1, 2, 3])
    pool.release(pool.acquire())  # queue: 2, 3, 1
    pool.rotate_past(3)
    assert drain(pool) == [1, 2, 3]


def test_contains_reflects_membership_not_availability():
    pool = Pool(["a"])
    pool.acquire()
    assert "a" in pool
    assert "z" not in pool


# ---- network pool ------------------------------------------------------------------------


def test_subnet_addresses():
    subnet = Subnet(ip("10.254.0.8"))
    assert subnet.host_ip == ip("10.254.0.9")
    assert subnet.container_ip == ip("10.254.0.10")
    assert subnet.netmask == "255.255.255.252"
    assert str(subnet) == "10.254.0.8"
    assert subnet == Subnet(ip("10.254.0.8"))
    assert len({subnet, Subnet(ip("10.254.0.8"))}) == 1


def test_network_pool_hands_out_slash30s_in_order():
    pool = NetworkPool("10.254.0.0/24", release_delay=0)
    assert len(pool) == 64
    subnets = [pool.acquire_network() for _ in range(64)]
    assert [str(s) for s in subnets[:3]] == ["10.254.0.0", "10.254.0.4", "10.254.0.8"]
    assert str(subnets[-1]) == "10.254.0.252"
    assert subnets[1].host_ip == ip("10.254.0.5") and subnets[1].container_ip == ip("10.254.0.6")
    with pytest.raises(PoolExhausted) as info:
        pool.acquire_network()
    assert str(info.value) == "Could not acquire network"


@pytest.mark.parametrize("network,count", [("10.254.0.0/22", 256), ("10.254.0.0/30", 1), ("10.254.0.0/23", 128)])
def test_network_pool_size(network, count):
    assert len(NetworkPool(network)) == count


def test_network_pool_default_release_delay_is_five_seconds():
    clock = Clock()
    pool = NetworkPool("10.254.0.0/30", clock=clock)
    pool.release(pool.acquire_network())
    with pytest.raises(PoolExhausted):
        pool.acquire_network()
    clock.now += 5
    assert str(pool.acquire_network()) == "10.254.0.0"


@pytest.mark.parametrize("address", ["10.254.0.8", "10.254.0.9", "10.254.0.10", "10.254.0.11"])
def test_fetch_the_slash30_holding_an_address(address):
    pool = NetworkPool("10.254.0.0/24", release_delay=0)
    subnet = pool.acquire_network(address)
    assert subnet == Subnet(ip("10.254.0.8"))
    assert len(pool) == 63
    assert str(pool.acquire_network()) == "10.254.0.0"  # the rest keep their order


def test_fetch_a_taken_network():
    pool = NetworkPool("10.254.0.0/24", release_delay=0)
    pool.acquire_network("10.254.0.9")
    with pytest.raises(PoolExhausted) as info:
        pool.acquire_network("10.254.0.10")
    assert str(info.value) == "Could not acquire network: 10.254.0.10"


def test_fetch_a_network_still_in_its_release_delay():
    clock = Clock()
    pool = NetworkPool("10.254.0.0/24", release_delay=5, clock=clock)
    subnet = pool.acquire_network("10.254.0.4")
    pool.release(subnet)
    with pytest.raises(PoolExhausted, match=r"^Could not acquire network: 10\.254\.0\.5$"):
        pool.acquire_network("10.254.0.5")
    clock.now += 5
    assert pool.acquire_network("10.254.0.5") == subnet


@pytest.mark.parametrize("address", ["10.254.1.1", "192.168.0.1", "10.253.255.254", "not-an-ip", "10.254.0.300", ""])
def test_fetch_an_address_outside_the_pool(address):
    pool = NetworkPool("10.254.0.0/24")
    with pytest.raises(PoolExhausted) as info:
        pool.acquire_network(address)
    assert str(info.value) == f"Could not acquire network: {address}"
    assert len(pool) == 64


def test_released_network_goes_to_the_tail():
    pool = NetworkPool("10.254.0.0/28", release_delay=0)
    first = pool.acquire_network()
    pool.release(first)
    assert [str(pool.acquire_network()) for _ in range(4)] == ["10.254.0.4", "10.254.0.8", "10.254.0.12", "10.254.0.0"]


def test_release_of_a_network_outside_the_pool_is_ignored():
    pool = NetworkPool("10.254.0.0/30", release_delay=0)
    pool.acquire_network()
    pool.release(Subnet(ip("10.1.0.0")))
    with pytest.raises(PoolExhausted):
        pool.acquire_network()


def test_network_pool_rotate_past():
    pool = NetworkPool("10.254.0.0/28", release_delay=0)
    pool.remove(Subnet(ip("10.254.0.4")))
    pool.rotate_past(Subnet(ip("10.254.0.4")))
    assert [str(pool.acquire_network()) for _ in range(3)] == ["10.254.0.8", "10.254.0.12", "10.254.0.0"]


def test_network_pool_aligns_an_unaligned_address_down_to_slash30():
    pool = NetworkPool("10.254.0.2/30", release_delay=0)
    assert str(pool.acquire_network()) == "10.254.0.0"


def test_network_pool_start_is_aligned_to_slash30_only_like_upstream():
    pool = NetworkPool("10.254.0.8/24", release_delay=0)
    assert str(pool.acquire_network()) == "10.254.0.8"
    assert len(pool) == 63


@pytest.mark.parametrize("text", ["10.254.0.0/33", "bogus", "10.254.0.0/24/1", "::1/128"])
def test_parse_network_rejects(text):
    with pytest.raises(ValueError, match="not an IPv4 network"):
        parse_network(text)


def test_parse_network_is_not_strict_about_host_bits():
    assert str(parse_network("10.254.0.7/24")) == "10.254.0.0/24"


# ---- port and uid pools ------------------------------------------------------------------


def test_port_pool():
    pool = PortPool(61001, 3)
    assert [pool.acquire_port() for _ in range(3)] == [61001, 61002, 61003]
    with pytest.raises(PoolExhausted) as info:
        pool.acquire_port()
    assert str(info.value) == "no port available"
    pool.release(61002)
    assert pool.acquire_port() == 61002  # no delay


def test_port_pool_ignores_foreign_ports():
    pool = PortPool(61001, 1)
    pool.acquire_port()
    pool.release(80)
    with pytest.raises(PoolExhausted):
        pool.acquire_port()


def passwd(tmp_path, *uids: int):
    f = tmp_path / "passwd"
    lines = ["root:x:0:0:root:/root:/bin/bash", "# comment", "", "broken line", "nobody:x:65534:65534::/:/bin/false"]
    lines += [f"user{u}:x:{u}:{u}::/home/user{u}:/bin/sh" for u in uids]
    f.write_text("\n".join(lines) + "\n")
    return str(f)


def test_uid_pool(tmp_path):
    pool = UidPool(10000, 2, passwd=passwd(tmp_path))
    assert [pool.acquire_uid(), pool.acquire_uid()] == [10000, 10001]
    with pytest.raises(PoolExhausted) as info:
        pool.acquire_uid()
    assert str(info.value) == "no uid available"
    pool.release(10000)
    assert pool.acquire_uid() == 10000


@pytest.mark.parametrize("uid", [10000, 10031, 10063])
def test_uid_pool_overlapping_passwd_is_fatal(tmp_path, uid):
    path = passwd(tmp_path, 9999, uid, 10064)
    with pytest.raises(ValueError) as info:
        UidPool(10000, 64, passwd=path)
    assert str(info.value) == f"UID in user pool overlaps with user in {path}: {uid}"


def test_uid_pool_next_to_passwd_users_is_fine(tmp_path):
    pool = UidPool(10000, 64, passwd=passwd(tmp_path, 9999, 10064))
    assert len(pool) == 64


def test_uid_pool_without_a_passwd_file(tmp_path):
    pool = UidPool(10000, 1, passwd=str(tmp_path / "missing"))
    assert pool.acquire_uid() == 10000
