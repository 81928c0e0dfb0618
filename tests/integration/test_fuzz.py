"""Fuzzing a real server with frames generated from spec/protocol.yml (issue 11).

Valid requests (every type, with values the server can act on safely: scripts
from a fixed list, paths in a scratch directory), the same requests mutated
(wrong types, unknown and missing fields, deep nesting, big values within the
bounds) and arbitrary msgpack go to one insecure server. Asserted: every frame
gets its answer within a deadline, the server stays up, a second client's Ping
keeps being answered meanwhile, and the server's RSS stays bounded.

`invoke test` runs it for a few seconds (WARDEN_FUZZ_SECONDS, default 4);
`invoke fuzz --seconds N` for longer. Hypothesis draws new examples each round
until the time is up.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warden.protocol.catalogue import INT_RANGES, Field, catalogue

from .conftest import HELPER
from .server import ServerProcess
from .wire import Wire

pytestmark = pytest.mark.fuzz

CAT = catalogue()
SECONDS = float(os.environ.get("WARDEN_FUZZ_SECONDS", "4"))
ANSWER_DEADLINE = 30.0  # seconds for one frame's answer: about liveness, not speed
RSS_GROWTH_MIB = 200
SCRATCH = Path(tempfile.mkdtemp(prefix="wfz-"))
HANDLES = ["fz-a", "fz-b", "fz-ü", "missing"]
SCRIPTS = ["true", "echo out", "echo err >&2; exit 3", "printf '\\xff\\x00'", "exit 255"]
PATHS = [str(SCRATCH / "in"), str(SCRATCH / "sub" / "f"), "/in", "in", "sub/f", "."]

settings.register_profile("warden-fuzz", max_examples=30, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))

# ---- strategies from the catalogue ----------------------------------------------------

SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
    st.text(max_size=20), st.binary(max_size=20))
ANY = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                   | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)


def nested(depth: int, leaf: Any = "TCP") -> Any:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


HOSTILE = st.one_of(ANY, st.integers(1, 60).map(nested), st.sampled_from([200, 990, 1020]).map(nested),
                    st.integers(0, 1 << 20).map(lambda n: "x" * n),
                    st.integers(0, 3000).map(lambda n: [None] * n))


def value_of(name: str, f: Field) -> st.SearchStrategy[Any]:
    """A value the server may act on without touching anything outside the scratch directory."""
    if name == "handle":
        return st.sampled_from(HANDLES)
    if name == "script":
        return st.sampled_from(SCRIPTS)
    if name.endswith("_path") or name == "rootfs":
        return st.sampled_from(PATHS)
    if name == "owner":
        return st.sampled_from(["root", "nobody:nogroup", "0:0", "nouser"])
    if name in ("job_id", "grace_time"):
        return st.integers(0, 20)
    if f.type == "enum":
        return st.sampled_from(CAT.enums[f.enum or ""])
    if f.type == "message":
        return payload_of(CAT.structs[f.struct or ""])
    if f.type in INT_RANGES:
        return st.integers(*INT_RANGES[f.type])
    return {"str": st.text(max_size=30), "text": st.text(max_size=30), "bin": st.binary(max_size=30),
            "bool": st.booleans()}[f.type]


def field_of(name: str, f: Field) -> st.SearchStrategy[Any]:
    one = value_of(name, f)
    return st.lists(one, max_size=3) if f.repeated else one


def payload_of(spec: dict[str, Field]) -> st.SearchStrategy[dict[str, Any]]:
    required = {n: field_of(n, f) for n, f in spec.items() if f.required}
    optional = {n: field_of(n, f) for n, f in spec.items() if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


VALID = st.one_of([payload_of(CAT.messages[kind].request or {}).map(lambda p, k=kind: {"type": k, "payload": p})
                   for kind in CAT.request_types()])


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    frame = draw(VALID)
    payload = frame["payload"]
    how = draw(st.sampled_from(["field", "unknown", "drop", "type", "payload", "extra"]))
    spec = CAT.messages[frame["type"]].request or {}
    if how == "field" and spec:
        payload[draw(st.sampled_from(sorted(spec)))] = draw(HOSTILE)
    elif how == "unknown":
        payload[draw(st.text(max_size=10))] = draw(HOSTILE)
    elif how == "drop" and payload:
        del payload[draw(st.sampled_from(sorted(payload)))]
    elif how == "type":
        frame["type"] = draw(st.one_of(st.text(max_size=12), HOSTILE))
    elif how == "payload":
        frame["payload"] = draw(HOSTILE)
    else:
        frame[draw(st.text(max_size=8))] = draw(HOSTILE)
    return frame


FRAMES = st.one_of(VALID, mutated(), mutated(), HOSTILE)

# ---- the server and the bystander ---------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Bystander(threading.Thread):
    """A second client that Pings all along; any Ping unanswered within the deadline is a failure."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.wire = Wire(path, timeout=ANSWER_DEADLINE)
        self.stop = threading.Event()
        self.pings = 0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                assert self.wire.call("Ping") == {}
                self.pings += 1
                self.stop.wait(0.01)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc


@pytest.fixture(scope="module")
def fuzz_server():
    if not HELPER.exists():
        pytest.skip("C helpers not built: run `invoke build` first")
    (SCRATCH / "sub").mkdir(parents=True, exist_ok=True)
    (SCRATCH / "in").write_text("fuzz")
    (SCRATCH / "sub" / "f").write_text("fuzz")
    server = ServerProcess("insecure", logging={"level": "info"}).start()
    try:
        yield server
    finally:
        server.cleanup()


class Client:
    """The fuzzing connection; reopened when the server closes it (it may, after a broken stream)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.wire = Wire(path, timeout=ANSWER_DEADLINE)

    def answer(self, data: bytes) -> None:
        """Send one frame and read its whole answer (a Stream's data frames, then its last)."""
        self.wire.send_raw(data)
        while True:
            try:
                frame = self.wire.recv()
            except EOFError:
                self.wire.close()
                self.wire = Wire(self.path, timeout=ANSWER_DEADLINE)
                return
            assert isinstance(frame, dict) and set(frame) == {"type", "payload"}, frame
            if frame["type"] != "Stream" or "exit_status" in frame["payload"]:
                return


def test_fuzzed_frames_all_get_answers_while_others_are_served(fuzz_server):
    client = Client(fuzz_server.socket_path)
    bystander = Bystander(fuzz_server.socket_path)
    before = rss_mib(fuzz_server.pid)
    count = 0

    @settings(settings.get_profile("warden-fuzz"))
    @given(FRAMES)
    def one(frame: Any) -> None:
        nonlocal count
        client.answer(msgpack.packb(frame, use_bin_type=True))
        count += 1

    bystander.start()
    try:
        deadline = time.monotonic() + SECONDS
        while True:
            one()
            assert bystander.failure is None, f"the other client's Ping failed: {bystander.failure!r}"
            if time.monotonic() >= deadline:
                break
    finally:
        bystander.stop.set()
        bystander.join(ANSWER_DEADLINE)
        client.wire.close()
    assert bystander.failure is None, f"the other client's Ping failed: {bystander.failure!r}"
    assert fuzz_server.running
    with fuzz_server.connect() as wire:
        assert wire.call("Ping") == {}
    assert rss_mib(fuzz_server.pid) - before < RSS_GROWTH_MIB
    assert count > 0 and bystander.pings > 0
    tracebacks = [line for line in fuzz_server.log().splitlines() if '"backtrace"' in line]
    assert not tracebacks, tracebacks[:3]
