"""CopyIn / CopyOut against a hostile client: paths and owners are data, never
options, and no copy reaches past the container's root through a symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .wire import ServerError


@pytest.fixture
def handle(wire):
    return wire.call("Create")["handle"]


def _refused(wire, kind, **fields) -> ServerError:
    with pytest.raises(ServerError) as err:
        wire.call(kind, **fields)
    return err.value


def test_a_source_that_looks_like_an_option_is_not_one(wire, handle, tmp_path):
    log = tmp_path / "written-by-rsync.log"
    err = _refused(wire, "CopyIn", handle=handle, src_path=f"--log-file={log}", dst_path="/x")
    assert err.message.startswith("invalid request: src_path")
    assert not log.exists()


def test_a_destination_that_looks_like_an_option_is_not_one(wire, handle, tmp_path):
    log = tmp_path / "written-by-rsync.log"
    wire.call("Run", handle=handle, script="echo data > f")
    err = _refused(wire, "CopyOut", handle=handle, src_path="/f", dst_path=f"--log-file={log}")
    assert err.message.startswith("invalid request: dst_path")
    assert not log.exists()


@pytest.mark.parametrize("host_path", ["localhost:/etc/passwd", "relative/path", "host::module", ""])
def test_host_paths_are_absolute_and_local(wire, handle, host_path):
    err = _refused(wire, "CopyIn", handle=handle, src_path=host_path, dst_path="/x")
    assert err.message.startswith("invalid request: src_path must be an absolute host path")


def test_an_owner_that_looks_like_an_option_is_not_one(wire, handle, tmp_path):
    wire.call("Run", handle=handle, script="echo data > f")
    out = tmp_path / "out"
    err = _refused(wire, "CopyOut", handle=handle, src_path="/f", dst_path=str(out), owner="--reference=/etc/shadow")
    assert err.message.startswith("invalid request: owner")
    assert not out.exists()  # refused before copying anything


@pytest.mark.parametrize("owner", ["root:", "a b", "x:y:z", "$(id)", ":"])
def test_owners_are_user_and_group_names(wire, handle, tmp_path, owner):
    err = _refused(wire, "CopyOut", handle=handle, src_path="/", dst_path=str(tmp_path / "o"), owner=owner)
    assert err.message.startswith("invalid request: owner")


def test_copy_out_does_not_follow_a_symlink_out_of_the_container(wire, handle, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    wire.call("Run", handle=handle, script=f"ln -s {tmp_path} escape && ln -s {secret} leak")
    for src in ("/escape/host-secret", "/leak"):
        out = tmp_path / f"out-{src.strip('/').replace('/', '-')}"
        try:
            wire.call("CopyOut", handle=handle, src_path=src, dst_path=str(out))
        except ServerError:
            pass
        copied = out.read_text() if out.is_file() else ""
        assert "host only" not in copied, src


def test_copy_in_does_not_write_through_a_symlink_out_of_the_container(wire, handle, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    payload = tmp_path / "payload"
    payload.write_text("from the client\n")
    wire.call("Run", handle=handle, script=f"ln -s {outside} escape")
    try:
        wire.call("CopyIn", handle=handle, src_path=str(payload), dst_path="/escape/planted")
    except ServerError:
        pass
    assert not (outside / "planted").exists()
    assert list(outside.iterdir()) == []


def test_a_symlink_inside_the_container_resolves_inside_it(wire, handle, tmp_path):
    """A link to an absolute container path is followed within the container,
    as the job inside sees it."""
    wire.call("Run", handle=handle, script="mkdir -p real && echo kept > real/f && ln -s /real alias")
    out = tmp_path / "f"
    wire.call("CopyOut", handle=handle, src_path="/alias/f", dst_path=str(out))
    assert out.read_text() == "kept\n"
    assert os.path.exists(out) and not Path(out).is_symlink()
