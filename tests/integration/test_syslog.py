"""log_tag: a job's stdout and stderr copied to syslog, also after a restart."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest


@pytest.fixture
def syslog():
    path = tempfile.mktemp(prefix="wt-syslog-", dir="/tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield path, sock
    sock.close()
    os.unlink(path)


def _messages(sock, count):
    got = []
    while len(got) < count:
        got.append(sock.recv(65536))
    return got


def test_log_tag_copies_output_to_syslog(make_server, syslog):
    path, sock = syslog
    server = make_server(server={"syslog_socket": path})
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        reply = wire.call("Run", handle=handle, log_tag="app", script="echo to-out; echo to-err >&2")
        assert reply["stdout"] == b"to-out\n"  # output is still captured
    messages = _messages(sock, 2)
    assert b"<14>warden.app: to-out" in messages
    assert b"<11>warden.app: to-err" in messages


def test_log_tag_keeps_logging_across_a_restart(make_server, syslog):
    path, sock = syslog
    server = make_server(server={"syslog_socket": path})
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        job = wire.call("Spawn", handle=handle, log_tag="long",
                        script="echo before; sleep 1; echo after")["job_id"]
    assert _messages(sock, 1) == [b"<14>warden.long: before"]
    server.drain()
    server.restart()
    assert _messages(sock, 1) == [b"<14>warden.long: after"]
    with server.connect() as wire:
        assert wire.call("Link", handle=handle, job_id=job)["stdout"] == b"before\nafter\n"
