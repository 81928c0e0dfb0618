"""The `warden` REPL: flags, output, help, one-shot and interactive modes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.fake_server import CLOSE, FakeServer, error, reply
from warden.protocol import catalogue
from warden.repl import run_cli
from warden.repl.commands import commands, lookup
from warden.repl.completion import candidates
from warden.repl.errors import FlagError, HelpRequested
from warden.repl.flags import parse_flags
from warden.repl.help import command_help, command_table
from warden.repl.history import History
from warden.repl.output import render


def flags(command: str, *tokens: str) -> dict:
    return parse_flags(lookup(command), list(tokens))


# -- flags ---------------------------------------------------------------------------------


def test_flags_of_every_scalar_kind():
    assert flags("net_out", "--handle", "h", "--port", "80", "--protocol", "udp", "--log", "--icmp_type", "-3") == {
        "handle": "h", "port": 80, "protocol": "UDP", "log": True, "icmp_type": -3,
    }
    assert flags("stop", "--handle=h", "--kill=false", "--background") == {"handle": "h", "kill": False, "background": True}
    assert flags("echo", "--message", "--looks-like-a-flag") == {"message": "--looks-like-a-flag"}


def test_nested_and_repeated_flags():
    payload = flags(
        "create",
        "--bind_mounts[0].src_path", "/x", "--bind_mounts[0].dst_path", "/y", "--bind_mounts[0].mode", "ro",
        "--bind_mounts[1].src_path", "/a", "--bind_mounts[1].dst_path", "/b", "--bind_mounts[1].mode", "RW",
        "--bind_mounts[1].dst_path", "/c",  # length - 1 amends the last element
    )
    assert payload["bind_mounts"] == [
        {"src_path": "/x", "dst_path": "/y", "mode": "RO"},
        {"src_path": "/a", "dst_path": "/c", "mode": "RW"},
    ]
    assert flags("spawn", "--handle", "h", "--script", "s", "--rlimits.nofile", "100", "--rlimits.as", "7")["rlimits"] == {
        "nofile": 100, "as": 7,
    }


@pytest.mark.parametrize(
    ("command", "tokens", "message"),
    [
        ("create", ["--bind_mounts[1].src_path", "/x"], "the index: 1 is invalid; use 0 (append)."),
        ("create", ["--bind_mounts.src_path", "/x"], "the field: 'bind_mounts' is an array"),
        ("create", ["--handle[0]", "x"], "the field: 'handle' is not an array"),
        ("create", ["--bind_mounts[0].nope", "x"], "In flag: '--bind_mounts[0].nope', the field: 'nope' is invalid."),
        ("create", ["--nope", "x"], "In flag: '--nope', the field: 'nope' is invalid."),
        ("create", ["handle", "x"], "Invalid flag: 'handle'."),
        ("create", ["--bad-name", "x"], "Invalid flag: '--bad-name'."),
        ("create", ["--handle"], "Missing value for flag: '--handle'."),
        ("create", ["--handle.x", "y"], "the field: 'handle' has no nested fields."),
        ("spawn", ["--handle", "h", "--script", "s", "--rlimits", "5"], "the field: 'rlimits' has fields of its own"),
        ("link", ["--handle", "h", "--job_id", "12x"], "the value: '12x' is not an integer."),
        ("link", ["--handle", "h", "--job_id", "1.0"], "is not an integer."),
        ("link", ["--handle", "h", "--job_id", "4294967296"], "out of range for uint32 (0..4294967295)."),
        ("link", ["--handle", "h", "--job_id", "-1"], "out of range for uint32"),
        ("net_out", ["--handle", "h", "--icmp_code", "2147483648"], "out of range for int32"),
        ("limit_memory", ["--handle", "h", "--limit_in_bytes", str(2**64)], "out of range for uint64"),
        ("net_out", ["--handle", "h", "--protocol", "sctp"], "'sctp' is not one of TCP, UDP, ICMP, ALL."),
        ("stop", ["--handle", "h", "--kill=yes"], "'yes' is not true or false."),
        ("spawn", ["--handle", "h"], "Command: 'spawn' needs the flag: '--script'."),
        ("create", ["--bind_mounts[0].src_path", "/x", "--bind_mounts[0].mode", "RO"], "needs the flag: '--bind_mounts[0].dst_path'."),
    ],
)
def test_flag_errors(command, tokens, message):
    with pytest.raises(FlagError) as caught:
        flags(command, *tokens)
    assert message in str(caught.value)


def test_integer_bounds_are_inclusive():
    assert flags("link", "--handle", "h", "--job_id", "4294967295")["job_id"] == 2**32 - 1
    assert flags("net_out", "--handle", "h", "--icmp_code", "-2147483648")["icmp_code"] == -(2**31)


def test_help_flag_anywhere_among_flags():
    with pytest.raises(HelpRequested):
        flags("create", "--handle", "x", "--help")


# -- output --------------------------------------------------------------------------------


def test_render_flattens_responses():
    payload = {
        "state": "active",
        "events": ["a", "b"],
        "host_ip": None,
        "memory_stat": {"cache": 1, "rss": 2},
        "job_ids": [],
        "log": False,
        "flag": True,
        "stdout": b"caf\xc3\xa9 \xff",
    }
    assert render(payload) == [
        "state : active",
        "events[0] : a",
        "events[1] : b",
        "memory_stat.cache : 1",
        "memory_stat.rss : 2",
        "log : false",
        "flag : true",
        "stdout : café \ufffd",
    ]
    assert render({}) == []


# -- help ------------------------------------------------------------------------------------


def test_command_table_lists_every_request_type_from_the_catalogue():
    table = command_table()
    lines = table.splitlines()
    cat = catalogue()
    for name in cat.request_types():
        snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
        assert any(line.startswith(f"\t{snake} ") for line in lines), snake
    assert "\tlimit_bandwidth" in table and cat.messages["LimitBandwidth"].doc in table
    assert lines[-3].split() == ["help", "Show", "help."]
    assert lines[-1] == "Use --help with each command for more information."
    assert len({line.index(line.split()[1]) for line in lines if line.startswith("\t")}) == 1  # one column


def test_command_help_is_generated_from_the_spec():
    text = command_help(lookup("create"))
    lines = text.splitlines()
    assert lines[:3] == ["command: create", "description: Create a container.", "usage: create [options]"]
    assert "[options] can be one of the following:" in lines
    assert "\t[--bind_mounts[index] (BindMount)]  # array" in lines
    assert "\t\t.src_path <src_path> (string)  # required; path on the host" in lines
    assert "\t\t.mode <mode> (RO|RW)  # required; RO or RW" in lines
    assert "\t[--grace_time <grace_time> (uint32)]  # optional; seconds to keep the container once unreferenced" in lines
    stop = command_help(lookup("stop")).splitlines()
    assert stop.index("\t--handle <handle> (string)  # required") < stop.index("\t[--kill (bool)]  # optional (default: false)")
    assert "\t[--protocol <protocol> (TCP|UDP|ICMP|ALL)]  # optional (default: TCP)" in command_help(lookup("net_out"))
    for command in commands().values():
        for field in command.fields:
            assert f"--{field}" in command_help(command)


def test_help_commands_and_option(tmp_path):
    for argv in (["--", "help"], ["--", "--help"]):
        status, out, _ = cli(tmp_path, *argv)
        assert status == 0 and out == command_table()
    for argv in (["--", "create", "--help"], ["--", "create", "help"], ["--", "create", "--handle", "x", "--help"]):
        status, out, _ = cli(tmp_path, *argv)
        assert status == 0 and out.startswith("command: create\n")
    status, out, _ = cli(tmp_path, "--help")
    assert status == 0
    assert out.startswith("Usage: warden [options] -- [command and its flags]")
    assert "--exit_on_error" in out and "[commands] can be one of the following separated by a newline." in out
    assert out.rstrip().endswith("Use --help with each command for more information.")


# -- one-shot mode ------------------------------------------------------------------------


def cli(tmp_path: Path, *argv: str, stdout=None, lines=None, history=None) -> tuple[int, str, str]:
    out, err = stdout or io.BytesIO(), io.BytesIO()
    script = iter(lines or [])

    def read_line(prompt: str) -> str:
        item = next(script, EOFError)
        if isinstance(item, type) and issubclass(item, BaseException):
            raise item
        return item

    status = run_cli(
        ["--socket", str(tmp_path / "w.sock"), *argv],
        stdout=out,
        stderr=err,
        read_line=read_line,
        history=history or History(tmp_path / "history.json"),
    )
    return status, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")


def job_server(kind, payload):
    if kind == "Spawn":
        return [reply("Spawn", job_id=9)]
    if kind == "Stream":
        return [
            reply("Stream", name="stdout", data=b"out \xff"),
            reply("Stream", name="stderr", data=b"err"),
            reply("Stream", exit_status=3),
        ]
    if kind == "Destroy":
        return [error("unknown handle")]
    if kind == "Echo":
        return [reply("Echo", message=payload["message"])]
    if kind == "Info":
        return [reply("Info", state="active", events=[], job_ids=[1, 2])]
    return [reply(kind)]


@pytest.fixture
def server(tmp_path):
    with FakeServer(str(tmp_path / "w.sock"), job_server) as fake:
        yield fake


def test_one_shot_prints_fields(tmp_path, server):
    assert cli(tmp_path, "--", "echo", "--message", "hi there") == (0, "message : hi there\n", "")
    assert cli(tmp_path, "--", "info", "--handle", "h") == (0, "state : active\njob_ids[0] : 1\njob_ids[1] : 2\n", "")
    assert cli(tmp_path, "--", "ping") == (0, "", "")


def test_one_shot_trace(tmp_path, server):
    assert cli(tmp_path, "--trace", "--", "echo", "--message", "x")[1] == "+ echo --message x\nmessage : x\n"


def test_one_shot_errors_exit_1_with_message(tmp_path, server):
    assert cli(tmp_path, "--", "destroy", "--handle", "h") == (1, "", "unknown handle\n")
    assert cli(tmp_path, "--", "frobnicate") == (1, "", "Command: 'frobnicate' is non-existent.\n")
    assert cli(tmp_path, "--", "echo", "--nope", "x") == (1, "", "In flag: '--nope', the field: 'nope' is invalid.\n")
    assert server.requests == [("Destroy", {"handle": "h"})]


def test_delimiter_twice_and_bad_options(tmp_path):
    status, _, err = cli(tmp_path, "--", "echo", "--message", "--")
    assert status == 1 and err.startswith("Delimiter: '--' specified multiple times.\n")
    status, _, err = cli(tmp_path, "--frob")
    assert status == 1 and "Invalid option: '--frob'." in err


def test_connect_failure_names_the_socket(tmp_path):
    status, _, err = cli(tmp_path, "--", "ping")
    assert status == 1 and f"cannot connect to warden at {tmp_path / 'w.sock'}" in err


def test_run_is_spawn_then_stream_and_exits_with_the_job_status(tmp_path, server):
    out, err = io.BytesIO(), io.BytesIO()
    status = run_cli(
        ["--socket", server.socket_path, "--", "run", "--handle", "h", "--script", "echo hi",
         "--privileged", "--rlimits.nofile", "10"],
        stdout=out, stderr=err,
    )
    assert status == 3
    assert out.getvalue() == b"out \xff" and err.getvalue() == b"err"
    assert server.requests == [
        ("Spawn", {"handle": "h", "script": "echo hi", "privileged": True, "rlimits": {"nofile": 10}}),
        ("Stream", {"handle": "h", "job_id": 9}),
    ]


def test_stream_command_ignores_the_exit_status(tmp_path, server):
    status, out, err = cli(tmp_path, "--", "stream", "--handle", "h", "--job_id", "9")
    assert (status, err) == (0, "err")
    assert out.startswith("out ")


class FlushWatcher(io.BytesIO):
    """Sets `seen` once `expected` has been written and flushed."""

    def __init__(self, expected: bytes) -> None:
        super().__init__()
        self.expected = expected
        self.seen = threading.Event()

    def flush(self) -> None:
        super().flush()
        if self.expected in self.getvalue():
            self.seen.set()


def test_run_output_is_live(tmp_path):
    watcher = FlushWatcher(b"first chunk")

    def handler(kind, payload):
        if kind == "Spawn":
            yield reply("Spawn", job_id=1)
            return
        yield reply("Stream", name="stdout", data=b"first chunk")
        # The job only "ends" once the REPL has shown the first chunk.
        yield reply("Stream", exit_status=0 if watcher.seen.wait(10) else 99)

    with FakeServer(str(tmp_path / "w.sock"), handler):
        status, out, _ = cli(tmp_path, "--", "run", "--handle", "h", "--script", "x", stdout=watcher)
    assert (status, out) == (0, "first chunk")


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "warden.repl", "--", "nope"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr) == (1, "Command: 'nope' is non-existent.\n")


# -- interactive mode ----------------------------------------------------------------------


def test_interactive_runs_lines_and_keeps_going_after_errors(tmp_path, server):
    lines = ["echo --message 'two words'", "", "bogus", "run --handle h --script x", "echo --message after"]
    status, out, err = cli(tmp_path, lines=lines)
    assert status == 0  # EOF ends the session successfully
    assert out == "message : two words\nout \ufffdmessage : after\n"
    assert err == "Command: 'bogus' is non-existent.\nerr"
    saved = json.loads((tmp_path / "history.json").read_text())
    assert saved == [line for line in lines if line]


def test_interactive_exit_on_error(tmp_path, server):
    assert cli(tmp_path, "--exit_on_error", lines=["destroy --handle h", "ping"])[0] == 1
    assert [kind for kind, _ in server.requests] == ["Destroy"]
    assert cli(tmp_path, "--exit_on_error", lines=["run --handle h --script x", "ping"])[0] == 3
    assert cli(tmp_path, lines=["run --handle h --script x"])[0] == 0
    assert cli(tmp_path, "--exit_on_error", lines=["echo --message 'unclosed"])[0] == 1


def test_interactive_ctrl_c(tmp_path):
    assert cli(tmp_path, lines=[KeyboardInterrupt]) == (0, "", "\n\nExiting...\n")


def test_interactive_reconnects_once_when_the_connection_broke(tmp_path):
    hung_up = []

    def handler(kind, payload):
        if not hung_up:
            hung_up.append(True)
            return [CLOSE]
        return [reply("Echo", message=payload["message"])]

    with FakeServer(str(tmp_path / "w.sock"), handler) as fake:
        status, out, err = cli(tmp_path, lines=["echo --message again"])
    assert (status, out, err) == (0, "message : again\n", "Reconnecting...\n")
    assert [kind for kind, _ in fake.requests] == ["Echo", "Echo"]


def test_history_tolerates_missing_and_corrupt_files(tmp_path):
    path = tmp_path / "history.json"
    assert History(path).load() == []
    path.write_text("{not json")
    assert History(path).load() == []
    path.write_text(json.dumps(["ping", 5, "list"]))
    history = History(path)
    assert history.load() == ["ping", "list"]
    history.add("echo --message x")
    history.save()
    assert json.loads(path.read_text()) == ["ping", "list", "echo --message x"]


def test_completion_of_commands_and_flags():
    assert candidates("", "li") == ["limit_bandwidth ", "limit_cpu ", "limit_disk ", "limit_memory ", "link ", "list "]
    assert "help " in candidates("", "")
    assert candidates("create ", "--b") == ["--bind_mounts["]
    assert candidates("spawn --handle h ", "--r") == ["--rlimits."]
    assert candidates("stop ", "--") == ["--help ", "--handle ", "--background ", "--kill "]
    assert candidates("nope ", "--") == []
