"""Real traffic through the rules: default deny, host access, NetOut, NetIn.

Three fake containers A, B, C (10.254.250.0/30, .4/30, .8/30) each run a
test server; the host namespace serves on its addresses (tcp 7100 and 53),
and the outside client (10.254.251.2, with no route to the pool) on 7200.
Everything runs twice: with the FORWARD policy ACCEPT and with DROP.
"""
from __future__ import annotations

import pytest

from .conftest import OUTSIDE_CLIENT_IP, OUTSIDE_HOST_IP, SKIP_REASON, Lab


@pytest.fixture(scope="module", params=["ACCEPT", "DROP"])
def lab(request):
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    lab = Lab(forward_policy=request.param)
    try:
        lab.build(3)
        for c in lab.containers:
            c.serve()
        lab.host.serve("--tcp", "7100,53")
        lab.outside.serve("--tcp", "7200", "--udp", "7200")
    except BaseException:
        lab.cleanup()
        raise
    yield lab
    try:
        for c in lab.containers:
            c.net("teardown")
        lab.global_net("teardown", pool=None)
        assert lab.warden_lines() == []
    finally:
        lab.cleanup()


def reset(lab, **global_env):
    """Global rules as given, every container with no NetIn/NetOut rules."""
    lab.global_net(**global_env)
    for c in lab.containers:
        c.net("setup")
    return lab.containers


def test_default_deny(lab):
    a, b, c = reset(lab)
    assert a.netns.tcp(b.container_ip, 7000) == "refused"
    assert not a.netns.udp(b.container_ip, 7000)
    assert not a.netns.ping(b.container_ip)
    assert b.netns.tcp(c.container_ip, 7000) == "refused"
    assert a.netns.tcp(OUTSIDE_CLIENT_IP, 7200) == "refused"
    # The host itself: neither the container's gateway nor another address.
    assert a.netns.tcp(a.host_ip, 7100) == "refused"
    assert a.netns.tcp(OUTSIDE_HOST_IP, 7100) == "refused"
    assert a.netns.tcp(b.host_ip, 7100) == "refused"
    # The host can still reach the containers, and the replies get back.
    assert lab.host.tcp(a.container_ip, 7000) == "ok"
    assert lab.host.ping(b.container_ip)


def test_dns_on_the_gateway_stays_open(lab):
    a, _, _ = reset(lab)
    assert a.netns.tcp(a.host_ip, 53) == "ok"
    assert a.netns.tcp(a.host_ip, 7100) == "refused"


def test_allow_host_access(lab):
    a, b, _ = reset(lab, allow_host_access="true")
    assert a.netns.tcp(a.host_ip, 7100) == "ok"
    assert a.netns.tcp(OUTSIDE_HOST_IP, 7100) == "ok"
    assert a.netns.ping(a.host_ip)
    # Still no way to the other containers.
    assert a.netns.tcp(b.container_ip, 7000) == "refused"
    reset(lab, allow_host_access="false")
    assert a.netns.tcp(a.host_ip, 7100) == "refused"


def test_allow_networks(lab):
    a, b, _ = reset(lab, allow_networks=OUTSIDE_CLIENT_IP)
    # The outside has no route to the pool: this works only masqueraded.
    assert a.netns.tcp(OUTSIDE_CLIENT_IP, 7200) == "ok"
    assert a.netns.udp(OUTSIDE_CLIENT_IP, 7200)
    assert b.netns.tcp(OUTSIDE_CLIENT_IP, 7200) == "ok"
    assert a.netns.tcp(b.container_ip, 7000) == "refused"
    reset(lab)
    assert a.netns.tcp(OUTSIDE_CLIENT_IP, 7200) == "refused"


def test_net_out_address(lab):
    a, b, c = reset(lab)
    a.out(NETWORK=b.container_ip)
    assert a.netns.tcp(b.container_ip, 7000) == "ok"
    assert a.netns.tcp(b.container_ip, 7004) == "ok"
    assert a.netns.tcp(c.container_ip, 7000) == "refused"
    # tcp only, and one way only.
    assert not a.netns.udp(b.container_ip, 7000)
    assert b.netns.tcp(a.container_ip, 7000) == "refused"


def test_net_out_cidr(lab):
    a, b, c = reset(lab)
    a.out(NETWORK="10.254.250.4/30")
    assert a.netns.tcp(b.container_ip, 7000) == "ok"
    assert a.netns.tcp(c.container_ip, 7000) == "refused"


def test_net_out_range(lab):
    a, b, c = reset(lab)
    a.out(NETWORK=f"{b.container_ip}-10.254.250.9")
    assert a.netns.tcp(b.container_ip, 7000) == "ok"
    assert a.netns.tcp(c.container_ip, 7000) == "refused"  # .10 is outside the range
    a.out(NETWORK=f"{b.container_ip}-{c.container_ip}")
    assert a.netns.tcp(c.container_ip, 7000) == "ok"


def test_net_out_port_and_port_range(lab):
    a, b, c = reset(lab)
    a.out(PORTS="7001")
    assert a.netns.tcp(b.container_ip, 7001) == "ok"
    assert a.netns.tcp(c.container_ip, 7001) == "ok"
    assert a.netns.tcp(b.container_ip, 7000) == "refused"
    a.out(NETWORK=c.container_ip, PORTS="7002:7003")
    assert a.netns.tcp(c.container_ip, 7002) == "ok"
    assert a.netns.tcp(c.container_ip, 7003) == "ok"
    assert a.netns.tcp(c.container_ip, 7004) == "refused"
    assert a.netns.tcp(b.container_ip, 7002) == "refused"


def test_net_out_udp(lab):
    a, b, _ = reset(lab)
    assert not a.netns.udp(b.container_ip, 7000)
    a.out(NETWORK=b.container_ip, PORTS="7000", PROTOCOL="udp")
    assert a.netns.udp(b.container_ip, 7000)
    assert a.netns.tcp(b.container_ip, 7000) == "refused"


def test_net_out_icmp_type(lab):
    a, b, c = reset(lab)
    a.out(PROTOCOL="icmp", ICMP_TYPE="8", NETWORK=b.container_ip)
    assert a.netns.ping(b.container_ip)
    assert not a.netns.ping(c.container_ip)
    assert a.netns.tcp(b.container_ip, 7000) == "refused"
    reset(lab)
    a.out(PROTOCOL="icmp", ICMP_TYPE="13")  # timestamp requests only
    assert not a.netns.ping(b.container_ip)


def test_net_out_icmp_type_and_code(lab):
    a, b, _ = reset(lab)
    a.out(PROTOCOL="icmp", ICMP_TYPE="8", ICMP_CODE="1", NETWORK=b.container_ip)
    assert not a.netns.ping(b.container_ip)  # echo requests have code 0
    a.out(PROTOCOL="icmp", ICMP_TYPE="8", ICMP_CODE="0", NETWORK=b.container_ip)
    assert a.netns.ping(b.container_ip)


def test_net_out_all(lab):
    a, b, c = reset(lab)
    a.out(PROTOCOL="all", NETWORK=b.container_ip)
    assert a.netns.tcp(b.container_ip, 7003) == "ok"
    assert a.netns.udp(b.container_ip, 7000)
    assert a.netns.ping(b.container_ip)
    assert a.netns.tcp(c.container_ip, 7000) == "refused"


def log_packets(lab, c) -> int:
    out = lab.host.exec("iptables", "-w", "-L", f"{c.chain}-log", "-v", "-x", "-n").stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "LOG":
            return int(fields[0])
    raise AssertionError(out)


def test_net_out_log_and_newest_rule_first(lab):
    a, b, _ = reset(lab)
    a.out(NETWORK=b.container_ip)
    assert a.netns.tcp(b.container_ip, 7000) == "ok"
    assert log_packets(lab, a) == 0
    # The newer rule (same match, logged) is checked first.
    a.out(NETWORK=b.container_ip, LOG="true")
    assert a.netns.tcp(b.container_ip, 7000) == "ok"
    assert log_packets(lab, a) == 1  # the SYN: only new connections are logged
    rules = lab.host.exec("iptables", "-w", "-S", a.chain).stdout.splitlines()
    assert rules[1].endswith(f"-g {a.chain}-log")
    assert rules[-1] == f"-A {a.chain} -g warden-default"


def test_net_in(lab):
    a, b, _ = reset(lab)
    a.net("in", HOST_PORT=6100, CONTAINER_PORT=7000)
    a.net("in", HOST_PORT=6101, CONTAINER_PORT=7004)
    # From another network, to the host's address on that network.
    assert lab.outside.tcp(OUTSIDE_HOST_IP, 6100) == "ok"
    assert lab.outside.tcp(OUTSIDE_HOST_IP, 6101) == "ok"
    assert lab.outside.tcp(OUTSIDE_HOST_IP, 6102) == "refused"
    # From the host itself, to any of its addresses (not loopback).
    assert lab.host.tcp(OUTSIDE_HOST_IP, 6100) == "ok"
    assert lab.host.tcp(b.host_ip, 6101) == "ok"
    assert lab.host.tcp("127.0.0.1", 6100) == "refused"
    # A published port is published to the other containers too.
    assert b.netns.tcp(OUTSIDE_HOST_IP, 6100) == "ok"
    assert b.netns.tcp(a.container_ip, 7000) == "refused"
    # Setup again (recovery) drops the forwards until they are replayed.
    a.net("setup")
    assert lab.outside.tcp(OUTSIDE_HOST_IP, 6100) == "refused"
    a.net("in", HOST_PORT=6100, CONTAINER_PORT=7000)
    assert lab.outside.tcp(OUTSIDE_HOST_IP, 6100) == "ok"


def test_net_in_after_teardown(lab):
    a, _, _ = reset(lab)
    a.net("in", HOST_PORT=6100, CONTAINER_PORT=7000)
    assert lab.outside.tcp(OUTSIDE_HOST_IP, 6100) == "ok"
    a.net("teardown")
    assert lab.outside.tcp(OUTSIDE_HOST_IP, 6100) == "refused"
    # With no chain the container's traffic ends in warden-forward's DROP.
    assert a.netns.tcp(lab.containers[1].container_ip, 7000) == "timeout"
    a.net("setup")
