"""The wire contract (PROTOCOL.md), checked field by field against the catalogue.

Most tests are parametrized over `spec/protocol.yml`, so a field added to the catalogue is
covered without touching this file.
"""

from __future__ import annotations

import copy

import msgpack
import pytest

from warden.protocol import (
    FrameReader,
    FrameRefused,
    InvalidRequest,
    MalformedStream,
    catalogue,
    check_handle,
    encode_error,
    encode_response,
    pack,
    parse_request,
)
from warden.protocol.catalogue import INT_RANGES, SPEC_PATH, load
from warden.protocol.codec import MAX_DEPTH, MAX_OBJECTS, encode_fields

CAT = catalogue()
PREFIX = "invalid request:"

# ---- catalogue-driven sample values ---------------------------------------------------


def sample(f, depth: int = 0):
    """A valid (scalar) value for field `f`, ignoring `repeated`."""
    t = f.type
    if t == "str":
        return "x"
    if t == "text":
        return "echo hi"
    if t == "bin":
        return b"\x00\xffbin"
    if t == "bool":
        return True
    if t in ("uint32", "uint64"):
        return 7
    if t == "int32":
        return -7
    if t == "enum":
        return CAT.enums[f.enum][-1]
    if t == "message":
        return full_struct(f.struct, depth + 1)
    raise AssertionError(t)


def value_for(f, depth: int = 0):
    v = sample(f, depth)
    return [v] if f.repeated else v


def minimal_struct(name: str) -> dict:
    return {n: value_for(f) for n, f in CAT.structs[name].items() if f.required}


def full_struct(name: str, depth: int = 0) -> dict:
    return {n: value_for(f, depth) for n, f in CAT.structs[name].items()}


def minimal_payload(kind: str) -> dict:
    return {n: value_for(f) for n, f in CAT.messages[kind].request.items() if f.required}


def full_payload(kind: str) -> dict:
    return {n: value_for(f) for n, f in CAT.messages[kind].request.items()}


def frame(kind: str, payload: dict) -> dict:
    return {"type": kind, "payload": payload}


def wire(obj) -> dict:
    """Through real msgpack bytes and the server's FrameReader, as on a socket."""
    reader = FrameReader(CAT.max_request_size)
    frames = reader.feed(pack(obj))
    assert len(frames) == 1
    return frames[0]


def expect_invalid(obj, *needles: str) -> str:
    with pytest.raises(InvalidRequest) as info:
        parse_request(obj)
    text = str(info.value)
    assert text.startswith(PREFIX), text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


REQUEST_TYPES = CAT.request_types()
REQUEST_FIELDS = [
    pytest.param(kind, name, id=f"{kind}.{name}")
    for kind in REQUEST_TYPES
    for name in CAT.messages[kind].request
]
REQUIRED_FIELDS = [
    pytest.param(kind, name, id=f"{kind}.{name}")
    for kind in REQUEST_TYPES
    for name, f in CAT.messages[kind].request.items()
    if f.required
]
OPTIONAL_FIELDS = [
    pytest.param(kind, name, id=f"{kind}.{name}")
    for kind in REQUEST_TYPES
    for name, f in CAT.messages[kind].request.items()
    if not f.required
]
INT_FIELDS = [
    pytest.param(kind, name, id=f"{kind}.{name}")
    for kind in REQUEST_TYPES
    for name, f in CAT.messages[kind].request.items()
    if f.type in INT_RANGES
]


def wrong_values(f) -> list:
    t = f.type
    if t == "str":
        return [1, True, 1.5, b"bytes", [], {}]
    if t == "text":
        return [1, True, 1.5, [], {}]
    if t == "bool":
        return [0, 1, "true", 1.0, []]
    if t in INT_RANGES:
        return ["1", 1.0, True, False, b"\x01", []]
    if t == "enum":
        return [v.lower() for v in CAT.enums[f.enum]] + ["BOGUS", 1, b"TCP", True]
    if t == "message":
        return ["x", 1, True, []]
    raise AssertionError(t)


# ---- the catalogue itself ------------------------------------------------------------------


def test_catalogue_loads_and_lists_every_request_type():
    assert set(REQUEST_TYPES) == {
        "Create", "Stop", "Destroy", "Info", "Spawn", "Link", "Run", "Stream", "NetIn",
        "NetOut", "CopyIn", "CopyOut", "LimitMemory", "LimitDisk", "LimitBandwidth",
        "LimitCpu", "Ping", "List", "Echo",
    }
    assert "Error" in CAT.messages and CAT.messages["Error"].request is None
    assert CAT.max_request_size == 16 * 1024 * 1024
    assert CAT.enums["Mode"] == ("RO", "RW")
    assert CAT.enums["Protocol"] == ("TCP", "UDP", "ICMP", "ALL")


@pytest.mark.parametrize("kind", [k for k in REQUEST_TYPES if k not in ("Create", "Ping", "List", "Echo")])
def test_every_request_with_a_container_requires_a_handle(kind):
    f = CAT.messages[kind].request["handle"]
    assert (f.type, f.required) == ("str", True)


def test_catalogue_rejects_unknown_types(tmp_path):
    text = SPEC_PATH.read_text().replace("handle: {type: str, required: true}", "handle: {type: strng, required: true}", 1)
    bad = tmp_path / "protocol.yml"
    bad.write_text(text)
    with pytest.raises(ValueError, match="unknown type 'strng'"):
        load(bad)


# ---- every request type parses --------------------------------------------------------------


@pytest.mark.parametrize("kind", REQUEST_TYPES)
def test_minimal_request_parses_with_every_field_present(kind):
    spec = CAT.messages[kind].request
    got_kind, fields = parse_request(wire(frame(kind, minimal_payload(kind))))
    assert got_kind == kind
    assert set(fields) == set(spec)
    for name, f in spec.items():
        if f.required:
            expected = value_for(f)
            if f.type == "text":
                expected = expected.encode()
            assert fields[name] == expected
        elif f.repeated:
            assert fields[name] == []
        else:
            assert fields[name] == f.default


@pytest.mark.parametrize("kind", REQUEST_TYPES)
def test_full_request_round_trips_every_field(kind):
    spec = CAT.messages[kind].request
    payload = full_payload(kind)
    _, fields = parse_request(wire(frame(kind, payload)))
    for name, f in spec.items():
        expected = payload[name]
        if f.type == "text":
            expected = expected.encode()
        assert fields[name] == expected, name


@pytest.mark.parametrize("kind,name", REQUIRED_FIELDS)
def test_missing_required_field_is_named(kind, name):
    payload = minimal_payload(kind)
    del payload[name]
    text = expect_invalid(frame(kind, payload), f"'{name}'")
    assert "missing" in text


@pytest.mark.parametrize("kind,name", REQUIRED_FIELDS)
def test_required_field_sent_as_nil_counts_as_missing(kind, name):
    payload = minimal_payload(kind)
    payload[name] = None
    expect_invalid(wire(frame(kind, payload)), f"'{name}'", "missing")


@pytest.mark.parametrize("kind,name", OPTIONAL_FIELDS)
def test_optional_field_sent_as_nil_counts_as_unset(kind, name):
    f = CAT.messages[kind].request[name]
    payload = minimal_payload(kind)
    payload[name] = None
    _, fields = parse_request(wire(frame(kind, payload)))
    assert fields[name] == ([] if f.repeated else f.default)


@pytest.mark.parametrize("kind", REQUEST_TYPES)
def test_unknown_field_is_rejected_and_named(kind):
    payload = minimal_payload(kind)
    payload["no_such_field"] = 1
    expect_invalid(frame(kind, payload), "unknown field", "'no_such_field'")


@pytest.mark.parametrize("kind,name", REQUEST_FIELDS)
def test_wrong_type_is_rejected_and_named(kind, name):
    f = CAT.messages[kind].request[name]
    for bad in wrong_values(f):
        payload = minimal_payload(kind)
        payload[name] = [bad] if f.repeated else bad
        path = f"{name}[0]" if f.repeated else name
        expect_invalid(frame(kind, payload), f"'{path}'")


@pytest.mark.parametrize("kind,name", [p for p in REQUEST_FIELDS if CAT.messages[p.values[0]].request[p.values[1]].repeated])
def test_repeated_field_must_be_an_array(kind, name):
    f = CAT.messages[kind].request[name]
    payload = minimal_payload(kind)
    payload[name] = sample(f)
    expect_invalid(frame(kind, payload), f"'{name}'", "array")


@pytest.mark.parametrize("kind,name", INT_FIELDS)
def test_integer_ranges_at_the_exact_boundaries(kind, name):
    f = CAT.messages[kind].request[name]
    low, high = INT_RANGES[f.type]
    for ok in (low, high):
        payload = minimal_payload(kind)
        payload[name] = ok
        _, fields = parse_request(frame(kind, payload))
        assert fields[name] == ok
    for bad in (low - 1, high + 1):
        payload = minimal_payload(kind)
        payload[name] = bad
        expect_invalid(frame(kind, payload), f"'{name}'", "out of range")


@pytest.mark.parametrize("ftype,low,high", [
    ("uint32", 0, 2**32 - 1), ("uint64", 0, 2**64 - 1), ("int32", -(2**31), 2**31 - 1),
])
def test_declared_integer_ranges(ftype, low, high):
    assert INT_RANGES[ftype] == (low, high)


def test_integer_boundaries_survive_msgpack():
    # Values msgpack can carry, decoded by the real reader.
    payload = {"handle": "h", "icmp_type": -(2**31), "icmp_code": 2**31 - 1, "port": 2**32 - 1}
    _, fields = parse_request(wire(frame("NetOut", payload)))
    assert (fields["icmp_type"], fields["icmp_code"], fields["port"]) == (-(2**31), 2**31 - 1, 2**32 - 1)
    expect_invalid(wire(frame("NetOut", {"handle": "h", "icmp_type": -(2**31) - 1})), "'icmp_type'")
    expect_invalid(wire(frame("NetOut", {"handle": "h", "port": 2**32})), "'port'")
    _, fields = parse_request(wire(frame("LimitMemory", {"handle": "h", "limit_in_bytes": 2**64 - 1})))
    assert fields["limit_in_bytes"] == 2**64 - 1
    expect_invalid(wire(frame("LimitMemory", {"handle": "h", "limit_in_bytes": -1})), "'limit_in_bytes'")


def test_bool_rejects_integers_and_int_rejects_bools():
    expect_invalid(frame("Stop", {"handle": "h", "kill": 1}), "'kill'")
    expect_invalid(frame("Stop", {"handle": "h", "background": 0}), "'background'")
    expect_invalid(frame("Link", {"handle": "h", "job_id": True}), "'job_id'")
    _, fields = parse_request(frame("Stop", {"handle": "h", "kill": True, "background": False}))
    assert fields["kill"] is True and fields["background"] is False


def test_text_accepts_str_and_bytes_and_str_rejects_bytes():
    _, a = parse_request(wire(frame("Spawn", {"handle": "h", "script": "echo é"})))
    _, b = parse_request(wire(frame("Spawn", {"handle": "h", "script": b"\x00\xff"})))
    assert a["script"] == "echo é".encode()
    assert b["script"] == b"\x00\xff"
    expect_invalid(wire(frame("Echo", {"message": b"bytes"})), "'message'")


@pytest.mark.parametrize("kind,name,enum", [
    pytest.param(k, n, f.enum, id=f"{k}.{n}")
    for k in REQUEST_TYPES for n, f in CAT.messages[k].request.items() if f.type == "enum"
])
def test_enums_accept_upper_case_values_only(kind, name, enum):
    for value in CAT.enums[enum]:
        payload = minimal_payload(kind)
        payload[name] = value
        assert parse_request(frame(kind, payload))[1][name] == value
        payload[name] = value.lower()
        expect_invalid(frame(kind, payload), f"'{name}'")
        payload[name] = value.capitalize()
        if value.capitalize() != value:
            expect_invalid(frame(kind, payload), f"'{name}'")


# ---- nested structs ----------------------------------------------------------------------


NESTED = [
    pytest.param(kind, name, f.struct, id=f"{kind}.{name}")
    for kind in REQUEST_TYPES
    for name, f in CAT.messages[kind].request.items()
    if f.type == "message"
]


def nested_path(kind, name, sub):
    f = CAT.messages[kind].request[name]
    return f"{name}[0].{sub}" if f.repeated else f"{name}.{sub}"


def put_nested(kind, name, struct_value):
    f = CAT.messages[kind].request[name]
    payload = minimal_payload(kind)
    payload[name] = [struct_value] if f.repeated else struct_value
    return payload


@pytest.mark.parametrize("kind,name,struct", NESTED)
def test_nested_struct_fields_wrong_type_named_with_path(kind, name, struct):
    for sub, sf in CAT.structs[struct].items():
        for bad in wrong_values(sf):
            value = full_struct(struct)
            value[sub] = bad
            expect_invalid(frame(kind, put_nested(kind, name, value)), f"'{nested_path(kind, name, sub)}'")


@pytest.mark.parametrize("kind,name,struct", NESTED)
def test_nested_struct_missing_required_and_unknown_fields(kind, name, struct):
    for sub, sf in CAT.structs[struct].items():
        if sf.required:
            value = full_struct(struct)
            del value[sub]
            expect_invalid(frame(kind, put_nested(kind, name, value)), f"'{nested_path(kind, name, sub)}'", "missing")
    value = full_struct(struct)
    value["bogus"] = 1
    expect_invalid(frame(kind, put_nested(kind, name, value)), f"'{nested_path(kind, name, 'bogus')}'")


def test_bind_mount_paths_name_the_index():
    mounts = [
        {"src_path": "/a", "dst_path": "/b", "mode": "RO"},
        {"src_path": "/c", "dst_path": "/d", "mode": "rw"},
    ]
    expect_invalid(frame("Create", {"bind_mounts": mounts}), "'bind_mounts[1].mode'")
    mounts[1] = {"dst_path": "/d", "mode": "RW"}
    expect_invalid(frame("Create", {"bind_mounts": mounts}), "'bind_mounts[1].src_path'", "missing")
    mounts[1] = "not a map"
    expect_invalid(frame("Create", {"bind_mounts": mounts}), "'bind_mounts[1]'")
    mounts[1] = None
    expect_invalid(frame("Create", {"bind_mounts": mounts}), "'bind_mounts[1]'")


def test_rlimits_paths():
    expect_invalid(frame("Spawn", {"handle": "h", "script": "x", "rlimits": {"nofile": -1}}), "'rlimits.nofile'")
    expect_invalid(frame("Run", {"handle": "h", "script": "x", "rlimits": {"nofile": 2**64}}), "'rlimits.nofile'")
    expect_invalid(frame("Spawn", {"handle": "h", "script": "x", "rlimits": {"files": 1}}), "'rlimits.files'")
    _, fields = parse_request(wire(frame("Spawn", {"handle": "h", "script": "x", "rlimits": {"nofile": 8, "as": None}})))
    assert fields["rlimits"]["nofile"] == 8
    assert fields["rlimits"]["as"] is None
    assert set(fields["rlimits"]) == set(CAT.structs["ResourceLimits"])


# ---- defaults ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,name,default", [
    ("Stop", "background", False),
    ("Stop", "kill", False),
    ("NetOut", "protocol", "TCP"),
    ("NetOut", "log", False),
    ("Spawn", "privileged", False),
    ("Spawn", "discard_output", False),
    ("Run", "privileged", False),
    ("Run", "discard_output", False),
    ("Create", "bind_mounts", []),
    ("Create", "handle", None),
    ("Create", "grace_time", None),
    ("Spawn", "rlimits", None),
    ("Spawn", "log_tag", None),
])
def test_defaults_are_filled_in(kind, name, default):
    _, fields = parse_request(wire(frame(kind, minimal_payload(kind))))
    assert fields[name] == default
    assert type(fields[name]) is type(default)


def test_parse_does_not_share_default_lists_between_requests():
    _, a = parse_request(frame("Create", {}))
    a["bind_mounts"].append("leak")
    _, b = parse_request(frame("Create", {}))
    assert b["bind_mounts"] == []


def test_parse_does_not_mutate_the_input():
    obj = frame("Spawn", {"handle": "h", "script": "x", "rlimits": {"nofile": 1}})
    before = copy.deepcopy(obj)
    parse_request(obj)
    assert obj == before


# ---- frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("obj", [[], ["Ping", {}], "Ping", 1, None, True, b"\x80", 1.5])
def test_frame_that_is_not_a_map(obj):
    expect_invalid(obj, "frame must be a map")


@pytest.mark.parametrize("obj,needle", [
    ({"payload": {}}, "'type'"),
    ({"type": "Ping"}, "'payload'"),
    ({}, "'type'"),
    ({"type": "Ping", "payload": {}, "extra": 1}, "'extra'"),
    ({"type": "Ping", "payload": {}, 7: 1}, "'7'"),
    ({"type": b"Ping", "payload": {}}, "'type'"),
    ({"type": 1, "payload": {}}, "'type'"),
    ({"type": None, "payload": {}}, "'type'"),
    ({"type": ["Ping"], "payload": {}}, "'type'"),
    ({"type": "Bogus", "payload": {}}, "'Bogus'"),
    ({"type": "ping", "payload": {}}, "'ping'"),
    ({"type": "Error", "payload": {"message": "x"}}, "'Error'"),
    ({"type": "Ping", "payload": []}, "'payload'"),
    ({"type": "Ping", "payload": None}, "'payload'"),
    ({"type": "Ping", "payload": "x"}, "'payload'"),
])
def test_bad_frames(obj, needle):
    expect_invalid(obj, needle)
    expect_invalid(wire(obj), needle)


def test_error_is_not_a_request_type():
    text = expect_invalid(frame("Error", {}), "unknown type")
    assert "'Error'" in text


# ---- Create handles -----------------------------------------------------------------------


@pytest.mark.parametrize("handle", ["a", "h" * 255, "é" * 127, "容器-1", "with space", "dots.and-dashes_", "🐳"])
def test_valid_handles(handle):
    _, fields = parse_request(wire(frame("Create", {"handle": handle})))
    assert fields["handle"] == handle


@pytest.mark.parametrize("handle", ["", "h" * 256, "é" * 128, "a/b", "/", "a\0b", "\0"])
def test_invalid_handles(handle):
    text = expect_invalid(wire(frame("Create", {"handle": handle})), "handle")
    with pytest.raises(InvalidRequest):
        check_handle(handle)
    assert text.startswith("invalid request: handle")


def test_handle_byte_length_not_character_length():
    check_handle("é" * 127 + "a")  # 255 bytes
    with pytest.raises(InvalidRequest, match="256"):
        check_handle("é" * 128)  # 128 characters, 256 bytes


def test_handle_rules_apply_to_create_only():
    # Other requests name existing containers; a bad name is simply `unknown handle`.
    _, fields = parse_request(frame("Info", {"handle": "a/b"}))
    assert fields["handle"] == "a/b"


# ---- invalid UTF-8 ----------------------------------------------------------------------

MARK = "@@MARK@@"


def raw_with_invalid_utf8(obj) -> bytes:
    """Packed `obj` with the str MARK's bytes replaced by invalid UTF-8 of the same length."""
    data = pack(obj)
    assert data.count(MARK.encode()) == 1
    return data.replace(MARK.encode(), b"\xff\xfe" + MARK.encode()[2:])


def decode_raw(data: bytes):
    frames = FrameReader(CAT.max_request_size).feed(data)
    assert len(frames) == 1
    return frames[0]


@pytest.mark.parametrize("obj,path", [
    (frame("Echo", {"message": MARK}), "'message'"),
    (frame("Create", {"handle": MARK}), "'handle'"),
    (frame("Create", {"rootfs": MARK}), "'rootfs'"),
    (frame("Create", {"bind_mounts": [{"src_path": MARK, "dst_path": "/d", "mode": "RO"}]}), "'bind_mounts[0].src_path'"),
    (frame("Spawn", {"handle": "h", "script": "x", "log_tag": MARK}), "'log_tag'"),
    (frame("Info", {"handle": MARK}), "'handle'"),
])
def test_invalid_utf8_in_a_str_field(obj, path):
    expect_invalid(decode_raw(raw_with_invalid_utf8(obj)), path, "UTF-8")


def test_invalid_utf8_in_script_is_kept_as_bytes():
    obj = decode_raw(raw_with_invalid_utf8(frame("Spawn", {"handle": "h", "script": MARK})))
    _, fields = parse_request(obj)
    assert fields["script"] == b"\xff\xfe" + MARK.encode()[2:]


def test_invalid_utf8_in_enum_is_rejected():
    obj = decode_raw(raw_with_invalid_utf8(frame("NetOut", {"handle": "h", "port": 1, "protocol": MARK})))
    expect_invalid(obj, "'protocol'")


@pytest.mark.parametrize("obj", [
    frame(MARK, {}),
    frame("Ping", {MARK: 1}),
    {"type": "Ping", "payload": {}, MARK: 1},
    frame("Create", {"bind_mounts": [{"src_path": "/s", "dst_path": "/d", "mode": "RO", MARK: 1}]}),
])
def test_error_for_invalid_utf8_names_can_be_encoded(obj):
    decoded = decode_raw(raw_with_invalid_utf8(obj))
    with pytest.raises(InvalidRequest) as info:
        parse_request(decoded)
    reply = msgpack.unpackb(encode_error(str(info.value)), raw=False)
    assert reply["type"] == "Error"
    assert reply["payload"]["message"].startswith(PREFIX)


# ---- encoding responses ---------------------------------------------------------------------


def unpack(data: bytes):
    # raw=False: msgpack str comes back as str, msgpack bin as bytes, so types are visible.
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def response_value(f):
    v = sample(f)
    if f.type == "message":
        v = full_struct(f.struct)
    return [v] if f.repeated else v


RESPONSE_FIELDS = [
    pytest.param(kind, name, id=f"{kind}.{name}")
    for kind, msg in CAT.messages.items()
    for name in msg.response
]


@pytest.mark.parametrize("kind,name", RESPONSE_FIELDS)
def test_every_response_field_encodes_with_its_wire_type(kind, name):
    f = CAT.messages[kind].response[name]
    value = response_value(f)
    out = unpack(encode_response(kind, {name: value}))
    assert out["type"] == kind
    got = out["payload"][name]
    assert got == value
    scalar = got[0] if f.repeated else got
    if f.type == "bin":
        assert isinstance(scalar, bytes)
    elif f.type == "str":
        assert isinstance(scalar, str)
    elif f.type == "message":
        assert isinstance(scalar, dict)


@pytest.mark.parametrize("kind", list(CAT.messages))
def test_response_omits_unset_and_always_includes_repeated(kind):
    spec = CAT.messages[kind].response
    out = unpack(encode_response(kind, {name: None for name in spec}))
    assert out == {"type": kind, "payload": {n: [] for n, f in spec.items() if f.repeated}}
    assert unpack(encode_response(kind)) == out


def test_output_fields_are_msgpack_bin_and_str_fields_are_str():
    payload = {"exit_status": 0, "stdout": b"\xff\x00out", "stderr": "é err"}
    raw = encode_response("Link", payload)
    out = unpack(raw)["payload"]
    assert out["stdout"] == b"\xff\x00out"
    assert out["stderr"] == "é err".encode()
    assert isinstance(out["stderr"], bytes)
    # bin 8 header (0xc4) for stdout, never a str header.
    assert b"\xc4\x05\xff\x00out" in raw
    stream = unpack(encode_response("Stream", {"name": "stdout", "data": b"chunk"}))["payload"]
    assert stream == {"name": "stdout", "data": b"chunk"}
    assert isinstance(stream["name"], str) and isinstance(stream["data"], bytes)
    run = unpack(encode_response("Run", {"exit_status": 1, "stdout": b"", "stderr": b""}))["payload"]
    assert run == {"exit_status": 1, "stdout": b"", "stderr": b""}


def test_nested_info_response_is_encoded():
    info = {
        "state": "active",
        "events": ["out of memory"],
        "host_ip": "10.254.0.1",
        "container_ip": "10.254.0.2",
        "container_path": "/depot/abc",
        "memory_stat": {"rss": 5, "cache": None},
        "cpu_stat": None,
    }
    out = unpack(encode_response("Link", {"exit_status": 0, "stdout": b"o", "stderr": b"", "info": info}))
    got = out["payload"]["info"]
    assert got["state"] == "active"
    assert got["events"] == ["out of memory"]
    assert got["job_ids"] == []  # repeated: present although not given
    assert got["memory_stat"] == {"rss": 5}  # unset nested fields omitted
    assert "cpu_stat" not in got and "disk_stat" not in got
    info_out = unpack(encode_response("Info", {"state": "stopped", "job_ids": [3, 4]}))["payload"]
    assert info_out == {"state": "stopped", "events": [], "job_ids": [3, 4]}
    stream_end = unpack(encode_response("Stream", {"exit_status": 2, "info": {"state": "active"}}))["payload"]
    assert stream_end == {"exit_status": 2, "info": {"state": "active", "events": [], "job_ids": []}}


def test_response_with_a_field_not_in_the_catalogue_is_refused():
    with pytest.raises(ValueError, match="bogus"):
        encode_response("Ping", {"bogus": 1})
    with pytest.raises(ValueError):
        encode_fields(CAT.structs["InfoResponse"], {"stat": 1})


def test_encode_error():
    out = unpack(encode_error("unknown handle"))
    assert out == {"type": "Error", "payload": {"message": "unknown handle", "backtrace": []}}
    full = unpack(encode_response("Error", {"message": "m", "data": "d", "backtrace": ["a", "b"]}))
    assert full["payload"] == {"message": "m", "data": "d", "backtrace": ["a", "b"]}
    assert set(unpack(encode_error("x"))) == {"type", "payload"}


# ---- FrameReader --------------------------------------------------------------------------

FRAMES = [
    frame("Ping", {}),
    frame("Echo", {"message": "héllo"}),
    frame("Spawn", {"handle": "h", "script": b"\x00\xff" * 40, "rlimits": {"nofile": 2**40}}),
]
STREAM = b"".join(pack(f) for f in FRAMES)


def test_frames_split_at_every_byte_boundary():
    for cut in range(len(STREAM) + 1):
        reader = FrameReader(1024)
        got = reader.feed(STREAM[:cut]) + reader.feed(STREAM[cut:])
        assert got == FRAMES, cut


def test_frames_fed_one_byte_at_a_time():
    reader = FrameReader(1024)
    got = []
    for i in range(len(STREAM)):
        got += reader.feed(STREAM[i:i + 1])
        if i < len(pack(FRAMES[0])) - 1:
            assert got == []
    assert got == FRAMES


def test_several_frames_in_one_feed():
    reader = FrameReader(1024)
    assert reader.feed(STREAM) == FRAMES
    assert reader.feed(b"") == []
    assert reader.feed(STREAM + STREAM) == FRAMES + FRAMES


def test_frame_of_exactly_the_maximum_size_is_accepted():
    body = pack(frame("Echo", {"message": ""}))
    pad = 200 - len(body)
    data = pack(frame("Echo", {"message": "x" * (pad - 1)}))  # str8 header: 1 extra byte
    assert len(data) == 200
    assert FrameReader(200).feed(data) == [frame("Echo", {"message": "x" * (pad - 1)})]


def broken(frames):
    """The MalformedStream that ends a broken stream's frames (feed's contract)."""
    assert frames and isinstance(frames[-1], MalformedStream), frames
    return frames[-1]


def test_oversized_frame_is_malformed():
    data = pack(frame("Echo", {"message": "x" * 300}))
    error = broken(FrameReader(200).feed(data))
    assert str(error).startswith(PREFIX)
    assert "200" in str(error)


def test_oversized_frame_fed_in_small_pieces_is_malformed():
    data = pack(frame("Echo", {"message": "x" * 300}))
    reader = FrameReader(200)
    frames = []
    for i in range(0, len(data), 16):
        frames += reader.feed(data[i:i + 16])
    broken(frames)


@pytest.mark.parametrize("data", [b"\xc1", b"\x81\xc1", b"\xc1" + pack(frame("Ping", {}))])
def test_bytes_that_are_not_msgpack_are_malformed(data):
    frames = FrameReader(1024).feed(data)
    assert len(frames) == 1
    assert str(broken(frames)).startswith(PREFIX)


def test_a_broken_stream_stays_broken():
    reader = FrameReader(1024)
    broken(reader.feed(b"\xc1"))
    assert len(reader.feed(pack(frame("Ping", {})))) == 1
    broken(reader.feed(b""))


def test_malformed_stream_error_encodes():
    error = broken(FrameReader(1024).feed(b"\xc1"))
    out = unpack(encode_error(str(error)))
    assert out["payload"]["message"].startswith(PREFIX)


def test_server_default_size_cap_matches_catalogue():
    from warden.config import from_dict

    assert from_dict({}).server.max_request_size == CAT.max_request_size


def test_pipelined_frames_each_under_the_cap_are_accepted():
    one = pack(frame("Echo", {"message": "x" * 150}))
    assert len(one) < 200
    assert FrameReader(200).feed(one + one) == [frame("Echo", {"message": "x" * 150})] * 2


def test_frames_before_garbage_are_not_lost():
    reader = FrameReader(1024)
    got = reader.feed(pack(frame("Ping", {})) + b"\xc1")
    broken(got)
    assert got[:-1] == [frame("Ping", {})]


@pytest.mark.parametrize("data", [
    b"\x81\x91\x01\x01",          # {[1]: 1}
    b"\x82\xa4type\xa4Ping\xa7payload\x81\x80\x01",  # payload {{}: 1}
])
def test_unhashable_map_keys_do_not_crash_the_reader(data):
    frames = FrameReader(1024).feed(data)
    if isinstance(frames[-1], MalformedStream):
        return
    with pytest.raises(InvalidRequest):
        for obj in frames:
            parse_request(obj)


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65535, 65536, 1 << 20])
@pytest.mark.parametrize("name", ["stdout", "stderr"])
def test_stream_data_in_parts_is_the_same_frame(size, name):
    from warden.protocol import encode_stream_data

    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    head, body = encode_stream_data(name, data)
    assert head + body == encode_response("Stream", {"name": name, "data": data})
    assert unpack(head + body)["payload"] == {"name": name, "data": data}


# ---- FrameReader: what a frame may expand into (issue 11) ---------------------------------



def packb(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


ECHO_HEAD = b"\x82\xa4type\xa4Echo\xa7payload\x81\xa7message"


def test_frame_cap_holds_across_reads_for_a_frame_of_many_bins():
    reader = FrameReader(4096)
    got: list = []
    got += reader.feed(ECHO_HEAD + b"\xdc\x00\x40")  # 64 bins of 255 bytes: 16 KiB
    for _ in range(64):
        got += reader.feed(b"\xc4\xff" + b"x" * 255)
        if got:
            break
    assert "frame larger than 4096 bytes" in str(broken(got))


def test_unfinished_frame_is_malformed_once_it_passes_the_cap():
    reader = FrameReader(4096)
    assert reader.feed(ECHO_HEAD + b"\xdc\xff\xff") == []
    assert reader.feed(b"\xc0" * 4000) == []
    assert "frame larger than" in str(broken(reader.feed(b"\xc0" * 200)))


@pytest.mark.parametrize("depth, ok", [(MAX_DEPTH - 2, True), (MAX_DEPTH - 1, False)])
def test_nesting_bound_counts_the_frame_and_payload_levels(depth, ok):
    # frame map (1), payload map (2), then `depth` arrays: the innermost at depth + 2.
    data = ECHO_HEAD + b"\x91" * (depth - 1) + b"\x90" + packb(frame("Ping", {}))
    got = FrameReader(1 << 20).feed(data)
    assert len(got) == 2 and got[1] == frame("Ping", {})  # the connection goes on either way
    if ok:
        assert not isinstance(got[0], InvalidRequest)
    else:
        assert isinstance(got[0], FrameRefused) and f"deeper than {MAX_DEPTH}" in str(got[0])
        assert str(got[0]).startswith("invalid request: ")


def test_object_bound_refuses_a_frame_of_empty_arrays_without_decoding_it():
    count = 1 << 20
    data = ECHO_HEAD + b"\xdd" + count.to_bytes(4, "big") + b"\x90" * count
    got = FrameReader(16 << 20).feed(data + packb(frame("Ping", {})))
    assert isinstance(got[0], FrameRefused) and f"more than {MAX_OBJECTS} objects" in str(got[0])
    assert got[1] == frame("Ping", {})


def test_objects_at_the_bound_are_accepted():
    # map(1) + type + "Echo" + payload + map(1) + key + array + n items = MAX_OBJECTS
    items = MAX_OBJECTS - 7
    data = ECHO_HEAD + b"\xdd" + items.to_bytes(4, "big") + b"\xc0" * items
    got = FrameReader(1 << 20).feed(data)
    assert got[0]["payload"]["message"] == [None] * items
    got = FrameReader(1 << 20).feed(ECHO_HEAD + b"\xdd" + (items + 1).to_bytes(4, "big") + b"\xc0" * (items + 1))
    assert isinstance(got[0], FrameRefused)


def test_big_bins_and_strings_are_stepped_over_not_counted():
    data = packb(frame("Spawn", {"handle": "h", "script": "x" * (4 << 20), "rlimits": {"nofile": 1}}))
    assert FrameReader(16 << 20).feed(data)[0]["payload"]["script"] == "x" * (4 << 20)


def test_nesting_past_msgpacks_own_stack_is_malformed():
    assert "deeper than" in str(broken(FrameReader(1 << 20).feed(b"\x91" * 2000 + b"\xc0")))


def test_sizes_give_each_frames_bytes():
    one, two = packb(frame("Ping", {})), packb(frame("Echo", {"message": "hello"}))
    reader = FrameReader(1024)
    assert reader.feed(one + two[:3]) == [frame("Ping", {})] and reader.sizes == [len(one)]
    assert reader.feed(two[3:]) == [frame("Echo", {"message": "hello"})] and reader.sizes == [len(two)]


def test_error_for_a_deeply_nested_enum_value_is_short():
    value: object = "TCP"
    for _ in range(5000):
        value = [value]
    with pytest.raises(InvalidRequest) as info:
        parse_request(frame("NetOut", {"handle": "h", "protocol": value}))
    assert "field 'protocol' has unknown value (an array of 1)" in str(info.value)


def test_spec_frame_bounds_are_the_servers():
    import yaml

    from warden.server.connection import QUEUE_FRAMES

    frame_spec = yaml.safe_load(SPEC_PATH.read_text())["frame"]
    assert (frame_spec["max_depth"], frame_spec["max_objects"]) == (MAX_DEPTH, MAX_OBJECTS)
    assert frame_spec["max_queued_requests"] == QUEUE_FRAMES
