"""Framing, validation and malformed input, as an outside client sees them."""

from __future__ import annotations

import msgpack
import pytest

from .wire import ServerError


def test_invalid_request_keeps_the_connection(wire):
    wire.send("Create", grace_time=-1)
    frame = wire.recv()
    assert frame["type"] == "Error"
    assert frame["payload"]["message"].startswith("invalid request:")
    assert "grace_time" in frame["payload"]["message"]
    assert wire.call("Ping") == {}


@pytest.mark.parametrize(
    "frame, field",
    [
        ({"type": "Nope", "payload": {}}, "Nope"),
        ({"type": "Echo", "payload": {}}, "message"),
        ({"type": "Echo", "payload": {"message": "x", "extra": 1}}, "extra"),
        ({"type": "Stop", "payload": {"handle": "h", "kill": 1}}, "kill"),
        ({"type": "NetOut", "payload": {"handle": "h", "protocol": "SCTP"}}, "protocol"),
        ({"type": "Link", "payload": {"handle": "h", "job_id": 2**32}}, "job_id"),
        ({"type": "Create", "payload": {"bind_mounts": [{"src_path": "/", "dst_path": "/x"}]}}, "bind_mounts[0].mode"),
        ([1, 2], "map"),
        ("Ping", "map"),
    ],
)
def test_invalid_requests_name_the_field(wire, frame, field):
    wire.send_raw(msgpack.packb(frame, use_bin_type=True))
    reply = wire.recv()
    assert reply["type"] == "Error"
    assert reply["payload"]["message"].startswith("invalid request:")
    assert field in reply["payload"]["message"]
    assert wire.call("Ping") == {}


def test_garbage_gets_one_error_and_the_connection_closes(wire, server):
    wire.send_raw(b"\xc1\xc1\xc1")
    reply = wire.recv()
    assert reply["type"] == "Error" and reply["payload"]["message"].startswith("invalid request:")
    assert wire.is_closed()
    with server.connect() as other:
        assert other.call("Ping") == {}


def test_oversized_frame_is_refused(make_server):
    server = make_server(server={"max_request_size": 4096})
    with server.connect() as wire:
        wire.send("Echo", message="x" * 10000)
        reply = wire.recv()
        assert reply["type"] == "Error" and "larger than" in reply["payload"]["message"]
        assert wire.is_closed()


def test_pipelined_requests_answer_in_order(wire):
    handle = wire.call("Create")["handle"]
    frames = b"".join(
        msgpack.packb({"type": t, "payload": p}, use_bin_type=True)
        for t, p in [
            ("Run", {"handle": handle, "script": "sleep 0.3; echo first"}),
            ("Echo", {"message": "second"}),
            ("Info", {"handle": "missing"}),
            ("Ping", {}),
        ]
    )
    wire.send_raw(frames)
    replies = [wire.recv() for _ in range(4)]
    assert [r["type"] for r in replies] == ["Run", "Echo", "Error", "Ping"]
    assert replies[0]["payload"]["stdout"] == b"first\n"
    assert replies[1]["payload"]["message"] == "second"


def test_frames_split_byte_by_byte(wire):
    data = msgpack.packb({"type": "Echo", "payload": {"message": "split"}}, use_bin_type=True)
    for i in range(len(data)):
        wire.send_raw(data[i:i + 1])
    assert wire.recv()["payload"]["message"] == "split"


def test_stdout_is_msgpack_bin(wire):
    handle = wire.call("Create")["handle"]
    reply = wire.call("Run", handle=handle, script="echo hi; echo err >&2")
    assert reply["stdout"] == b"hi\n" and isinstance(reply["stdout"], bytes)
    assert reply["stderr"] == b"err\n" and isinstance(reply["stderr"], bytes)
    assert isinstance(reply["info"]["state"], str)


def test_error_frame_shape(wire):
    with pytest.raises(ServerError):
        wire.call("Info", handle="missing")
    wire.send("Info", handle="missing")
    frame = wire.recv()
    assert frame == {"type": "Error", "payload": {"message": "unknown handle", "backtrace": []}}
