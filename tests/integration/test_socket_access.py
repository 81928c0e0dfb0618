"""Who may talk to warden: the socket's mode and group (issue 11, deliverable 1).

Was: both shipped configs made the socket srwxrwxrwx root:root, and `nobody`
created a container whose job answered uid=0(root). Each check connects from a
forked child that has dropped to `nobody`, with or without the socket's group.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import uuid

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")


@pytest.fixture
def group():
    """A temporary group, removed afterwards."""
    name = f"wt{uuid.uuid4().hex[:8]}"
    subprocess.run(["groupadd", "--system", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["groupdel", name], check=False)


def gid_of(name: str) -> int:
    import grp

    return grp.getgrnam(name).gr_gid


def connect_as_nobody(path: str, groups: tuple[int, ...] = ()) -> str:
    """'ok' when `nobody` (in `groups` only) connects and gets a Ping answered, else the errno name."""
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, try, report, never return into pytest
        result = b"?"
        try:
            os.close(read)
            os.setgroups(list(groups))
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                sock.connect(path)
                sock.sendall(b"\x82\xa4type\xa4Ping\xa7payload\x80")
                result = b"ok" if sock.recv(100).startswith(b"\x82") else b"no answer"
        except OSError as exc:
            result = os.strerror(exc.errno or 0).encode()
        finally:
            os.write(write, result)
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def reachable(server) -> str:
    """The socket's directory open to all (mkdtemp makes it 0700), so only the socket's own mode decides."""
    os.chmod(server.base, 0o711)
    return server.socket_path


def test_default_socket_is_the_servers_user_only(make_server):
    server = make_server()
    path = reachable(server)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert connect_as_nobody(path) == os.strerror(13)  # EACCES


def test_a_user_outside_the_group_cannot_connect_and_one_inside_can(make_server, group):
    server = make_server(server={"unix_domain_permissions": 0o660, "unix_domain_group": group})
    path = reachable(server)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, gid_of(group), 0o660)
    assert connect_as_nobody(path) == os.strerror(13)
    assert connect_as_nobody(path, (gid_of(group),)) == "ok"


def test_group_given_as_a_gid(make_server, group):
    server = make_server(server={"unix_domain_permissions": 0o660, "unix_domain_group": gid_of(group)})
    assert os.stat(server.socket_path).st_gid == gid_of(group)


def test_world_writable_socket_only_when_the_risk_is_named(make_server):
    server = make_server(start=False, server={"unix_domain_permissions": 0o777})
    with pytest.raises(AssertionError, match="unix_domain_world_writable_i_understand_the_risk"):
        server.start()
    server = make_server(server={"unix_domain_permissions": 0o777,
                                 "unix_domain_world_writable_i_understand_the_risk": True})
    assert connect_as_nobody(reachable(server)) == "ok"  # what the old shipped configs allowed


def test_unknown_group_stops_the_server_naming_the_key(make_server):
    server = make_server(start=False, server={"unix_domain_group": f"no-such-{uuid.uuid4().hex[:6]}"})
    with pytest.raises(AssertionError, match=r"server\.unix_domain_group: no group named"):
        server.start()
