"""root/linux/net.sh and the container's net.sh: the rules they leave behind.

Each test gets its own private host namespace (see conftest.py).
"""
from __future__ import annotations

from .conftest import POOL


def chain_rules(lab, chain: str, table: str = "filter") -> list[str]:
    out = lab.host.exec("iptables", "-w", "-t", table, "-S", chain).stdout
    return [line for line in out.splitlines() if line.startswith("-A ")]


def instance_lines(lab, c) -> list[str]:
    return [line for line in lab.iptables_save().splitlines() if c.id in line]


def test_global_setup_twice_gives_the_same_rules(make_lab):
    lab = make_lab()
    lab.global_net(allow_networks="10.254.251.2 192.0.2.0/24")
    first = lab.iptables_save()
    lab.global_net(allow_networks="10.254.251.2 192.0.2.0/24")
    assert lab.iptables_save() == first
    assert lab.host.exec("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

    assert chain_rules(lab, "FORWARD")[:2] == [
        "-A FORWARD -o w-+ -j warden-forward-in",
        "-A FORWARD -i w-+ -j warden-forward",
    ]
    assert chain_rules(lab, "warden-forward") == ["-A warden-forward -j DROP"]
    assert chain_rules(lab, "warden-default") == [
        "-A warden-default -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-A warden-default -s {POOL} -d 10.254.251.2/32 -j ACCEPT",
        f"-A warden-default -s {POOL} -d 192.0.2.0/24 -j ACCEPT",
        "-A warden-default -j REJECT --reject-with icmp-port-unreachable",
    ]
    input_rules = chain_rules(lab, "INPUT")
    assert "--comment warden-related-traffic" in input_rules[0]
    assert input_rules[-1] == (f"-A INPUT -s {POOL} -m comment --comment warden-block-traffic-to-host "
                               "-j REJECT --reject-with icmp-port-unreachable")
    assert chain_rules(lab, "PREROUTING", "nat") == ["-A PREROUTING -j warden-prerouting"]
    assert chain_rules(lab, "OUTPUT", "nat") == ["-A OUTPUT ! -d 127.0.0.0/8 -o lo -j warden-prerouting"]
    assert chain_rules(lab, "warden-postrouting", "nat") == [
        f"-A warden-postrouting -s {POOL} ! -d {POOL} -j MASQUERADE"]


def test_global_setup_goes_first_in_forward_and_input(make_lab):
    lab = make_lab()
    # A host firewall that accepts everything would otherwise win.
    lab.host.exec("iptables", "-w", "-A", "FORWARD", "-j", "ACCEPT")
    lab.host.exec("iptables", "-w", "-A", "INPUT", "-j", "ACCEPT")
    lab.global_net()
    assert chain_rules(lab, "FORWARD")[-1] == "-A FORWARD -j ACCEPT"
    assert chain_rules(lab, "FORWARD")[0] == "-A FORWARD -o w-+ -j warden-forward-in"
    assert chain_rules(lab, "INPUT")[-1] == "-A INPUT -j ACCEPT"
    assert "warden-block-traffic-to-host" in chain_rules(lab, "INPUT")[-2]
    before = lab.iptables_save()
    lab.global_net()
    assert lab.iptables_save() == before


def test_global_setup_keeps_the_containers_rules(make_lab):
    lab = make_lab(2)
    lab.global_net()
    for c in lab.containers:
        c.net("setup")
        c.net("in", HOST_PORT=6100, CONTAINER_PORT=7000)
        c.out(NETWORK="10.254.251.2", PORTS="80")
    before = lab.iptables_save()
    lab.global_net()
    assert lab.iptables_save() == before
    # warden-forward: the gotos, then still DROP last.
    rules = chain_rules(lab, "warden-forward")
    assert rules[-1] == "-A warden-forward -j DROP"
    assert len(rules) == 3


def test_pools_of_two_servers_share_the_host(make_lab):
    lab = make_lab()
    other, third = "10.254.249.0/24", "10.254.248.0/24"
    lab.global_net(allow_networks="192.0.2.1")
    lab.global_net(pool=other, allow_networks="198.51.100.0/24", allow_host_access="true")
    lab.global_net(pool=third)
    rules = lab.iptables_save()
    assert f"-A warden-default -s {POOL} -d 192.0.2.1/32 -j ACCEPT" in rules
    assert f"-A warden-default -s {other} -d 198.51.100.0/24 -j ACCEPT" in rules
    assert f"-A warden-postrouting -s {POOL} ! -d {POOL} -j MASQUERADE" in rules
    assert f"-A warden-postrouting -s {other} ! -d {other} -j MASQUERADE" in rules
    assert f"-s {POOL} -m comment --comment warden-block-traffic-to-host" in rules
    assert f"-s {other} -m comment --comment warden-block-traffic-to-host" not in rules
    # The REJECT stays last in warden-default, whoever ran last.
    assert chain_rules(lab, "warden-default")[-1].endswith("-j REJECT --reject-with icmp-port-unreachable")

    # Re-running either server's setup changes nothing.
    lab.global_net(allow_networks="192.0.2.1")
    assert lab.iptables_save() == rules
    lab.global_net(pool=other, allow_networks="198.51.100.0/24", allow_host_access="true")
    assert lab.iptables_save() == rules
    lab.global_net(pool=third)
    assert lab.iptables_save() == rules
    assert f"-s {third} -m comment --comment warden-block-traffic-to-host" in rules
    assert chain_rules(lab, "INPUT")[0].endswith("--comment warden-related-traffic -j ACCEPT")

    # Switching host access on for the first pool drops only its block rules.
    lab.global_net(allow_networks="192.0.2.1", allow_host_access="true")
    rules = lab.iptables_save()
    assert f"-s {POOL} -m comment --comment warden-block-traffic-to-host" not in rules
    assert f"-s {POOL} -d {POOL} -p udp" not in rules
    assert rules.count("warden-related-traffic") == 1
    assert rules.count("warden-block-traffic-to-host") == 1
    # And off again.
    lab.global_net(allow_networks="192.0.2.1")
    assert lab.iptables_save().count("warden-block-traffic-to-host") == 2
    assert chain_rules(lab, "INPUT")[0].endswith("--comment warden-related-traffic -j ACCEPT")


def test_global_teardown_removes_every_warden_rule(make_lab):
    lab = make_lab(2)
    lab.host.exec("iptables", "-w", "-A", "FORWARD", "-i", "wtn-out0", "-j", "ACCEPT")
    lab.global_net(allow_networks="10.254.251.2")
    lab.global_net(pool="10.254.249.0/24")
    for c in lab.containers:
        c.net("setup")
        c.net("in", HOST_PORT=6100, CONTAINER_PORT=7000)
        c.out(NETWORK="10.254.251.2", LOG="true")
    assert len(lab.warden_lines()) > 20
    lab.global_net("teardown", pool=None)
    assert lab.warden_lines() == []
    # Rules that are not ours stay.
    assert chain_rules(lab, "FORWARD") == ["-A FORWARD -i wtn-out0 -j ACCEPT"]
    lab.global_net("teardown", pool=None)
    # The containers' own teardown is fine with nothing left.
    for c in lab.containers:
        c.net("teardown")
    assert lab.warden_lines() == []


def test_pool_teardown_keeps_other_pools_and_containers(make_lab):
    lab = make_lab(1)
    lab.global_net()
    lab.global_net(pool="10.254.249.0/24")
    c = lab.containers[0]
    c.net("setup")
    lab.global_net("teardown", pool="10.254.249.0/24")
    rules = lab.iptables_save()
    assert "10.254.249.0/24" not in rules
    assert f"warden-i-{c.id}" in rules and "warden-forward" in rules
    lab.global_net("teardown")  # the last pool, but a container still has chains
    assert f"warden-i-{c.id}" in lab.iptables_save()
    c.net("teardown")
    lab.global_net("teardown")  # nothing uses the shared chains any more
    assert lab.warden_lines() == []


def test_instance_setup_and_teardown(make_lab):
    lab = make_lab(2)
    lab.global_net()
    c, other = lab.containers
    other.net("setup")
    c.net("setup")
    assert sorted(instance_lines(lab, c)) == sorted([
        f":{c.chain} - [0:0]",
        f":{c.chain}-log - [0:0]",
        f"-A warden-forward -i {c.host_iface} -g {c.chain}",
        f"-A {c.chain} -g warden-default",
        f'-A {c.chain}-log -m conntrack --ctstate NEW -j LOG --log-prefix "{c.chain} "',
        f"-A {c.chain}-log -j ACCEPT",
        f":{c.chain} - [0:0]",  # nat
        f"-A warden-prerouting -j {c.chain}",
    ])
    assert chain_rules(lab, "warden-forward")[-1] == "-A warden-forward -j DROP"
    fresh = lab.iptables_save()

    # Setup again (as recovery does): the same chains, emptied.
    c.net("in", HOST_PORT=6100, CONTAINER_PORT=7000)
    c.out(NETWORK="10.254.251.2")
    c.net("setup")
    assert sorted(lab.iptables_save().splitlines()) == sorted(fresh.splitlines())

    c.net("in", HOST_PORT=6100, CONTAINER_PORT=7000)
    c.out(NETWORK="10.254.251.2", LOG="true")
    c.net("teardown")
    assert instance_lines(lab, c) == []
    assert instance_lines(lab, other) != []
    c.net("teardown")
    other.net("teardown")
    assert [line for line in lab.warden_lines() if "warden-i-" in line] == []


def test_instance_setup_repairs_a_half_state(make_lab):
    lab = make_lab(1)
    lab.global_net()
    c = lab.containers[0]
    # Only the nat chain exists, and warden-forward has the goto twice.
    lab.host.exec("iptables", "-w", "-t", "nat", "-N", c.chain)
    lab.host.exec("iptables", "-w", "-N", c.chain)
    for _ in range(2):
        lab.host.exec("iptables", "-w", "-I", "warden-forward", "1", "-i", c.host_iface, "-g", c.chain)
    c.net("setup")
    lines = instance_lines(lab, c)
    assert lines.count(f"-A warden-forward -i {c.host_iface} -g {c.chain}") == 1
    assert lines.count(f"-A warden-prerouting -j {c.chain}") == 1
    assert f"-A {c.chain} -g warden-default" in lines
    # A teardown of a half state works too.
    lab.host.exec("iptables", "-w", "-F", f"{c.chain}-log")
    lab.host.exec("iptables", "-w", "-D", "warden-forward", "-i", c.host_iface, "-g", c.chain)
    c.net("teardown")
    assert instance_lines(lab, c) == []


def test_instance_setup_needs_the_global_chains(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    res = c.net("setup", check=False)
    assert res.returncode == 1
    assert "root/linux/net.sh setup" in res.stderr
    assert lab.warden_lines() == []
    c.net("teardown")


def test_usage_errors(make_lab):
    lab = make_lab(1)
    c = lab.containers[0]
    res = lab.global_net("bogus", check=False)
    assert res.returncode == 1 and "usage" in res.stderr
    res = lab.global_net(pool="", check=False)
    assert res.returncode == 1 and "POOL_NETWORK" in res.stderr
    res = lab.global_net(pool="10.254.250.0/33", check=False)
    assert res.returncode == 1 and "POOL_NETWORK" in res.stderr
    res = lab.global_net(allow_networks="example.com", check=False)
    assert res.returncode == 1 and "ALLOW_NETWORKS" in res.stderr
    res = lab.global_net(allow_host_access="yes", check=False)
    assert res.returncode == 1 and "ALLOW_HOST_ACCESS" in res.stderr
    assert lab.warden_lines() == []
    res = c.net("bogus", check=False)
    assert res.returncode == 1 and "usage" in res.stderr


def test_net_in_and_out_argument_errors(make_lab):
    lab = make_lab(1)
    lab.global_net()
    c = lab.containers[0]
    c.net("setup")
    before = lab.iptables_save()
    bad_in = [
        ({"CONTAINER_PORT": "80"}, "Please specify HOST_PORT"),
        ({"HOST_PORT": "80"}, "Please specify CONTAINER_PORT"),
        ({"HOST_PORT": "0", "CONTAINER_PORT": "80"}, "HOST_PORT"),
        ({"HOST_PORT": "80", "CONTAINER_PORT": "65536"}, "CONTAINER_PORT"),
    ]
    for env, message in bad_in:
        res = c.net("in", check=False, **env)
        assert res.returncode == 1 and message in res.stderr, (env, res.stderr)
    bad_out = [
        ({}, "Please specify NETWORK and/or PORTS"),
        ({"PROTOCOL": "icmp", "PORTS": "80"}, "PORTS needs PROTOCOL tcp or udp"),
        ({"PROTOCOL": "all", "PORTS": "80", "NETWORK": "10.0.0.1"}, "PORTS needs PROTOCOL tcp or udp"),
        ({"PROTOCOL": "sctp", "PORTS": "80"}, "PROTOCOL must be"),
        ({"PORTS": "90:80"}, "Port range maximum must be greater than minimum"),
        ({"PORTS": "http"}, "PORTS must be"),
        ({"NETWORK": "10.0.0.300"}, "NETWORK"),
        ({"NETWORK": "10.0.0.1-10.0.0"}, "NETWORK"),
        ({"PROTOCOL": "icmp", "ICMP_CODE": "0"}, "ICMP_CODE needs an ICMP_TYPE"),
        ({"PROTOCOL": "icmp", "ICMP_TYPE": "256"}, "ICMP_TYPE"),
        ({"PROTOCOL": "tcp", "PORTS": "80", "ICMP_TYPE": "8"}, "need PROTOCOL icmp"),
    ]
    for env, message in bad_out:
        res = c.out(check=False, **env)
        assert res.returncode == 1 and message in res.stderr, (env, res.stderr)
    assert lab.iptables_save() == before
    # -1 means "any" for the ICMP type and code, as the server sends it.
    c.out(PROTOCOL="icmp", ICMP_TYPE="-1", ICMP_CODE="-1")
    assert chain_rules(lab, c.chain)[0] == f"-A {c.chain} -p icmp -j ACCEPT"


def test_net_out_rule_shapes_newest_first(make_lab):
    lab = make_lab(1)
    lab.global_net()
    c = lab.containers[0]
    c.net("setup")
    c.out(NETWORK="10.254.250.4")
    c.out(NETWORK="10.254.250.0/30", PORTS="7000:7003", PROTOCOL="udp")
    c.out(NETWORK="10.254.250.6-10.254.250.10", PORTS="7001")
    c.out(PROTOCOL="icmp", ICMP_TYPE="8", ICMP_CODE="0", NETWORK="10.254.250.6")
    c.out(PROTOCOL="all", NETWORK="10.254.250.8/30", LOG="true")
    assert chain_rules(lab, c.chain) == [
        f"-A {c.chain} -d 10.254.250.8/30 -g {c.chain}-log",
        f"-A {c.chain} -d 10.254.250.6/32 -p icmp -m icmp --icmp-type 8/0 -j ACCEPT",
        f"-A {c.chain} -p tcp -m iprange --dst-range 10.254.250.6-10.254.250.10 -m tcp --dport 7001 -j ACCEPT",
        f"-A {c.chain} -d 10.254.250.0/30 -p udp -m udp --dport 7000:7003 -j ACCEPT",
        f"-A {c.chain} -d 10.254.250.4/32 -p tcp -j ACCEPT",
        f"-A {c.chain} -g warden-default",
    ]
    c.net("in", HOST_PORT="6100", CONTAINER_PORT="7000")
    assert chain_rules(lab, c.chain, "nat") == [
        f"-A {c.chain} -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 6100 "
        f"-j DNAT --to-destination {c.container_ip}:7000"]


def test_allow_everything_is_still_a_no_op_to_repeat(make_lab):
    # Rules only, no containers: this namespace has no route out anyway.
    lab = make_lab()
    lab.global_net(pool="10.254.250.9/24", allow_networks="0.0.0.0/0 10.1.2.3/8")
    first = lab.iptables_save()
    assert f"-A warden-default -s {POOL} -j ACCEPT" in first
    assert f"-A warden-default -s {POOL} -d 10.0.0.0/8 -j ACCEPT" in first
    lab.global_net(pool="10.254.250.9/24", allow_networks="0.0.0.0/0 10.1.2.3/8")
    assert lab.iptables_save() == first
