"""Container lifecycle over the wire, insecure backend."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import wait_for

from .wire import ServerError, Wire


def test_ping_echo_list(wire):
    assert wire.call("Ping") == {}
    assert wire.call("Echo", message="héllo") == {"message": "héllo"}
    assert wire.call("List") == {"handles": []}


def test_create_generates_an_11_char_base32_handle(wire):
    handle = wire.call("Create")["handle"]
    assert re.fullmatch(r"[0-9a-v]{11}", handle)
    assert wire.call("List")["handles"] == [handle]


def test_create_with_handle_and_duplicate(wire):
    assert wire.call("Create", handle="ünïcode-handle")["handle"] == "ünïcode-handle"
    with pytest.raises(ServerError) as err:
        wire.call("Create", handle="ünïcode-handle")
    assert err.value.message == "container with handle: ünïcode-handle already exists."


@pytest.mark.parametrize("handle", ["", "a/b", "x" * 256, "nul\0"])
def test_create_rejects_bad_handles(wire, handle):
    with pytest.raises(ServerError) as err:
        wire.call("Create", handle=handle)
    assert err.value.message.startswith("invalid request: handle")
    assert wire.call("List") == {"handles": []}


def test_info_of_a_new_container(wire):
    handle = wire.call("Create")["handle"]
    info = wire.call("Info", handle=handle)
    assert info["state"] == "active"
    assert info["events"] == [] and info["job_ids"] == []
    assert info["host_ip"] == "10.254.0.1" and info["container_ip"] == "10.254.0.2"
    assert Path(info["container_path"]).is_dir()


def test_create_on_a_requested_network(wire):
    handle = wire.call("Create", network="10.254.0.9")["handle"]
    info = wire.call("Info", handle=handle)
    assert (info["host_ip"], info["container_ip"]) == ("10.254.0.9", "10.254.0.10")
    with pytest.raises(ServerError) as err:
        wire.call("Create", network="10.254.0.10")
    assert err.value.message == "Could not acquire network: 10.254.0.10"


def test_unknown_handle(wire):
    for kind, extra in [("Info", {}), ("Stop", {}), ("Destroy", {}), ("Spawn", {"script": "true"}),
                        ("Link", {"job_id": 1}), ("Stream", {"job_id": 1})]:
        with pytest.raises(ServerError) as err:
            wire.call(kind, handle="nope", **extra)
        assert err.value.message == "unknown handle"


def test_stop_then_state_errors_then_destroy(wire):
    handle = wire.call("Create")["handle"]
    assert wire.call("Stop", handle=handle) == {}
    assert wire.call("Stop", handle=handle) == {}
    assert wire.call("Info", handle=handle)["state"] == "stopped"
    with pytest.raises(ServerError) as err:
        wire.call("Spawn", handle=handle, script="true")
    assert err.value.message == "Container state must be one of 'active', current state is 'stopped'"
    with pytest.raises(ServerError) as err:
        wire.call("NetIn", handle=handle)
    assert err.value.message == "Container state must be one of 'active', current state is 'stopped'"
    path = wire.call("Info", handle=handle)["container_path"]
    assert wire.call("Destroy", handle=handle) == {}
    assert not Path(path).exists()
    assert wire.call("List") == {"handles": []}
    with pytest.raises(ServerError, match="unknown handle"):
        wire.call("Destroy", handle=handle)


def test_stop_in_background_answers_at_once(wire):
    handle = wire.call("Create")["handle"]
    wire.call("Spawn", handle=handle, script="trap 'exit 37' TERM; sleep 100 & wait")
    assert wire.call("Stop", handle=handle, background=True) == {}
    wait_for(lambda: wire.call("Info", handle=handle)["state"] == "stopped", what="stopped")


def test_destroy_releases_the_network(wire):
    first = wire.call("Create")["handle"]
    wire.call("Destroy", handle=first)
    # release_delay is 0 in tests; FIFO order puts the released /30 at the tail.
    second = wire.call("Create")["handle"]
    assert wire.call("Info", handle=second)["host_ip"] == "10.254.0.5"


def test_insecure_backend_does_not_implement_limits_and_net_out(wire):
    handle = wire.call("Create")["handle"]
    for kind, fields in [("NetOut", {"network": "10.0.0.1"}), ("LimitMemory", {}), ("LimitDisk", {}),
                         ("LimitBandwidth", {"rate": 1, "burst": 1}), ("LimitCpu", {})]:
        with pytest.raises(ServerError) as err:
            wire.call(kind, handle=handle, **fields)
        assert err.value.message == "not implemented"


def test_net_in_takes_ports_from_the_pool(wire):
    handle = wire.call("Create")["handle"]
    first = wire.call("NetIn", handle=handle)
    second = wire.call("NetIn", handle=handle, host_port=1234)
    assert first["host_port"] == first["container_port"]
    assert second["host_port"] == first["host_port"] + 1


def test_grace_time_destroys_an_unreferenced_container(server):
    with server.connect() as wire:
        handle = wire.call("Create", grace_time=0)["handle"]
        path = Path(wire.call("Info", handle=handle)["container_path"])
        keep = wire.call("Create", grace_time=3600)["handle"]
    # No connection references the containers now; watch the disk, not the socket
    # (a new connection would reference every container and cancel the timer).
    wait_for(lambda: not path.exists(), what="grace-time destroy")
    with server.connect() as wire:
        # The directory goes first; the registry follows when destroy.sh returns.
        wait_for(lambda: wire.call("List")["handles"] == [keep], what="the registry to follow")


def test_a_new_connection_cancels_the_grace_timer(server):
    with server.connect() as wire:
        handle = wire.call("Create", grace_time=1)["handle"]
        path = Path(wire.call("Info", handle=handle)["container_path"])
    with server.connect() as watcher:
        # While this connection is open the container stays, past its grace time.
        with pytest.raises(AssertionError):
            wait_for(lambda: not path.exists(), timeout=2, what="no destroy")
        assert watcher.call("List")["handles"] == [handle]
    wait_for(lambda: not path.exists(), what="destroy after the last connection")


def test_concurrent_connections_do_not_block_each_other(server):
    with server.connect() as a, server.connect() as b:
        handle = a.call("Create")["handle"]
        job = a.call("Spawn", handle=handle, script="sleep 2; echo done")["job_id"]
        a.send("Link", handle=handle, job_id=job)
        assert b.call("Ping") == {}
        assert b.call("Info", handle=handle)["job_ids"] == [job]
        frame = a.recv()
        assert frame["payload"]["stdout"] == b"done\n"


def test_health_check_answers_200(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.config["health_check_server"]["port"]), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = s.recv(1024)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")


def test_pidfile_and_refusal_to_start_twice(server, make_server):
    pidfile = Path(server.config["server"]["pidfile"])
    assert int(pidfile.read_text()) == server.proc.pid
    second = make_server(start=False)
    second.config["server"]["pidfile"] = str(pidfile)
    with pytest.raises(AssertionError, match="names a running process"):
        second.start(timeout=10)
    server.drain()
    assert not pidfile.exists()


def test_stale_socket_is_replaced(make_server):
    server = make_server(start=False)
    server.base.joinpath("w.sock").write_text("stale")
    server.start()
    assert Wire(server.socket_path).call("Ping") == {}
