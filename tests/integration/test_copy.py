"""CopyIn / CopyOut with rsync semantics, insecure backend."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from .wire import ServerError


@pytest.fixture
def handle(wire):
    return wire.call("Create")["handle"]


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "script.sh", 0o750)
    (src / "sub" / "data").write_bytes(b"\x00\xffdata")
    os.symlink("sub/data", src / "link")
    os.link(src / "sub" / "data", src / "hard")
    return src


def test_copy_in_keeps_permissions_and_symlinks(wire, handle, tree):
    wire.call("CopyIn", handle=handle, src_path=str(tree), dst_path="/in")
    listing = wire.call("Run", handle=handle, script="cd in/src && stat -c '%a %F %n' script.sh link hard sub/data")
    lines = listing["stdout"].decode().splitlines()
    assert lines[0] == "750 regular file script.sh"
    assert lines[1] == "777 symbolic link link"
    assert lines[2].endswith("regular file hard")
    # Hard links are materialised: two separate files.
    links = wire.call("Run", handle=handle, script="stat -c %h in/src/hard")["stdout"]
    assert links == b"1\n"


def test_trailing_slash_copies_the_contents(wire, handle, tree):
    wire.call("CopyIn", handle=handle, src_path=f"{tree}/", dst_path="/flat")
    out = wire.call("Run", handle=handle, script="ls flat")["stdout"].decode().split()
    assert sorted(out) == ["hard", "link", "script.sh", "sub"]


def test_copy_out_round_trip_with_owner(wire, handle, tree, tmp_path):
    wire.call("CopyIn", handle=handle, src_path=f"{tree}/", dst_path="/data")
    target = tmp_path / "out"
    owner = "nobody:nogroup" if os.getuid() == 0 else None
    fields = {"owner": owner} if owner else {}
    wire.call("CopyOut", handle=handle, src_path="/data/", dst_path=str(target), **fields)
    assert (target / "sub" / "data").read_bytes() == b"\x00\xffdata"
    assert stat.S_IMODE((target / "script.sh").stat().st_mode) == 0o750
    assert os.readlink(target / "link") == "sub/data"
    if owner:
        import pwd

        assert (target / "sub" / "data").stat().st_uid == pwd.getpwnam("nobody").pw_uid


def test_copy_out_works_on_a_stopped_container(wire, handle, tmp_path):
    wire.call("Run", handle=handle, script="echo kept > kept.txt")
    wire.call("Stop", handle=handle)
    wire.call("CopyOut", handle=handle, src_path="/kept.txt", dst_path=str(tmp_path / "kept.txt"))
    assert (tmp_path / "kept.txt").read_text() == "kept\n"
    with pytest.raises(ServerError) as err:
        wire.call("CopyIn", handle=handle, src_path=str(tmp_path / "kept.txt"), dst_path="/x")
    assert err.value.message.startswith("Container state must be one of 'active'")


def test_copy_errors_are_reported(wire, handle, tmp_path):
    with pytest.raises(ServerError) as err:
        wire.call("CopyIn", handle=handle, src_path=str(tmp_path / "missing"), dst_path="/x")
    assert err.value.message == "command exited with failure"
    assert err.value.data  # rsync's own words, for the operator
    with pytest.raises(ServerError) as err:
        wire.call("CopyOut", handle=handle, src_path="/../../etc/passwd", dst_path=str(tmp_path / "p"))
    assert not Path(tmp_path / "p").exists()
