"""NetIn, NetOut and bandwidth on the Linux backend, with real traffic.

Traffic goes only to container addresses and to a client namespace this module
creates; nothing leaves the machine.
"""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest

from tests.support import wait_for

from ..integration.wire import ServerError

CLIENT_NS = "wtc-client"
HOST_SIDE, CLIENT_SIDE = "wtc-h0", "wtc-c0"
HOST_ADDR, CLIENT_ADDR = "10.254.199.1", "10.254.199.2"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def client_ns():
    """An "outside" host: a namespace reaching this host through its own veth."""
    sh("ip", "netns", "add", CLIENT_NS)
    try:
        sh("ip", "link", "add", HOST_SIDE, "type", "veth", "peer", "name", CLIENT_SIDE)
        sh("ip", "link", "set", CLIENT_SIDE, "netns", CLIENT_NS)
        sh("ip", "addr", "add", f"{HOST_ADDR}/30", "dev", HOST_SIDE)
        sh("ip", "link", "set", HOST_SIDE, "up")
        sh("ip", "-n", CLIENT_NS, "addr", "add", f"{CLIENT_ADDR}/30", "dev", CLIENT_SIDE)
        sh("ip", "-n", CLIENT_NS, "link", "set", CLIENT_SIDE, "up")
        sh("ip", "-n", CLIENT_NS, "link", "set", "lo", "up")
        yield CLIENT_NS
    finally:
        sh("ip", "link", "del", HOST_SIDE, check=False)
        sh("ip", "netns", "del", CLIENT_NS, check=False)


def listen(wire, handle, port, reply="pong"):
    """A one-shot TCP server in the container; returns once it is listening."""
    job = wire.call("Spawn", handle=handle, script=f"echo {reply} | nc -l -N {port}")["job_id"]
    wait_for(lambda: f":{port} ".encode() in wire.call(
        "Run", handle=handle, script="ss -ltn", privileged=True)["stdout"], what="listener")
    return job


def connect_from_container(wire, handle, address, port):
    return wire.call("Run", handle=handle, script=f"nc -w 2 {address} {port} </dev/null")


def test_net_in_from_an_outside_namespace_and_from_the_host(wire, container, client_ns):
    forward = wire.call("NetIn", handle=container, container_port=8080)
    assert forward["container_port"] == 8080
    listen(wire, container, 8080)
    out = sh("ip", "netns", "exec", client_ns, "nc", "-w", "3", HOST_ADDR, str(forward["host_port"]))
    assert out.stdout == "pong\n"
    listen(wire, container, 8080, reply="again")
    with socket.create_connection((HOST_ADDR, forward["host_port"]), timeout=5) as s:
        assert s.recv(64) == b"again\n"


def test_containers_are_isolated_until_net_out(wire):
    a = wire.call("Create")["handle"]
    b = wire.call("Create")["handle"]
    try:
        b_ip = wire.call("Info", handle=b)["container_ip"]
        listen(wire, b, 9000)
        denied = connect_from_container(wire, a, b_ip, 9000)
        assert denied["exit_status"] != 0 and denied["stdout"] == b""
        wire.call("NetOut", handle=a, network=b_ip, port=9000)
        allowed = connect_from_container(wire, a, b_ip, 9000)
        assert allowed["stdout"] == b"pong\n"
    finally:
        wire.call("Destroy", handle=a)
        wire.call("Destroy", handle=b)


def test_the_host_is_closed_to_containers(wire, container):
    info = wire.call("Info", handle=container)
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    port = server.getsockname()[1]
    accepted = []

    def accept() -> None:
        try:
            accepted.append(server.accept())
        except OSError:
            pass  # closed at the end of the test: nothing came in

    threading.Thread(target=accept, daemon=True).start()
    try:
        result = connect_from_container(wire, container, info["host_ip"], port)
        assert result["exit_status"] != 0
        assert not accepted
    finally:
        server.close()


def test_net_out_argument_errors(wire, container):
    with pytest.raises(ServerError) as err:
        wire.call("NetOut", handle=container)
    assert err.value.message == "Please specify network, port, and/or port_range."
    with pytest.raises(ServerError) as err:
        wire.call("NetOut", handle=container, port_range="90:80")
    assert err.value.message == "Port range maximum must be greater than minimum"
    assert wire.call("NetOut", handle=container, network="10.254.198.0/24", port_range="80:80") == {}
    assert wire.call("NetOut", handle=container, network="10.254.198.1-10.254.198.9",
                     protocol="ICMP", icmp_type=8, icmp_code=0) == {}
    assert wire.call("NetOut", handle=container, network="10.254.198.7", protocol="ALL", log=True) == {}


def test_limit_bandwidth_reads_back(wire, container):
    assert wire.call("LimitBandwidth", handle=container, rate=1000000, burst=10000) == {"rate": 1000000, "burst": 10000}
    stat = wire.call("Info", handle=container)["bandwidth_stat"]
    assert stat == {"in_rate": 1000000, "in_burst": 10000, "out_rate": 1000000, "out_burst": 10000}


def test_no_bandwidth_limit_reads_as_max(wire, container):
    stat = wire.call("Info", handle=container)["bandwidth_stat"]
    assert set(stat.values()) == {4294967295}
