"""Property tests of the wire codec: any bytes either decode or raise WireError; every valid
message round-trips; truncations and bit flips of a valid frame are rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyfl.errors import WireError
from tinyfl.wire import (
    DataBlob,
    Global,
    Hello,
    Masked,
    Reveal,
    SecAgg,
    Tensor,
    Unmask,
    Update,
    decode,
    encode,
    open_frame,
)

GOLDEN = [p.read_bytes() for p in sorted((Path(__file__).resolve().parents[2] /
                                          "testvectors" / "frames").glob("*.bin"))]
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

node_ids = st.text(ID_CHARS, min_size=1, max_size=32)
hashes = st.binary(min_size=8, max_size=8)
keys = st.sampled_from([None, bytes(range(32))]) | st.binary(min_size=32, max_size=32)
TOPIC = "tinyfl/prop/nodes/n1/update"
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def f32(lo: float | None = None, hi: float | None = None, *, exclude_min: bool = False) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False, exclude_min=exclude_min)


@st.composite
def tensors(draw: st.DrawFn, shape: tuple[int, int] | None = None) -> Tensor:
    rows, cols = shape if shape is not None else (draw(st.integers(0, 6)), draw(st.integers(0, 9)))
    bits = draw(st.sampled_from([8, 4, 2, 32]))
    if bits == 32:
        values = draw(st.lists(f32(), min_size=rows * cols, max_size=rows * cols))
        return Tensor.float32(np.array(values, np.float32).reshape(rows, cols))
    q = (1 << (bits - 1)) - 1
    codes = draw(st.lists(st.integers(-q, q), min_size=rows * cols, max_size=rows * cols))
    per_row = draw(st.booleans())
    m = rows if per_row else 1
    scales = draw(st.lists(f32(0.0), min_size=m, max_size=m))
    return Tensor(bits, int(per_row), rows, cols, np.array(scales, np.float32),
                  codes=np.array(codes, np.int8).reshape(rows, cols))


hellos = st.builds(Hello, node_ids, u32, hashes, u32, u32, u32, u16, u16, st.integers(0, 15),
                   st.integers(0, 3))


@st.composite
def globals_(draw: st.DrawFn) -> Global:
    d = draw(st.integers(0, 8))
    k = draw(st.integers(0, 5))
    return Global(
        round_id=draw(st.integers(1, 0xFFFFFFFF)), model_hash=draw(hashes), embed_dim=d,
        n_classes=k, epochs=draw(st.integers(1, 64)), batch_size=draw(st.integers(1, 1024)),
        lr=draw(f32(0.0, exclude_min=True)), prox_mu=draw(f32(0.0)), clip_norm=draw(f32(0.0)),
        uplink_bits=draw(st.sampled_from([8, 4, 2, 32])), uplink_scale_mode=draw(st.integers(0, 1)),
        seed=draw(u32), selected=tuple(draw(st.lists(node_ids, max_size=4))),
        head=draw(tensors((k, d + 1))),
    )


@st.composite
def updates(draw: st.DrawFn) -> Update:
    # statistics as binary16 carries them (the encoder rounds and saturates; see test_wire)
    return Update(
        round_id=draw(st.integers(1, 0xFFFFFFFF)), n_samples=draw(u32),
        loss=draw(st.floats(0.0, 65504.0, width=16)), accuracy=draw(st.floats(0.0, 1.0, width=16)),
        update_norm=draw(st.floats(0.0, 65504.0, width=16)), delta=draw(tensors()),
    )


@st.composite
def masked_updates(draw: st.DrawFn) -> Update:
    bits = draw(st.integers(9, 32))
    rows, cols = draw(st.integers(0, 5)), draw(st.integers(0, 9))
    values = draw(st.lists(st.integers(0, 2**bits - 1), min_size=rows * cols,
                           max_size=rows * cols))
    return Update(draw(st.integers(1, 0xFFFFFFFF)), draw(u32), 0.5, 0.25, 1.0,
                  Masked(bits, np.array(values, np.uint32).reshape(rows, cols)))


@st.composite
def masked_globals(draw: st.DrawFn) -> Global:
    g = draw(globals_())
    selected = tuple(draw(st.lists(node_ids, min_size=2, max_size=5)))
    secagg = SecAgg(draw(st.integers(9, 32)), draw(st.integers(2, len(selected))),
                    draw(f32(0.0, exclude_min=True)))
    return Global(g.round_id, g.model_hash, g.embed_dim, g.n_classes, g.epochs, g.batch_size,
                  g.lr, g.prox_mu, g.clip_norm, g.uplink_bits, g.uplink_scale_mode, g.seed,
                  selected, g.head, secagg)


unmasks = st.builds(Unmask, st.integers(1, 0xFFFFFFFF), st.integers(1, 0xFFFF),
                    st.lists(node_ids, min_size=1, max_size=6).map(tuple))
reveals = st.builds(Reveal, st.integers(1, 0xFFFFFFFF),
                    st.lists(st.tuples(node_ids, st.binary(min_size=32, max_size=32)),
                             min_size=1, max_size=6).map(tuple))
messages = hellos | globals_() | updates() | masked_updates() | masked_globals() | unmasks | reveals


@PROFILE
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    try:
        msg = decode(data)
    except WireError:
        return
    if data[5] == 0:  # a CRC frame re-encodes to itself (a tagged one needs its key)
        assert encode(msg) == data


@PROFILE
@given(st.sampled_from(GOLDEN), st.data())
def test_mutated_golden_frames_decode_or_raise_wire_error(frame: bytes, data: st.DataObject) -> None:
    raw = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        decode(bytes(raw))
    except WireError:
        pass


@PROFILE
@given(messages, keys)
def test_valid_messages_round_trip(msg: Hello | Global | Update, key: bytes | None) -> None:
    frame = encode(msg, key=key, topic=TOPIC)
    assert open_frame(frame, TOPIC, key) == msg
    assert encode(decode(frame), key=key, topic=TOPIC) == frame


@PROFILE
@given(messages, keys, st.data())
def test_truncations_and_bit_flips_are_rejected(
    msg: Hello | Global | Update, key: bytes | None, data: st.DataObject
) -> None:
    frame = encode(msg, key=key, topic=TOPIC)
    cut = data.draw(st.integers(0, len(frame) - 1))
    try:
        open_frame(frame[:cut], TOPIC, key)
        raise AssertionError("a truncated frame decoded")
    except WireError as err:
        assert err.reason in ("truncated", "bad_crc", "bad_tag")
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    flipped = bytearray(frame)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        open_frame(bytes(flipped), TOPIC, key)
        raise AssertionError("a frame with a flipped bit decoded")
    except WireError:
        pass


@PROFILE
@given(st.binary(max_size=256))
def test_any_bytes_parse_as_blob_or_raise_wire_error(data: bytes) -> None:
    try:
        blob = DataBlob.from_bytes(b"TFDB\x01" + data)
    except WireError:
        return
    assert blob.to_bytes() == b"TFDB\x01" + data


@PROFILE
@given(st.integers(0, 9), st.integers(1, 6), st.integers(1, 5), st.data())
def test_blobs_round_trip(n: int, dim: int, k: int, data: st.DataObject) -> None:
    labels = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)), np.uint8)
    samples = np.array(data.draw(st.lists(st.integers(-128, 127), min_size=n * dim,
                                          max_size=n * dim)), np.int8).reshape(n, dim)
    blob = DataBlob(data.draw(st.sampled_from([1, 2])), k, data.draw(f32(0.0, exclude_min=True)),
                    data.draw(st.integers(-128, 127)), data.draw(hashes), labels, samples)
    raw = blob.to_bytes()
    assert (len(raw) - 4 - n * dim) % 4 == 0  # samples start 4-aligned
    assert DataBlob.from_bytes(raw) == blob
