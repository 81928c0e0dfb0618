"""A hostile client gets nothing: bounded memory per connection, a bounded number
of connections, and an answer to every frame (issue 11, deliverable 3).

Each test is the attack itself, run against a real insecure server; the bounds
are generous (tens of MiB where the attack used hundreds) and about correctness.
"""

from __future__ import annotations

import json
import resource
import select
import socket
import struct
import time
from pathlib import Path

import msgpack
import pytest

from .wire import Wire

MIB = 1 << 20
PING = msgpack.packb({"type": "Ping", "payload": {}})


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def send_until_stalled(sock: socket.socket, chunks, stall: float = 3.0) -> int:
    """Send chunks without reading; return how many whole chunks went out before
    the peer stopped reading (no room in the socket for `stall` seconds) or all did."""
    sock.setblocking(False)
    sent = 0
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                try:
                    view = view[sock.send(view):]
                except BlockingIOError:
                    _, writable, _ = select.select([], [sock], [], stall)
                    if not writable:
                        return sent
                except (BrokenPipeError, ConnectionResetError):
                    return sent
            sent += 1
        return sent
    finally:
        sock.setblocking(True)


def wait_for(condition, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def expect_closed_with(wire: Wire, needle: str) -> None:
    reply = wire.recv()
    assert reply["type"] == "Error", reply
    assert reply["payload"]["message"].startswith("invalid request:"), reply
    assert needle in reply["payload"]["message"], reply
    assert wire.is_closed()


# ---- frames: the byte cap holds however a frame arrives ------------------------------


def test_frame_of_many_bins_over_the_cap_is_refused_before_it_ends(make_server):
    """Was: a 512 MiB frame of 64 KiB bins was accepted (peak RSS 611 MiB)."""
    server = make_server(server={"max_request_size": 4 * MIB})
    before = rss_mib(server.pid)
    count = 1024  # 64 MiB in all, sixteen times the cap
    with server.connect() as wire:
        head = b"\x82\xa4type\xa4Echo\xa7payload\x81\xa7message" + b"\xdd" + struct.pack(">I", count)
        chunks = [head] + [b"\xc5\xff\xff" + b"x" * 0xFFFF] * count
        sent = send_until_stalled(wire.sock, chunks)
        assert sent < count // 2, f"the server read {sent} of {count} 64 KiB bins of one frame"
        expect_closed_with(wire, "frame larger than")
    assert rss_mib(server.pid) - before < 48
    with server.connect() as other:
        assert other.call("Ping") == {}


def test_unfinished_frame_is_refused_at_the_cap(make_server):
    """Was: an unfinished frame grew the server by 300 MiB."""
    server = make_server(server={"max_request_size": 4 * MIB})
    before = rss_mib(server.pid)
    with server.connect() as wire:
        # An array of 2^20 1 KiB bins (1 GiB) announced, never finished: 64 MiB of it sent.
        bins = (b"\xc5\x03\xfd" + b"y" * 1021) * 1024
        chunks = [b"\x82\xa4type\xa4Echo\xa7payload\x81\xa7message\xdd\x00\x10\x00\x00"] + [bins] * 64
        sent = send_until_stalled(wire.sock, chunks)
        assert sent < 32, f"the server read {sent} MiB of one frame"
        expect_closed_with(wire, "frame larger than")
    assert rss_mib(server.pid) - before < 48


def test_frame_of_empty_arrays_does_not_expand(make_server):
    """Was: a 16 MiB frame of empty arrays took RSS from 81 to 1,229 MiB."""
    server = make_server()
    before = rss_mib(server.pid)
    count = 16 * MIB - 64
    with server.connect() as wire:
        wire.send_raw(b"\x82\xa4type\xa4Echo\xa7payload\x81\xa7message\xdd" + struct.pack(">I", count)
                      + b"\x90" * count)
        reply = wire.recv()
        assert reply["type"] == "Error" and reply["payload"]["message"].startswith("invalid request:")
        peak = rss_mib(server.pid)
        assert wire.call("Ping") == {}  # its boundaries were known: the connection goes on
    assert peak - before < 100


def test_frame_nested_past_the_depth_bound_is_refused(wire):
    wire.send_raw(b"\x82\xa4type\xa4Echo\xa7payload\x81\xa7message" + b"\x91" * 200 + b"\xc0")
    reply = wire.recv()
    assert reply["type"] == "Error" and "deep" in reply["payload"]["message"], reply
    assert wire.call("Ping") == {}


# ---- requests: a bounded queue per connection ---------------------------------------


def test_pipelined_pings_never_read_are_backpressured(server):
    """Was: 2,000,000 pipelined Pings never read took the server from 24 to 655 MiB."""
    before = rss_mib(server.pid)
    total = 2_000_000
    batch = 1000
    with server.connect() as wire:
        sent = send_until_stalled(wire.sock, (PING * batch for _ in range(total // batch)))
        grown = rss_mib(server.pid) - before
        assert sent < total // batch, "the server read all 2,000,000 Pings without answers being read"
        assert grown < 100, f"RSS grew by {grown:.0f} MiB"
        # Backpressure, not a drop: every Ping sent is answered, in order.
        wire.sock.settimeout(60)
        for _ in range(sent * batch):
            assert wire.recv() == {"type": "Ping", "payload": {}}
        assert wire.call("Echo", message="after") == {"message": "after"}


# ---- connections: a bounded number, one log line per burst --------------------------


def log_lines(server) -> list[dict]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_connections_over_the_limit_are_refused_with_an_error(make_server):
    server = make_server(server={"max_connections": 8})
    idle = [server.connect() for _ in range(8)]
    try:
        for wire in idle:  # all eight are served
            assert wire.call("Ping") == {}
        refused = [server.connect() for _ in range(40)]
        for wire in refused:
            wire.sock.settimeout(10)
            reply = wire.recv()
            assert reply["type"] == "Error" and "too many connections" in reply["payload"]["message"], reply
            assert wire.is_closed()
            wire.close()
        lines = [e for e in log_lines(server) if "too many connections" in e["message"]]
        assert 1 <= len(lines) <= 2, lines
        assert not [e for e in log_lines(server) if e.get("backtrace")]
        idle.pop().close()
        wait_for(lambda: _connect_and_ping(server), what="a freed slot").close()
    finally:
        for wire in idle:
            wire.close()


def _pings(wire: Wire) -> bool:
    wire.send("Ping")
    try:
        return wire.recv()["type"] == "Ping"
    except EOFError:
        return False


def test_running_out_of_file_descriptors_is_one_log_line_not_a_flood(make_server):
    """Was: with 256 fds, 300 idle clients locked new clients out and the server
    printed 16,255 tracebacks in 10 s."""
    server = make_server()
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (64, 64))
    clients = [Wire(server.socket_path, timeout=10) for _ in range(150)]
    try:
        answered = refused = 0
        for wire in clients:  # every client gets an answer: a Ping, or an Error and EOF
            try:
                wire.send("Ping")
                reply = wire.recv()
            except (EOFError, ConnectionResetError, BrokenPipeError):
                refused += 1
                continue
            if reply["type"] == "Ping":
                answered += 1
            else:
                assert "out of file descriptors" in reply["payload"]["message"], reply
                refused += 1
        assert answered >= 10 and refused >= 50, (answered, refused)
        assert server.running
        tracebacks = [e for e in log_lines(server) if e.get("backtrace")]
        assert not tracebacks and "Traceback" not in server.stderr(), tracebacks[:2] or server.stderr()[-2000:]
        lines = [e for e in log_lines(server) if "refusing new clients" in e["message"]]
        assert len(lines) == 1, lines
    finally:
        for wire in clients:
            wire.close()
    wire = wait_for(lambda: _connect_and_ping(server), what="a Ping once the clients are gone")
    wire.close()


def _connect_and_ping(server):
    try:
        wire = Wire(server.socket_path, timeout=10)
    except OSError:
        return None
    if _pings(wire):
        return wire
    wire.close()
    return None


# ---- answers: no answer path can raise ------------------------------------------------


def nested(depth: int):
    value: object = "TCP"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("kind, payload", [
    ("NetOut", {"handle": "h", "protocol": nested(1000)}),
    ("Create", {"bind_mounts": [{"src_path": "/a", "dst_path": "/b", "mode": nested(1000)}]}),
    ("Echo", {"message": nested(1000)}),
    ("Create", {"handle": nested(1000)}),
    ("Spawn", {"handle": "h", "script": "true", "rlimits": {"nofile": nested(1000)}}),
])
def test_deeply_nested_value_gets_an_error_and_the_connection_goes_on(wire, kind, payload):
    """Was: a list nested ~1,000 deep as NetOut.protocol made the error's repr()
    raise RecursionError, and that connection never answered again."""
    wire.sock.settimeout(20)
    wire.send_raw(msgpack.packb({"type": kind, "payload": payload}))
    reply = wire.recv()
    assert reply["type"] == "Error" and reply["payload"]["message"].startswith("invalid request:"), reply
    assert wire.call("Ping") == {}
