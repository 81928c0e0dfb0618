"""The blocking and asyncio clients against a scripted fake server on a Unix socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import msgpack
import pytest

from tests.fake_server import CLOSE, FakeServer, error, reply
from warden.client import (
    AsyncClient,
    Chunk,
    Client,
    ConnectError,
    ConnectionClosed,
    JobResult,
    ProtocolError,
    ServerError,
)
from warden.protocol import InvalidRequest, pack

INFO = {"state": "active", "events": [], "job_ids": [7]}


def scripted(kind, payload):
    """A small warden: enough behaviour for every client operation."""
    answers = {
        "Create": lambda: reply("Create", handle=payload.get("handle") or "abc123"),
        "Spawn": lambda: reply("Spawn", job_id=7),
        "Link": lambda: reply("Link", exit_status=3, stdout=b"out\xff", stderr=b"err", info=INFO),
        "Run": lambda: reply("Run", exit_status=0, stdout=b"ran", stderr=b""),
        "Info": lambda: reply("Info", **INFO),
        "NetIn": lambda: reply("NetIn", host_port=61001, container_port=8080),
        "LimitMemory": lambda: reply("LimitMemory", limit_in_bytes=payload.get("limit_in_bytes", 1024)),
        "LimitCpu": lambda: reply("LimitCpu", limit_in_shares=512),
        "LimitBandwidth": lambda: reply("LimitBandwidth", rate=payload["rate"], burst=payload["burst"]),
        "LimitDisk": lambda: reply("LimitDisk", byte_limit=payload.get("byte_limit")),
        "List": lambda: reply("List", handles=["a", "b"]),
        "Echo": lambda: reply("Echo", message=payload["message"]),
        "Destroy": lambda: error("unknown handle", data="extra", backtrace=["x.py:1"])
        if payload["handle"] == "nope"
        else reply("Destroy"),
    }
    if kind == "Stream":
        if payload["job_id"] == 404:
            return [error("no such job")]
        return [
            reply("Stream", name="stdout", data=b"hel"),
            reply("Stream", name="stderr", data=b"\x00oops"),
            reply("Stream", name="stdout", data=b"lo"),
            reply("Stream", exit_status=2, info=INFO),
        ]
    return [answers.get(kind, lambda: reply(kind))()]


@pytest.fixture
def sock(tmp_path: Path) -> str:
    return str(tmp_path / "w.sock")


@pytest.fixture
def server(sock):
    with FakeServer(sock, scripted) as fake:
        yield fake


@pytest.fixture
def client(server, sock):
    with Client(sock) as c:
        yield c


# -- blocking client ----------------------------------------------------------------------


def test_call_returns_payload_and_sends_fields(client, server):
    assert client.call("Echo", message="hi") == {"message": "hi"}
    assert client.call("limit_memory", handle="h", limit_in_bytes=5) == {"limit_in_bytes": 5}
    assert server.requests == [("Echo", {"message": "hi"}), ("LimitMemory", {"handle": "h", "limit_in_bytes": 5})]


def test_typed_operations(client, server):
    assert client.create(handle="box", grace_time=5) == "box"
    assert client.spawn("box", "echo hi", privileged=True, rlimits={"nofile": 100}) == 7
    assert client.link("box", 7) == JobResult(3, b"out\xff", b"err", INFO)
    assert client.run("box", b"true").stdout == b"ran"
    assert client.info("box")["job_ids"] == [7]
    assert client.net_in("box", container_port=8080) == {"host_port": 61001, "container_port": 8080}
    assert client.limit_memory("box") == 1024
    assert client.limit_cpu("box", 512) == 512
    assert client.limit_bandwidth("box", rate=100, burst=10) == {"rate": 100, "burst": 10}
    assert client.limit_disk("box", byte_limit=9) == {"byte_limit": 9}
    assert client.list() == ["a", "b"]
    assert client.echo("x") == "x"
    assert client.ping() is None
    client.stop("box", kill=True)
    client.copy_out("box", "/in", "/out")
    client.net_out("box", port=80, protocol="UDP")
    client.copy_in("box", "/a", "/b")
    client.destroy("box")
    sent = dict(server.requests)
    assert sent["Create"] == {"handle": "box", "grace_time": 5, "bind_mounts": []}
    assert sent["Spawn"] == {"handle": "box", "script": "echo hi", "privileged": True, "rlimits": {"nofile": 100}}
    assert sent["Stop"] == {"handle": "box", "kill": True, "background": False}
    assert sent["CopyOut"] == {"handle": "box", "src_path": "/in", "dst_path": "/out"}  # owner unset: omitted
    assert sent["NetOut"] == {"handle": "box", "port": 80, "protocol": "UDP"}
    assert sent["LimitMemory"] == {"handle": "box"}
    assert [kind for kind, _ in server.requests][-1] == "Destroy"


def test_bin_fields_arrive_as_bytes(client):
    result = client.link("box", 7)
    assert isinstance(result.stdout, bytes) and result.stdout == b"out\xff"


def test_error_frame_raises_server_error_and_connection_stays_usable(client):
    with pytest.raises(ServerError) as caught:
        client.destroy("nope")
    assert (caught.value.message, caught.value.data, caught.value.backtrace) == ("unknown handle", "extra", ("x.py:1",))
    assert str(caught.value) == "unknown handle"
    assert client.connected
    assert client.echo("still here") == "still here"


def test_stream_yields_chunks_then_exposes_the_end(client):
    stream = client.stream("box", 7)
    chunks = list(stream)
    assert chunks == [Chunk("stdout", b"hel"), Chunk("stderr", b"\x00oops"), Chunk("stdout", b"lo")]
    assert stream.result.exit_status == 2 and stream.result.info == INFO
    assert client.echo("after") == "after"


def test_stream_collect_joins_output(client):
    assert client.stream("box", 7).collect() == JobResult(2, b"hello", b"\x00oops", INFO)


def test_stream_error_ends_the_stream_not_the_connection(client):
    stream = client.stream("box", 404)
    with pytest.raises(ServerError, match="no such job"):
        next(stream)
    assert stream.finished and list(stream) == []
    assert client.echo("ok") == "ok"


def test_abandoned_stream_closes_the_connection(client):
    with client.stream("box", 7) as stream:
        assert next(stream) == Chunk("stdout", b"hel")
    assert not client.connected
    with pytest.raises(RuntimeError):
        _ = stream.result
    assert client.echo("fresh connection") == "fresh connection"


def test_pipelined_responses_come_back_in_request_order(sock):
    # Hold every answer until the third request, then send all three in one write, so the
    # client must split one read into frames and pair them with requests by order.
    held = []

    def handler(kind, payload):
        held.append(pack(reply(kind, **({"message": payload["message"]} if kind == "Echo" else {}))))
        return [b"".join(held)] if len(held) == 3 else []

    with FakeServer(sock, handler), Client(sock) as client:
        client.send("Echo", message="first")
        client.send("Ping")
        client.send("Echo", message="third")
        assert [client.receive(), client.receive(), client.receive()] == [{"message": "first"}, {}, {"message": "third"}]


def test_call_refuses_while_pipelined_responses_are_owed(client):
    client.send("Ping")
    with pytest.raises(RuntimeError, match="still owed"):
        client.call("Ping")
    assert client.receive() == {}
    with pytest.raises(RuntimeError, match="no request"):
        client.receive()


def test_eof_raises_connection_closed_and_next_call_reconnects(sock):
    def handler(kind, payload):
        return [CLOSE] if payload.get("message") == "hang up" else [reply("Echo", message=payload["message"])]

    with FakeServer(sock, handler), Client(sock) as client:
        with pytest.raises(ConnectionClosed):
            client.echo("hang up")
        assert not client.connected
        assert client.echo("again") == "again"


def test_wrong_response_type_and_garbage_are_protocol_errors(sock):
    answers = iter([[reply("Ping")], [b"\xc1"]])  # 0xc1 is never valid msgpack
    with FakeServer(sock, lambda kind, payload: next(answers)), Client(sock) as client:
        with pytest.raises(ProtocolError, match="expected a Echo response, got Ping"):
            client.echo("x")
        assert not client.connected
        with pytest.raises(ProtocolError, match="bad data"):
            client.echo("y")


def test_invalid_request_is_refused_before_sending(client, server):
    with pytest.raises(InvalidRequest, match="unknown field 'bogus'"):
        client.call("Echo", message="x", bogus=1)
    with pytest.raises(InvalidRequest, match="unknown type"):
        client.call("Nonsense")
    with pytest.raises(ValueError, match="stream"):
        client.call("Stream", handle="h", job_id=1)
    assert server.requests == []


def test_connect_failure_names_the_socket(tmp_path):
    path = str(tmp_path / "absent.sock")
    with pytest.raises(ConnectError, match=f"cannot connect to warden at {path}"):
        Client(path).connect()


def test_large_frames_are_reassembled(sock):
    big = bytes(range(256)) * 4096  # 1 MiB: arrives over many reads
    with FakeServer(sock, lambda kind, payload: [reply("Link", exit_status=0, stdout=big)]), Client(sock) as client:
        assert client.link("h", 1).stdout == big


# -- asyncio client -----------------------------------------------------------------------


def test_async_client_same_api(server, sock):
    async def scenario():
        async with AsyncClient(sock) as client:
            assert await client.call("Echo", message="hi") == {"message": "hi"}
            assert await client.create() == "abc123"
            assert await client.spawn("box", "true") == 7
            assert (await client.link("box", 7)).stdout == b"out\xff"
            assert await client.list() == ["a", "b"]
            assert await client.limit_memory("box", 10) == 10
            with pytest.raises(ServerError, match="unknown handle"):
                await client.destroy("nope")
            stream = await client.stream("box", 7)
            chunks = [chunk async for chunk in stream]
            assert b"".join(c.data for c in chunks if c.name == "stdout") == b"hello"
            assert stream.result.exit_status == 2
            assert (await (await client.stream("box", 7)).collect()).stderr == b"\x00oops"
            await client.send("Echo", message="1")
            await client.send("Echo", message="2")
            assert [await client.receive(), await client.receive()] == [{"message": "1"}, {"message": "2"}]

    asyncio.run(scenario())


def test_async_eof_and_abandoned_stream(sock):
    def handler(kind, payload):
        if kind == "Stream":
            return [reply("Stream", name="stdout", data=b"x")]  # never terminates
        return [CLOSE] if payload.get("message") == "hang up" else [reply("Echo", message=payload["message"])]

    async def scenario():
        client = AsyncClient(sock)
        with pytest.raises(ConnectionClosed):
            await client.echo("hang up")
        assert not client.connected
        assert await client.echo("back") == "back"
        async with await client.stream("h", 1) as stream:
            assert await stream.__anext__() == Chunk("stdout", b"x")
        assert not client.connected
        await client.close()

    with FakeServer(sock, handler):
        asyncio.run(scenario())


def test_async_connect_failure_names_the_socket(tmp_path):
    path = str(tmp_path / "absent.sock")
    with pytest.raises(ConnectError, match=path):
        asyncio.run(AsyncClient(path).connect())


def test_fake_server_answers_invalid_requests_like_the_server(sock):
    with FakeServer(sock) as fake, socket.socket(socket.AF_UNIX) as raw:
        raw.connect(sock)
        raw.sendall(msgpack.packb({"type": "Echo", "payload": {}}))
        answer = msgpack.Unpacker(raw=False)
        answer.feed(raw.recv(65536))
        frame = next(answer)
    assert frame["type"] == "Error"
    assert frame["payload"]["message"] == "invalid request: missing required field 'message'"
    assert fake.requests == []
