"""The job output file as the server reads it: records joined into few frames,
large records handed over as file spans (sent by sendfile), partial records
left for later, and `read_output` for Link."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from warden.container.jobs import HEADER, READ_SIZE, SPAN_MIN, FileSpan, OutputCursor, read_output

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
