"""Frames on the wire: msgpack maps `{"type": str, "payload": map}` back to back.

`FrameReader` turns a byte stream into objects, `parse_request` checks one object
against the catalogue (every failure is an `InvalidRequest` whose text starts with
`invalid request:` and names the field), and `encode_*` build response frames.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, TypeVar

import msgpack

from . import requests
from .catalogue import INT_RANGES, Catalogue, Field, catalogue

PREFIX = "invalid request: "
_T = TypeVar("_T")


class InvalidRequest(Exception):
    """A frame that is msgpack but not a valid request; the connection stays usable."""

    def __init__(self, detail: str) -> None:
        super().__init__(PREFIX + detail)


class MalformedStream(Exception):
    """Bytes that are not msgpack, or a frame over the size cap; the connection closes."""

    def __init__(self, detail: str) -> None:
        super().__init__(PREFIX + detail)


# Bounds on what one frame may expand into once decoded. The deepest valid request
# is 4 levels (frame, payload, bind_mounts, BindMount) and a Create with thousands
# of bind mounts stays far below the object count; both bounds only stop frames
# built to make the server allocate (a 16 MiB frame of empty arrays is 16 million
# lists, about 1 GiB).
MAX_DEPTH = 32
MAX_OBJECTS = 65536
# Frames this small cannot break either bound (each object takes a byte at least),
# so the hot path (Ping is 20 bytes) skips the pre-scan.
_TRIVIAL_SIZE = MAX_DEPTH


class FrameRefused(InvalidRequest):
    """A whole frame over the depth or object bound; it was never decoded, its
    boundaries are known, so the connection stays usable."""


class FrameReader:
    """Incremental msgpack decoding with a cap on the size of one frame.

    `feed` returns the frames decoded so far (a `FrameRefused` in place of a
    frame over the expansion bounds); when the stream breaks (bytes that are not
    msgpack, or a frame over the cap) the last item is a `MalformedStream`, after
    the good frames that came before it.

    A scanner finds where frames end without building any object (msgpack's
    C `skip`), so bytes are counted against the cap however a frame is split
    across reads, and only whole, checked frames reach the decoder: a client
    can make the server hold at most one frame's bytes, never its objects.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._broken: MalformedStream | None = None
        self._scanner = msgpack.Unpacker(max_buffer_size=max_size + (2 << 20))
        self._decoder = msgpack.Unpacker(
            raw=False,
            unicode_errors="surrogateescape",
            strict_map_key=False,
            max_buffer_size=0,  # unbounded: it is only ever fed whole frames
        )
        self._pending = bytearray()  # bytes after the last whole frame
        self._start = 0  # stream offset of the first byte in _pending
        self.sizes: list[int] = []  # byte size of each item of the last feed

    def feed(self, data: bytes) -> list[Any]:
        if self._broken is not None:
            self.sizes = [0]
            return [self._broken]
        ends: list[int] = []
        try:
            self._scanner.feed(data)
            self._pending += data
            self._find_ends(ends)
        except MalformedStream as exc:
            self._broken = exc
        except msgpack.BufferFull:
            self._broken = self._too_large()
        except msgpack.StackError:
            self._broken = MalformedStream(f"frame nested deeper than {MAX_DEPTH} levels")
        except (ValueError, TypeError, msgpack.UnpackException):
            self._broken = MalformedStream("bytes that are not msgpack")
        frames = self._decode(ends)
        if self._broken is not None:
            frames.append(self._broken)
            self.sizes.append(0)
        return frames

    def _too_large(self) -> MalformedStream:
        return MalformedStream(f"frame larger than {self.max_size} bytes")

    def _find_ends(self, ends: list[int]) -> None:
        """Stream offsets where whole frames end; the cap holds for the unfinished one too."""
        start = ends[-1] if ends else self._start
        while True:
            try:
                self._scanner.skip()
            except msgpack.OutOfData:
                break
            end = self._scanner.tell()
            if end - start > self.max_size:
                raise self._too_large()
            ends.append(end)
            start = end
        if self._start + len(self._pending) - start > self.max_size:
            raise self._too_large()

    def _decode(self, ends: list[int]) -> list[Any]:
        """Decode the whole frames that end at `ends`, each checked first."""
        sizes: list[int] = []
        self.sizes = sizes
        if not ends:
            return []
        cut = ends[-1] - self._start
        whole = bytes(self._pending[:cut])
        del self._pending[:cut]
        refused: dict[int, FrameRefused] = {}
        previous = self._start
        for end in ends:
            size = end - previous
            if size > _TRIVIAL_SIZE:
                offset = previous - self._start
                problem = _expansion_problem(whole, offset, offset + size)
                if problem is not None:
                    refused[len(sizes)] = FrameRefused(problem)
            sizes.append(size)
            previous = end
        self._start = previous
        self._decoder.feed(whole)
        frames: list[Any] = []
        try:
            if not refused:
                for obj in self._decoder:  # stops after the last whole frame
                    frames.append(obj)
                return frames
            for index in range(len(ends)):
                if index in refused:
                    self._decoder.skip()
                    frames.append(refused[index])
                else:
                    frames.append(self._decoder.unpack())
        except (ValueError, TypeError, msgpack.UnpackException):  # e.g. a map key that is a map
            self._broken = MalformedStream("a map key that is not a string or a number")
            del sizes[len(frames):]
        return frames


# msgpack's fixed-size scalars by first byte: the bytes after that first byte.
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
          0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
# Variable-length str, bin and ext: the size of their length field (ext adds a type byte).
_SIZED = {0xC4: (1, 0), 0xC5: (2, 0), 0xC6: (4, 0), 0xC7: (1, 1), 0xC8: (2, 1), 0xC9: (4, 1),
          0xD9: (1, 0), 0xDA: (2, 0), 0xDB: (4, 0)}
# Arrays and maps with a length field: (its size, objects per element).
_COLLECTIONS = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}


def _expansion_problem(data: bytes, pos: int, end: int) -> str | None:
    """Why the frame `data[pos:end]` (valid msgpack, already scanned) would
    expand past MAX_OBJECTS or MAX_DEPTH, or None. Only headers are read: a
    str or bin is stepped over by its length, so a big script costs nothing."""
    objects = 0
    pending = [1]  # objects still to read at each open level
    while pos < end:
        objects += 1
        if objects > MAX_OBJECTS:
            return f"frame holds more than {MAX_OBJECTS} objects"
        while pending[-1] == 0:
            pending.pop()
        pending[-1] -= 1
        byte = data[pos]
        pos += 1
        if byte <= 0x7F or byte >= 0xE0:
            continue
        if byte <= 0x9F:  # fixmap, fixarray
            count = (byte & 0x0F) * 2 if byte <= 0x8F else byte & 0x0F
        elif byte <= 0xBF:  # fixstr
            pos += byte & 0x1F
            continue
        elif byte in _FIXED:
            pos += _FIXED[byte]
            continue
        elif byte in _SIZED:
            width, extra = _SIZED[byte]
            pos += width + extra + int.from_bytes(data[pos:pos + width], "big")
            continue
        else:
            width, per = _COLLECTIONS[byte]
            count = int.from_bytes(data[pos:pos + width], "big") * per
            pos += width
        if len(pending) > MAX_DEPTH:  # this collection sits at level len(pending)
            return f"frame nested deeper than {MAX_DEPTH} levels"
        if count > MAX_OBJECTS:
            return f"frame holds more than {MAX_OBJECTS} objects"
        pending.append(count)
    return None


def printable(text: str) -> str:
    """Text safe to put on the wire: invalid UTF-8 from a client shows as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown(value: Any) -> str:
    """A client's value for an error message: short, and never repr() of an
    array or map, which a client can nest deep enough to make repr() raise."""
    if isinstance(value, list):
        return f"(an array of {len(value)})"
    if isinstance(value, dict):
        return f"(a map of {len(value)})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_error(path: str, ftype: str) -> InvalidRequest:
    names = {
        "str": "a string",
        "text": "a string or binary",
        "bin": "binary",
        "bool": "a boolean",
        "message": "a map",
    }
    return InvalidRequest(f"field '{path}' must be {names.get(ftype, ftype)}")


def _check_utf8(path: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"field '{path}' is not valid UTF-8") from None
    return value


def _scalar(cat: Catalogue, f: Field, path: str, value: Any) -> Any:
    if f.type == "str":
        if not isinstance(value, str):
            raise _type_error(path, "str")
        return _check_utf8(path, value)
    if f.type == "text":
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        raise _type_error(path, "text")
    if f.type == "bin":
        if not isinstance(value, (bytes, bytearray)):
            raise _type_error(path, "bin")
        return bytes(value)
    if f.type == "bool":
        if not isinstance(value, bool):
            raise _type_error(path, "bool")
        return value
    if f.type in INT_RANGES:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidRequest(f"field '{path}' must be an integer ({f.type})")
        low, high = INT_RANGES[f.type]
        if not low <= value <= high:
            raise InvalidRequest(f"field '{path}' is out of range for {f.type} ({low}..{high})")
        return value
    if f.type == "enum":
        allowed = cat.enums[f.enum or ""]
        if not isinstance(value, str) or value not in allowed:
            raise InvalidRequest(
                f"field '{path}' has unknown value {_shown(value)} (expected one of {', '.join(allowed)})"
            )
        return value
    if f.type == "message":
        if not isinstance(value, dict):
            raise _type_error(path, "message")
        return _fields(cat, cat.structs[f.struct or ""], value, path + ".")
    raise AssertionError(f"unhandled type {f.type}")


def _fields(cat: Catalogue, spec: dict[str, Field], payload: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key in payload:
        if key not in spec:
            raise InvalidRequest(f"unknown field '{prefix}{key}'")
    for name, f in spec.items():
        path = prefix + name
        value = payload.get(name)
        if value is None:
            if f.required:
                raise InvalidRequest(f"missing required field '{path}'")
            result[name] = [] if f.repeated else f.default
            continue
        if f.repeated:
            if not isinstance(value, list):
                raise InvalidRequest(f"field '{path}' must be an array")
            result[name] = [_scalar(cat, f, f"{path}[{i}]", item) for i, item in enumerate(value)]
        else:
            result[name] = _scalar(cat, f, path, value)
    return result


def check_handle(handle: str) -> None:
    """A handle names a directory entry and a log tag: 1..255 UTF-8 bytes, no '/' or NUL."""
    size = len(handle.encode("utf-8"))
    if size == 0 or size > 255:
        raise InvalidRequest(f"handle must be 1 to 255 bytes of UTF-8, got {size}")
    if "/" in handle or "\0" in handle:
        raise InvalidRequest("handle must not contain '/' or NUL")


def parse_request(obj: Any, cat: Catalogue | None = None) -> tuple[str, dict[str, Any]]:
    """Check one decoded frame; return (type, payload with defaults filled in)."""
    cat = cat or catalogue()
    if not isinstance(obj, dict):
        raise InvalidRequest("frame must be a map with keys 'type' and 'payload'")
    extra = sorted(str(k) for k in obj if k not in ("type", "payload"))
    if extra:
        raise InvalidRequest(f"unknown frame key '{extra[0]}' (frames have 'type' and 'payload')")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest("field 'type' must be a message name string")
    message = cat.messages.get(kind)
    if message is None or message.request is None:
        raise InvalidRequest(f"unknown type '{kind}'")
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        raise InvalidRequest("field 'payload' must be a map")
    fields = _fields(cat, message.request, payload)
    if kind == "Create" and fields["handle"] is not None:
        check_handle(fields["handle"])
    return kind, fields


def parse_message(obj: Any, cat: Catalogue | None = None) -> requests.Request:
    """Check one decoded frame and build its typed request (see `requests.py`)."""
    cat = cat or catalogue()
    kind, fields = parse_request(obj, cat)
    return build(requests.REQUESTS[kind], fields, cat.messages[kind].request or {}, cat)


def build(cls: type[_T], fields: dict[str, Any], spec: dict[str, Field], cat: Catalogue) -> _T:
    """A checked payload (defaults filled in) as an instance of its generated class."""
    renamed = {wire: attr for attr, wire in getattr(cls, "WIRE_NAMES", {}).items()}
    values: dict[str, Any] = {}
    for name, value in fields.items():
        f = spec[name]
        if f.type == "message" and value is not None:
            struct = requests.STRUCTS[f.struct or ""]
            nested = cat.structs[f.struct or ""]
            value = ([build(struct, item, nested, cat) for item in value] if f.repeated
                     else build(struct, value, nested, cat))
        values[renamed.get(name, name)] = value
    return cls(**values)


def wire_fields(obj: Any) -> dict[str, Any]:
    """A generated struct's set fields under their wire names (`as_` is `as`)."""
    names = getattr(obj, "WIRE_NAMES", {})
    return {names.get(k, k): v for k, v in vars(obj).items() if v is not None}


def _encode_value(cat: Catalogue, f: Field, value: Any) -> Any:
    if f.type == "message":
        return encode_fields(cat.structs[f.struct or ""], value, cat)
    if f.type == "bin" and isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if f.type == "text" and isinstance(value, bytes):
        return value
    return value


def encode_fields(spec: dict[str, Field], payload: dict[str, Any], cat: Catalogue | None = None) -> dict[str, Any]:
    """Build a payload map: unset optionals omitted, repeated fields always present."""
    cat = cat or catalogue()
    unknown = set(payload) - set(spec)
    if unknown:
        raise ValueError(f"fields not in the catalogue: {sorted(unknown)}")
    body: dict[str, Any] = {}
    for name, f in spec.items():
        value = payload.get(name)
        if f.repeated:
            body[name] = [_encode_value(cat, f, v) for v in (value or [])]
        elif value is not None:
            body[name] = _encode_value(cat, f, value)
    return body


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def encode_response(kind: str, payload: dict[str, Any] | None = None) -> bytes:
    cat = catalogue()
    body = encode_fields(cat.messages[kind].response, payload or {}, cat)
    return pack({"type": kind, "payload": body})


_STREAM_HEAD = pack("type") + pack("Stream") + pack("payload")


_Payload = TypeVar("_Payload", bound=Sized)


def encode_stream_data(name: str, data: _Payload) -> tuple[bytes, _Payload]:
    """A Stream data frame as (head, data), so that job output, which can be
    large, is written to the socket without being copied into a packed frame
    (data may also be a span of a file, sent by sendfile). Head and data are
    the bytes `encode_response("Stream", {"name", "data"})` gives."""
    head = b"\x82" + _STREAM_HEAD + b"\x82" + pack("name") + pack(name) + pack("data") + _bin_head(len(data))
    return head, data


def _bin_head(size: int) -> bytes:
    """msgpack's header of a bin of `size` bytes (the bytes follow it)."""
    if size < 1 << 8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def _map_head(count: int) -> bytes:
    return bytes([0x80 | count]) if count < 16 else b"\xde" + count.to_bytes(2, "big")


def encode_response_parts(kind: str, payload: dict[str, Any]) -> list[Any]:
    """Like encode_response, for a payload in which some bin fields are large
    objects that produce their bytes themselves (they have `parts()` and a
    length): the frame as packed bytes with those objects between them, each
    right after its bin header. Written out in order, the pieces are the bytes
    encode_response would give for the same content."""
    cat = catalogue()
    body = encode_fields(cat.messages[kind].response, payload, cat)
    pieces: list[Any] = [b"\x82" + pack("type") + pack(kind) + pack("payload") + _map_head(len(body))]
    for key, value in body.items():
        if hasattr(value, "parts"):
            pieces[-1] += pack(key) + _bin_head(len(value))
            pieces += [value, b""]
        else:
            pieces[-1] += pack(key) + pack(value)
    return [piece for piece in pieces if not isinstance(piece, bytes) or piece]


def encode_error(message: str, data: str | None = None) -> bytes:
    return encode_response("Error", {"message": printable(message),
                                      "data": printable(data) if data is not None else None})


def encode_request(kind: str, payload: dict[str, Any] | None = None) -> bytes:
    """Client side: check a request against the catalogue, then pack it."""
    cat = catalogue()
    message = cat.messages.get(kind)
    if message is None or message.request is None:
        raise InvalidRequest(f"unknown type '{kind}'")
    clean = {k: v for k, v in (payload or {}).items() if v is not None}
    _fields(cat, message.request, clean)
    body = encode_fields(message.request, clean, cat)
    return pack({"type": kind, "payload": body})


class InvalidResponse(Exception):
    """A frame from the server that is not `{"type": <known message>, "payload": map}`.

    Clients raise it instead of guessing, because a misread frame would shift every later
    response onto the wrong request.
    """


def parse_response(obj: Any, cat: Catalogue | None = None) -> tuple[str, dict[str, Any]]:
    """Client side: split one decoded frame into (type, payload).

    Only the frame's shape is checked; the payload is returned as sent, so a client keeps
    working when a newer server adds response fields.
    """
    cat = cat or catalogue()
    if not isinstance(obj, dict):
        raise InvalidResponse(f"frame must be a map, got {type(obj).__name__}")
    kind, payload = obj.get("type"), obj.get("payload")
    if not isinstance(kind, str) or kind not in cat.messages:
        raise InvalidResponse(f"unknown response type {kind!r}")
    if not isinstance(payload, dict):
        raise InvalidResponse(f"payload of a {kind} response must be a map")
    return kind, payload
