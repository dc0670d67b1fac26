"""The wire format: round trips, every way a message can be malformed, and the normative document."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from blender_addon.core import protocol as P

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def frames_of(header: dict, *bufs) -> list[bytes]:
    return [json.dumps(header).encode()] + [bytes(b) for b in bufs]


def header(**kw):
    h = {"protocol": P.PROTOCOL_VERSION, "type": "ping", "content": {}, "buffers": []}
    h.update(kw)
    return h


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "int64", "float32", "float64"])
def test_arrays_round_trip_bit_exact_with_dtype_and_shape(dtype):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((7, 58)) * 100).astype(dtype)
    msg = P.decode(P.encode(P.Message("chunk", {"take": 2}, [arr, b"file-bytes"], ref="job-1")))
    assert msg.type == "chunk" and msg.ref == "job-1" and msg.content == {"take": 2}
    assert msg.buffers[0].dtype == np.dtype(dtype) and msg.buffers[0].shape == (7, 58)
    assert np.array_equal(msg.buffers[0], arr)
    assert msg.buffers[1] == b"file-bytes"


def test_big_endian_and_non_contiguous_arrays_arrive_as_the_same_values():
    arr = np.arange(12, dtype=">f4").reshape(3, 4)[:, ::2]
    out = P.decode(P.encode(P.Message("chunk", {}, [arr]))).buffers[0]
    assert np.array_equal(out, arr) and out.shape == (3, 2)


def test_empty_arrays_are_allowed():
    out = P.decode(P.encode(P.Message("chunk", {}, [np.zeros((0, 58), np.float32)]))).buffers[0]
    assert out.shape == (0, 58)


def test_objects_and_pickle_cannot_be_encoded():
    with pytest.raises(P.ProtocolError) as e:
        P.encode(P.Message("chunk", {}, [np.array([object()], dtype=object)]))
    assert e.value.code == "bad_request"


BAD = [
    ("no frames", [], "bad_message"),
    ("not json", [b"{nope"], "bad_message"),
    ("not utf-8", [b"\xff\xfe{}"], "bad_message"),
    ("json list", [b"[1, 2]"], "bad_message"),
    ("deep nesting", [b"[" * 100000 + b"]" * 100000], "bad_message"),
    ("NaN in json", [b'{"protocol": 1, "type": "ping", "content": {"x": NaN}}'], "bad_message"),
    ("wrong version", frames_of(header(protocol=99)), "bad_version"),
    ("no version", frames_of({"type": "ping"}), "bad_version"),
    ("unknown type", frames_of(header(type="format_disk")), "unknown_type"),
    ("type not a string", frames_of(header(type=["ping"])), "unknown_type"),
    ("content not an object", frames_of(header(content=[1])), "bad_message"),
    ("id too long", frames_of(header(id="x" * 65)), "bad_message"),
    ("id not a string", frames_of(header(id=5)), "bad_message"),
    ("missing buffer", frames_of(header(buffers=[{"dtype": "uint8", "shape": [3]}])), "bad_message"),
    ("extra buffer", frames_of(header(), b"abc"), "bad_message"),
    ("truncated array", frames_of(header(buffers=[{"dtype": "float32", "shape": [10, 58]}]), b"\0" * 100),
     "bad_message"),
    ("wrong bytes length", frames_of(header(buffers=[{"dtype": "bytes", "shape": [5]}]), b"abc"), "bad_message"),
    ("object dtype", frames_of(header(buffers=[{"dtype": "object", "shape": [1]}]), b"\0" * 8), "bad_message"),
    ("negative shape", frames_of(header(buffers=[{"dtype": "uint8", "shape": [-1]}]), b""), "bad_message"),
    ("float shape", frames_of(header(buffers=[{"dtype": "uint8", "shape": [1.5]}]), b"\0"), "bad_message"),
    ("huge shape", frames_of(header(buffers=[{"dtype": "float64", "shape": [2**39, 2**39]}]), b"\0"), "bad_message"),
    ("too many dims", frames_of(header(buffers=[{"dtype": "uint8", "shape": [1] * 9}]), b"\0"), "bad_message"),
    ("buffers not a list", frames_of(header(buffers={"a": 1})), "bad_message"),
    ("huge header", [b'{"protocol": 1, "pad": "' + b"x" * (P.MAX_HEADER_BYTES + 10) + b'"}'], "bad_message"),
]


@pytest.mark.parametrize("name,frames,code", BAD, ids=[b[0] for b in BAD])
def test_malformed_messages_are_refused_with_a_code_and_a_readable_reason(name, frames, code):
    with pytest.raises(P.ProtocolError) as e:
        P.decode(frames)
    assert e.value.code == code
    assert len(e.value.message) > 10


def test_oversize_messages_are_refused_before_decoding():
    with pytest.raises(P.ProtocolError) as e:
        P.decode(P.encode(P.Message("ping", {}, [b"x" * 5000])), max_bytes=4096)
    assert e.value.code == "too_large" and "MiB" in e.value.message


def test_random_garbage_only_ever_raises_protocol_errors():
    rng = np.random.default_rng(7)
    valid = P.encode(P.Message("chunk", {"take": 0}, [np.ones((4, 58), np.float32)]))
    for i in range(2000):
        frames = [bytes(f) for f in valid]
        k = rng.integers(len(frames))
        raw = bytearray(frames[k])
        if raw:
            for _ in range(rng.integers(1, 4)):
                raw[rng.integers(len(raw))] = rng.integers(256)
        frames[k] = bytes(raw[: rng.integers(len(raw) + 1)]) if i % 3 == 0 else bytes(raw)
        try:
            P.decode(frames)
        except P.ProtocolError:
            pass


def test_peek_ids_finds_the_request_id_of_a_refused_message():
    assert P.peek_ids(json.dumps({"id": "abc", "type": "generate", "protocol": 7}).encode()) == ("abc", "generate")
    assert P.peek_ids(b"garbage") == (None, None)


@pytest.mark.parametrize("content,name,kw", [
    ({"takes": True}, "takes", {}),
    ({"takes": 1.5}, "takes", {}),
    ({"takes": 100}, "takes", {"hi": 64}),
    ({"fps": "25"}, "fps", {}),
    ({"fps": float("inf")}, "fps", {}),
])
def test_field_readers_refuse_wrong_types_and_ranges_by_name(content, name, kw):
    reader = P.field_int if name == "takes" else P.field_float
    with pytest.raises(P.ProtocolError) as e:
        reader(content, name, 1, **kw)
    assert e.value.code == "bad_request" and name in e.value.message


def test_error_codes_each_say_what_to_do():
    for code, advice in P.ERROR_CODES.items():
        assert re.fullmatch(r"[a-z_]+", code) and len(advice) > 20
    with pytest.raises(ValueError):
        P.error("not_a_code", "x")


# ---- the normative document and the module describe the same protocol ----

def test_document_version_equals_module_version():
    m = re.search(r"Protocol version: \*\*(\d+)\*\*", DOC.read_text())
    assert m, "docs/protocol.md must state 'Protocol version: **N**'"
    assert int(m.group(1)) == P.PROTOCOL_VERSION


def test_every_message_type_is_described_in_the_document():
    text = DOC.read_text()
    missing = [t for t in P.MESSAGE_TYPES if f"`{t}`" not in text]
    assert not missing, f"message types not in docs/protocol.md: {missing}"


def test_every_error_code_has_a_row_in_the_documents_error_table():
    text = DOC.read_text()
    table = text[text.index("## Error codes"):]
    table = table[:table.index("\n## ", 1)]
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert rows == set(P.ERROR_CODES), f"only in module: {set(P.ERROR_CODES) - rows}, only in doc: {rows - set(P.ERROR_CODES)}"


def test_every_request_has_its_own_section():
    text = DOC.read_text()
    for t in P.REQUESTS:
        assert f"### `{t}`" in text
