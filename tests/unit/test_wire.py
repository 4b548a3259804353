"""The Python wire codec against the golden vectors (testvectors/, see tools/gen_testvectors.py).

The firmware's test_wire checks the same files, so these are the "decodes identically in C++ and
Python" tests from the Python side.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinyfl.errors import UsageError, WireError
from tinyfl.wire import (
    BlobKind,
    DataBlob,
    Global,
    Hello,
    Tensor,
    Topics,
    Update,
    check_node_id,
    decode,
    default_prefix,
    encode,
    fields_text,
    is_valid_node_id,
    open_frame,
    pack_codes,
    unpack_codes,
    verify_frame,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "testvectors"
# LABEL frames have a folder of their own (the firmware decodes them but never encodes them)
FRAMES = sorted((VECTORS / "frames").glob("*.bin")) + sorted((VECTORS / "labels").glob("*.bin"))
INVALID = sorted((VECTORS / "frames" / "invalid").glob("*.bin")) + sorted(
    (VECTORS / "labels" / "invalid").glob("*.bin"))
AUTH_INVALID = sorted((VECTORS / "frames" / "auth_invalid").glob("*.bin"))
BLOBS = sorted((VECTORS / "blobs").glob("*.bin"))
INVALID_BLOBS = sorted((VECTORS / "blobs" / "invalid").glob("*.bin"))
HASH = bytes(range(8))


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def auth_of(path: Path) -> tuple[str, bytes | None]:
    """(topic, key) of a tagged golden frame, ("", None) for a CRC frame."""
    auth = path.with_suffix(".auth.txt")
    if not auth.exists():
        return "", None
    fields = dict(line.split("=", 1) for line in auth.read_text().splitlines())
    return fields["topic"], bytes.fromhex(fields["key"])


def test_vectors_are_present_and_current() -> None:
    assert len(FRAMES) >= 12 and len(INVALID) >= 40 and len(BLOBS) >= 3 and INVALID_BLOBS
    assert sum(auth_of(p)[1] is not None for p in FRAMES) >= 3 and len(AUTH_INVALID) >= 5
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_testvectors.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", FRAMES, ids=ids(FRAMES))
def test_golden_frame_decodes_to_its_fields_and_reencodes(path: Path) -> None:
    data = path.read_bytes()
    topic, key = auth_of(path)
    msg = open_frame(data, topic, key)
    assert fields_text(msg) == path.with_suffix(".fields.txt").read_text()
    assert encode(msg, key=key, topic=topic or None) == data
    assert decode(bytearray(data)) == msg
    assert decode(memoryview(data)) == msg
    # a receiver with the other kind of authentication refuses it
    with pytest.raises(WireError) as err:
        open_frame(data, "tinyfl/x/global", None if key else b"k" * 32)
    assert err.value.reason == ("no_key" if key else "unauthenticated")


@pytest.mark.parametrize("path", AUTH_INVALID, ids=ids(AUTH_INVALID))
def test_tagged_frame_fails_under_another_topic_key_or_byte(path: Path) -> None:
    topic, key = auth_of(path)
    reason = path.with_suffix(".reason").read_text().strip()
    with pytest.raises(WireError) as err:
        open_frame(path.read_bytes(), topic, key)
    assert err.value.reason == reason


def test_the_tag_covers_the_topic_and_every_byte() -> None:
    key, topic = bytes(range(32)), "tinyfl/lab/nodes/n1/update"
    frame = encode(make_update(), key=key, topic=topic)
    assert len(frame) == len(encode(make_update())) + 12  # the tag replaces the CRC
    verify_frame(frame, topic, key)
    for other_topic in ("tinyfl/lab/nodes/n2/update", "tinyfl/lab/nodes/n1/hello"):
        with pytest.raises(WireError, match="bad_tag"):
            verify_frame(frame, other_topic, key)
    for i in range(len(frame)):
        changed = bytearray(frame)
        changed[i] ^= 0x40
        with pytest.raises(WireError):
            open_frame(bytes(changed), topic, key)


@pytest.mark.parametrize("path", INVALID, ids=ids(INVALID))
def test_invalid_frame_is_rejected_with_its_reason(path: Path) -> None:
    reason = path.with_suffix(".reason").read_text().strip()
    with pytest.raises(WireError) as err:
        decode(path.read_bytes())
    assert err.value.reason == reason


@pytest.mark.parametrize("path", FRAMES, ids=ids(FRAMES))
def test_every_truncation_and_bit_flip_is_rejected(path: Path) -> None:
    data = path.read_bytes()
    topic, key = auth_of(path)
    for cut in range(len(data)):
        # without a length field a cut shows as a short header or trailer, or a CRC/tag mismatch
        with pytest.raises(WireError) as err:
            open_frame(data[:cut], topic, key)
        assert err.value.reason in ("truncated", "bad_crc", "bad_tag")
    flipped = bytearray(data)
    for bit in range(len(data) * 8):
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(WireError):
            open_frame(bytes(flipped), topic, key)
        flipped[bit // 8] ^= 1 << (bit % 8)


@pytest.mark.parametrize("path", BLOBS, ids=ids(BLOBS))
def test_golden_blob_parses_and_rewrites(path: Path) -> None:
    data = path.read_bytes()
    blob = DataBlob.from_bytes(data)
    lines = [
        f"kind={blob.kind}",
        f"n_samples={blob.n_samples}",
        f"dim={blob.dim}",
        f"n_classes={blob.n_classes}",
        f"scale=0x{struct.unpack('<I', struct.pack('<f', blob.scale))[0]:08x}",
        f"zero_point={blob.zero_point}",
        f"model_hash={blob.model_hash.hex()}",
        f"labels={','.join(str(x) for x in blob.labels.tolist())}",
        f"samples={','.join(str(x) for x in blob.samples.reshape(-1).tolist())}",
    ]
    assert "\n".join(lines) + "\n" == path.with_suffix(".fields.txt").read_text()
    assert blob.to_bytes() == data
    assert DataBlob.from_bytes(data + b"\xa5" * 9, allow_trailing=True) == blob
    with pytest.raises(WireError, match="bad_length"):
        DataBlob.from_bytes(data + b"\x00")
    for cut in range(len(data)):
        with pytest.raises(WireError) as err:
            DataBlob.from_bytes(data[:cut])
        assert err.value.reason == "truncated"


@pytest.mark.parametrize("path", INVALID_BLOBS, ids=ids(INVALID_BLOBS))
def test_invalid_blob_is_rejected_with_its_reason(path: Path) -> None:
    reason = path.with_suffix(".reason").read_text().strip()
    with pytest.raises(WireError) as err:
        DataBlob.from_bytes(path.read_bytes())
    assert err.value.reason == reason


# ---- round trips and encoder checks ----------------------------------------------------------


def make_update(**overrides: object) -> Update:
    base = Update(
        round_id=3, n_samples=100, loss=1.25, accuracy=0.75, update_norm=0.5,
        delta=Tensor.quantized(np.array([[1, -1, 0], [7, -7, 3]]), [0.5, 0.25], 4),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def make_global(**overrides: object) -> Global:
    base = Global(
        round_id=1, model_hash=HASH, embed_dim=2, n_classes=2, epochs=3, batch_size=16, lr=0.5,
        prox_mu=0.0, clip_norm=0.0, uplink_bits=8, uplink_scale_mode=1, seed=99,
        selected=("a", "b-2"), head=Tensor.float32(np.arange(6, dtype=np.float32).reshape(2, 3)),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_round_trips() -> None:
    hello = Hello("n_1", 0x000100, HASH, 10, 2048, 4000, 64, 5, 0x0F, 1)
    assert decode(encode(hello)) == hello
    for bits in (8, 4, 2):
        for rows, cols in ((1, 1), (3, 5), (2, 7), (5, 65)):
            q = (1 << (bits - 1)) - 1
            codes = (np.arange(rows * cols) % (2 * q + 1) - q).reshape(rows, cols)
            per_row = Tensor.quantized(codes, np.linspace(0.1, 1, rows), bits, per_row=True)
            per_tensor = Tensor.quantized(codes, [0.125], bits, per_row=False)
            for t in (per_row, per_tensor):
                msg = make_update(delta=t)
                back = open_frame(encode(msg, key=HASH * 4, topic="t/u"), "t/u", HASH * 4)
                assert back == msg
                assert isinstance(back, Update)
                np.testing.assert_array_equal(back.delta.dequantized(), t.dequantized())
    g = make_global()
    assert decode(encode(g)) == g
    assert g.selects("a") and not g.selects("c") and replace(g, selected=()).selects("c")


def test_dequantized_is_float32_codes_times_scales() -> None:
    t = Tensor.quantized(np.array([[1, -2], [3, 0]], np.int8), [0.1, 3.0], 8)
    out = t.dequantized()
    assert out.dtype == np.float32
    tenth = np.float32(np.float16(0.1))  # the scale as the wire carries it
    expect = np.array([[np.float32(1) * tenth, np.float32(-2) * tenth],
                       [np.float32(9.0), np.float32(0.0)]], np.float32)
    np.testing.assert_array_equal(out, expect)
    single = Tensor.quantized(np.array([[2, -1]]), [0.5], 2, per_row=False)
    np.testing.assert_array_equal(single.dequantized(), [[1.0, -0.5]])


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_packing_round_trips_every_code_at_every_offset(bits: int) -> None:
    q = (1 << (bits - 1)) - 1
    for lead in range(4):
        codes = np.array([0] * lead + list(range(-q, q + 1)), np.int8)
        packed = pack_codes(codes, bits)
        assert len(packed) == (codes.size * bits + 7) // 8
        np.testing.assert_array_equal(unpack_codes(packed, codes.size, bits), codes)


def test_packing_is_lsb_first() -> None:
    assert pack_codes(np.array([1, -1, 0, 1], np.int8), 2) == bytes([0b01_00_11_01])
    assert pack_codes(np.array([-7, 7, 1], np.int8), 4) == bytes([0x79, 0x01])
    assert pack_codes(np.array([-127, 5], np.int8), 8) == bytes([0x81, 0x05])


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (make_update(loss=-1.0), "bad_value"),
        (make_update(loss=float("nan")), "non_finite"),
        (make_update(accuracy=1.5), "bad_value"),
        (make_update(round_id=0), "bad_value"),
        (make_update(round_id=-1), "bad_value"),
        (make_update(round_id=2**32), "bad_value"),
        (make_update(update_norm=float("inf")), "non_finite"),
        (make_global(model_hash=b"short"), "bad_value"),
        (make_update(delta=Tensor.quantized(np.array([[-8, 0]]), [1.0], 4)), "bad_value"),
        (make_update(delta=Tensor.quantized(np.array([[2, 0]]), [1.0], 2)), "bad_value"),
        (make_update(delta=Tensor.quantized(np.array([[-128]]), [1.0], 8)), "bad_value"),
        (make_update(delta=Tensor.quantized(np.array([[1]]), [-1.0], 8)), "bad_value"),
        (make_update(delta=Tensor.float32(np.array([[np.inf]]))), "non_finite"),
        (make_global(lr=0.0), "bad_value"),
        (make_global(lr=float("inf")), "non_finite"),
        (make_global(epochs=65), "bad_value"),
        (make_global(batch_size=0), "bad_value"),
        (make_global(uplink_bits=16), "bad_value"),
        (make_global(selected=("ok", "no!")), "bad_value"),
        (make_global(embed_dim=3), "bad_value"),  # head is 2x3, so embed_dim must be 2
        (Hello("n", 0, HASH, 0, 0, 0, 0, 0, 0x10, 0), "bad_value"),
        (Hello("n", 0, HASH, 0, 0, 0, 0, 0, 0, 4), "bad_value"),
    ],
)
def test_encoder_refuses_invalid_fields(msg: Hello | Global | Update, reason: str) -> None:
    with pytest.raises(WireError) as err:
        encode(msg)
    assert err.value.reason == reason


def test_tensor_rejects_inconsistent_arrays() -> None:
    with pytest.raises(ValueError):
        Tensor(8, 1, 2, 2, np.ones(1, np.float32), codes=np.zeros((2, 2), np.int8))
    with pytest.raises(ValueError):
        Tensor(8, 0, 2, 2, np.ones(1, np.float32), codes=np.zeros(3, np.int8))
    with pytest.raises(ValueError):
        Tensor.quantized(np.array([[300]]), [1.0], 8)
    with pytest.raises(ValueError):
        Tensor(32, 0, 1, 1, np.zeros(0, np.float32), codes=np.zeros((1, 1), np.int8))


def test_decode_reports_the_first_failure_in_spec_order() -> None:
    frame = bytearray(encode(make_global()))
    frame[2] = 1  # version 1, and now the CRC is wrong too
    with pytest.raises(WireError, match="bad_version"):
        decode(bytes(frame))
    body = bytearray(encode(make_global())[6:-4])
    body[16:18] = b"\x00\x00"  # epochs = 0
    body[20:24] = struct.pack("<f", float("nan"))  # lr = NaN, a later field
    covered = bytes(encode(make_global())[:6]) + bytes(body)
    with pytest.raises(WireError, match="bad_value"):
        decode(covered + struct.pack("<I", zlib.crc32(covered)))


def test_update_statistics_travel_as_saturated_binary16() -> None:
    back = decode(encode(make_update(loss=0.1, update_norm=366_682.0, accuracy=1.0)))
    assert isinstance(back, Update)
    assert back.loss == float(np.float16(0.1)) and back.update_norm == 65504.0
    assert back.accuracy == 1.0


def test_scales_are_binary16_values() -> None:
    t = Tensor.quantized(np.array([[1, 2]]), [0.1], 8, per_row=False)
    assert t.scales[0] == np.float32(np.float16(0.1))
    huge = Tensor.quantized(np.array([[1]]), [1e9], 8, per_row=False)
    assert huge.scales[0] == 65504.0
    back = decode(encode(make_update(delta=t)))
    assert isinstance(back, Update) and back.delta == t


# ---- blobs -----------------------------------------------------------------------------------


def test_blob_round_trip_and_values() -> None:
    samples = np.array([[-128, 0, 127], [1, 2, 3]], np.int8)
    blob = DataBlob(BlobKind.FEATURES, 3, 0.5, -128, HASH, np.array([2, 0], np.uint8), samples)
    back = DataBlob.from_bytes(blob.to_bytes())
    assert back == blob and back.n_samples == 2 and back.dim == 3
    np.testing.assert_array_equal(back.values()[0], [0.0, 64.0, 127.5])
    with pytest.raises(WireError, match="bad_value"):
        DataBlob(BlobKind.FEATURES, 2, 0.5, 0, HASH, np.array([2, 0], np.uint8), samples).to_bytes()
    with pytest.raises(WireError, match="non_finite"):
        DataBlob(BlobKind.FEATURES, 3, float("inf"), 0, HASH, np.array([2, 0]), samples).to_bytes()


def test_blob_file_round_trip(tmp_path: Path) -> None:
    blob = DataBlob.from_bytes((VECTORS / "blobs" / "features.bin").read_bytes())
    blob.write(tmp_path / "node.blob")
    assert DataBlob.read(tmp_path / "node.blob") == blob


# ---- topics ----------------------------------------------------------------------------------


def test_topics() -> None:
    t = Topics.for_fleet("demo")
    assert t.prefix == default_prefix("demo") == "tinyfl/demo"
    assert t.hello("node-01") == "tinyfl/demo/nodes/node-01/hello"
    assert t.status("node-01") == "tinyfl/demo/nodes/node-01/status"
    assert t.update("node-01") == "tinyfl/demo/nodes/node-01/update"
    assert t.global_ == "tinyfl/demo/global"
    assert t.all_nodes("update") == "tinyfl/demo/nodes/+/update"
    assert t.parse("tinyfl/demo/nodes/n_7/update") == ("update", "n_7")
    assert t.parse("tinyfl/demo/nodes/n_7/other") is None
    assert t.parse("tinyfl/demo/nodes/bad id/hello") is None
    assert t.parse("tinyfl/other/nodes/n/hello") is None
    assert Topics("factory/line-3/tinyfl").update("a") == "factory/line-3/tinyfl/nodes/a/update"


@pytest.mark.parametrize("prefix", ["", "a/+/b", "a/#", "/a", "a/", "a//b", "x" * 97])
def test_bad_prefix_is_a_usage_error(prefix: str) -> None:
    with pytest.raises(UsageError):
        Topics(prefix)


def test_node_ids() -> None:
    assert is_valid_node_id("Az09_-") and is_valid_node_id("x" * 32)
    for bad in ["", "x" * 33, "a b", "a/b", "a+b", "nöde", "a.b"]:
        assert not is_valid_node_id(bad)
        with pytest.raises(UsageError):
            check_node_id(bad)
    with pytest.raises(UsageError):
        Topics("tinyfl/x").hello("a/b")
    with pytest.raises(UsageError):
        default_prefix("bad fleet")
