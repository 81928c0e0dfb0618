"""The job output file as the server reads it: records joined into few frames,
large records handed over as file spans (sent by sendfile), partial records
left for later, and `read_output` for Link."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from warden.container.jobs import (
    HEADER,
    READ_SIZE,
    SPAN_MIN,
    FileSpan,
    OutputCursor,
    StreamBytes,
    finished_output,
    read_output,
)

STDOUT, STDERR = 1, 2


def record(stream: int, data: bytes) -> bytes:
    return HEADER.pack(stream, len(data)) + data


@pytest.fixture
def output(tmp_path: Path):
    path = tmp_path / "output"
    path.write_bytes(b"")
    with open(path, "rb") as reader:
        yield path, reader


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def materialised(items) -> list[tuple[str, bytes]]:
    return [(name, data.read() if isinstance(data, FileSpan) else bytes(data)) for name, data in items]


def test_small_records_of_one_stream_are_joined(output):
    path, reader = output
    append(path, record(STDOUT, b"a") + record(STDOUT, b"b") + record(STDERR, b"c") + record(STDOUT, b"d"))
    assert materialised(OutputCursor(reader).available()) == [("stdout", b"ab"), ("stderr", b"c"), ("stdout", b"d")]


def test_a_large_record_is_a_span_of_the_file(output):
    path, reader = output
    big = os.urandom(SPAN_MIN * 3)
    append(path, record(STDOUT, b"head") + record(STDOUT, big) + record(STDERR, b"tail"))
    items = list(OutputCursor(reader).available())
    spans = [data for _, data in items if isinstance(data, FileSpan)]
    assert spans and spans[0].length == len(big) and spans[0].offset == HEADER.size * 2 + 4
    assert materialised(items) == [("stdout", b"head"), ("stdout", big), ("stderr", b"tail")]


def test_runs_of_large_records_are_all_spans(output):
    path, reader = output
    chunks = [os.urandom(SPAN_MIN + i) for i in range(4)]
    append(path, b"".join(record(STDOUT, chunk) for chunk in chunks))
    items = list(OutputCursor(reader).available())
    # The first may be read whole with its neighbours; the rest go as spans.
    assert sum(isinstance(data, FileSpan) for _, data in items) >= 3
    assert b"".join(data for _, data in materialised(items)) == b"".join(chunks)


def test_a_partial_record_waits_for_the_rest(output):
    path, reader = output
    cursor = OutputCursor(reader)
    whole = record(STDOUT, b"first") + record(STDERR, b"second")
    append(path, whole[:-3])
    assert materialised(cursor.available()) == [("stdout", b"first")]
    assert list(cursor.available()) == []
    append(path, whole[-3:])
    assert materialised(cursor.available()) == [("stderr", b"second")]


@pytest.mark.parametrize("size", [SPAN_MIN, READ_SIZE + 1])
def test_a_partial_large_record_is_not_sent_early(output, size):
    path, reader = output
    cursor = OutputCursor(reader)
    whole = record(STDOUT, b"x" * size)
    append(path, whole[:-1])
    assert list(cursor.available()) == []
    append(path, whole[-1:])
    assert materialised(cursor.available()) == [("stdout", b"x" * size)]


def test_output_read_in_pieces_loses_nothing(output):
    path, reader = output
    cursor = OutputCursor(reader)
    expected = {"stdout": b"", "stderr": b""}
    got = {"stdout": b"", "stderr": b""}
    for i in range(40):
        stream = STDERR if i % 3 == 0 else STDOUT
        data = os.urandom((i * 7919) % (2 * SPAN_MIN) + 1)
        expected["stderr" if stream == STDERR else "stdout"] += data
        append(path, record(stream, data))
        for name, chunk in materialised(cursor.available()):
            got[name] += chunk
    assert got == expected


def test_read_output_splits_the_streams_and_ignores_a_cut_record():
    data = record(STDOUT, b"o1") + record(STDERR, b"e1") + record(STDOUT, b"o2") + record(STDOUT, b"cut")[:-1]
    out = read_output(io.BytesIO(data))
    assert (out.stdout, out.stderr) == (b"o1o2", b"e1")


def test_a_stream_of_a_finished_output_is_measured_and_produced_alone(output):
    path, reader = output
    big_out, big_err = os.urandom(SPAN_MIN * 2), os.urandom(SPAN_MIN + 7)
    append(path, record(STDOUT, b"o1") + record(STDERR, b"e1") + record(STDOUT, big_out)
           + record(STDERR, big_err) + record(STDOUT, b"o2") + record(STDERR, b"e2"))
    assert OutputCursor(reader, only=()).measure() == {"stdout": len(big_out) + 4, "stderr": len(big_err) + 4}
    stdout, stderr = StreamBytes(reader, "stdout", 0), StreamBytes(reader, "stderr", 0)
    try:
        assert stdout.read() == b"o1" + big_out + b"o2"
        assert stderr.read() == b"e1" + big_err + b"e2"
        assert any(isinstance(part, FileSpan) for part in stdout.parts())
    finally:
        stdout.close()
        stderr.close()


def test_finished_output_is_bytes_when_small_and_streams_when_large(output, monkeypatch):
    path, reader = output
    append(path, record(STDOUT, b"small") + record(STDERR, b"err"))
    assert finished_output(reader) == (b"small", b"err")
    monkeypatch.setattr("warden.container.jobs.INLINE_OUTPUT_MAX", 4)
    stdout, stderr = finished_output(reader)
    reader.close()  # each StreamBytes has a descriptor of its own
    try:
        assert (len(stdout), len(stderr)) == (5, 3)
        assert (stdout.read(), stderr.read()) == (b"small", b"err")
    finally:
        stdout.close()
        stderr.close()


def test_response_parts_are_the_bytes_of_the_whole_response():
    """A Link answer sent in pieces (bin headers, then what the large fields
    produce) is byte for byte the answer encode_response packs."""
    from warden.protocol import encode_response, encode_response_parts

    class Large:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def __len__(self) -> int:
            return len(self.data)

        def parts(self):
            yield self.data[:3]
            yield self.data[3:]

    out, err = os.urandom(70000), b"e" * 300
    info = {"state": "active", "events": ["x"], "job_ids": [1, 2]}
    pieces = encode_response_parts("Link", {"exit_status": 3, "stdout": Large(out), "stderr": Large(err),
                                            "info": info})
    sent = b"".join(b"".join(p.parts()) if isinstance(p, Large) else p for p in pieces)
    assert sent == encode_response("Link", {"exit_status": 3, "stdout": out, "stderr": err, "info": info})
