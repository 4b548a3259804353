"""HELLO, GLOBAL and UPDATE frames (docs/WIRE.md), byte for byte as the firmware codes them.

`decode(data)` returns a `Hello`, `Global` or `Update`, or raises `WireError` whose `reason` is the
firmware's `status_name` for the same bytes ("truncated", "bad_crc", ...). Checks run in the order
docs/WIRE.md gives, so the first failure is the same on both sides. Any other exception escaping
`decode` is a bug. `decode` checks a CRC but holds no key: a receiver uses `open_frame(data,
topic, key)`, which also insists on the fleet's kind of frame and checks the tag before it
decodes the body ("unauthenticated", "bad_tag", "no_key").

`encode(msg, key=..., topic=...)` writes the frame (a tag under `key` over the topic and the
frame, or a CRC without a key) and then decodes it, so it never emits a frame the firmware would
reject; invalid fields raise `WireError` with the reason the decoder gives.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from tinyfl.errors import WireError
from tinyfl.wire.tensor import (
    FLOAT_BITS,
    QUANT_BITS,
    SCALE_PER_ROW,
    Tensor,
    _to_signed,
    _unpack_raw,
    pack_codes,
    packed_size,
)

__all__ = [
    "AUTH_CRC",
    "AUTH_TAG",
    "FLAG_MASKED",
    "TAG_LEN",
    "WIRE_VERSION",
    "Board",
    "FrameType",
    "Global",
    "Hello",
    "Message",
    "Update",
    "decode",
    "encode",
    "fields_text",
    "frame_auth",
    "frame_tag",
    "is_valid_node_id",
    "open_frame",
    "verify_frame",
]

WIRE_VERSION = 2
MAGIC = b"TF"
HEADER_SIZE = 6
CRC_LEN = 4
FLAG_MASKED = 0x01
TAG_LEN = 16  # HMAC-SHA256 truncated to 128 bits (RFC 2104, section 5)
AUTH_CRC = 0  # the `auth` byte: the frame ends in a CRC-32 (a fleet without keys)
AUTH_TAG = TAG_LEN  # ... or in a TAG_LEN-byte tag
MAX_TOPIC = 255  # the tag covers u8 len(topic) | topic
F16_MAX = 65504.0
MODEL_HASH_LEN = 8
MAX_NODE_ID = 32
MAX_EPOCHS = 64
MAX_BATCH = 1024
_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class FrameType(IntEnum):
    HELLO = 1
    GLOBAL = 2
    UPDATE = 3


class Board(IntEnum):
    NATIVE = 0
    QEMU_CORTEX_M4 = 1
    ESP32DEV = 2
    NANO33BLE = 3


# HELLO uplink_bits bit set.
UPLINK_8BIT = 0x01
UPLINK_4BIT = 0x02
UPLINK_2BIT = 0x04
UPLINK_FLOAT32 = 0x08


def is_valid_node_id(node_id: str | bytes) -> bool:
    """1..32 bytes of [A-Za-z0-9_-]."""
    raw = node_id.encode("utf-8", "replace") if isinstance(node_id, str) else node_id
    return 1 <= len(raw) <= MAX_NODE_ID and all(c in _ID_CHARS for c in raw)


@dataclass(frozen=True)
class Hello:
    """A node's capabilities, retained on `<prefix>/nodes/<id>/hello`."""

    node_id: str
    fw_version: int
    model_hash: bytes
    n_samples: int
    free_ram: int
    max_payload: int
    embed_dim: int
    n_classes: int
    uplink_bits: int
    board: int


@dataclass(frozen=True)
class Global:
    """One round's instructions and the head it starts from, retained on `<prefix>/global`."""

    round_id: int
    model_hash: bytes
    embed_dim: int
    n_classes: int
    epochs: int
    batch_size: int
    lr: float
    prox_mu: float
    clip_norm: float
    uplink_bits: int
    uplink_scale_mode: int
    seed: int
    selected: tuple[str, ...]
    head: Tensor

    def selects(self, node_id: str) -> bool:
        """True when `node_id` takes part in this round (every node does when none are listed)."""
        return not self.selected or node_id in self.selected


@dataclass(frozen=True)
class Update:
    """A node's result for one round, on `<prefix>/nodes/<id>/update`. Lean by design: the node
    is the topic's, the model and epochs are the round's (docs/WIRE.md, UPDATE). The three
    statistics travel as binary16: the encoder saturates them at 65504 and rounds them."""

    round_id: int
    n_samples: int
    loss: float
    accuracy: float
    update_norm: float
    delta: Tensor


Message = Hello | Global | Update


# ---------------------------------------------------------------------------------------------
# decoding


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self._data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise WireError("truncated", f"{what}: needs {n} bytes, {self.remaining()} left")
        out = self._data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")

    def f32(self, what: str) -> float:
        return float(struct.unpack("<f", self.take(4, what))[0])

    def f16(self, what: str) -> float:
        return float(struct.unpack("<e", self.take(2, what))[0])

    def node_id(self, what: str) -> str:
        n = self.u8(what)
        raw = self.take(n, what)
        if not is_valid_node_id(raw):
            raise WireError("bad_value", f"{what}: {raw!r} is not 1..32 of [A-Za-z0-9_-]")
        return raw.decode("ascii")

    def finish(self, what: str) -> None:
        if self.remaining():
            raise WireError("bad_length", f"{what}: {self.remaining()} bytes left over")


def _check_float(
    v: float, what: str, *, positive: bool = False, at_most: float | None = None
) -> None:
    if not math.isfinite(v):
        raise WireError("non_finite", f"{what} is {v}")
    if (v <= 0.0) if positive else (v < 0.0):
        raise WireError("bad_value", f"{what} is {v}, must be {'>' if positive else '>='} 0")
    if at_most is not None and v > at_most:
        raise WireError("bad_value", f"{what} is {v}, must be <= {at_most}")


def _read_tensor(r: _Reader, what: str, shape: tuple[int, int] | None = None) -> Tensor:
    bits = r.u8(f"{what}.bits")
    if bits not in QUANT_BITS and bits != FLOAT_BITS:
        raise WireError("bad_value", f"{what}.bits is {bits}")
    mode = r.u8(f"{what}.scale_mode")
    if mode > 1 or (bits == FLOAT_BITS and mode != 0):
        raise WireError("bad_value", f"{what}.scale_mode is {mode} with bits {bits}")
    rows = r.u16(f"{what}.rows")
    cols = r.u16(f"{what}.cols")
    if shape is not None and (rows, cols) != shape:
        raise WireError("bad_value", f"{what} is {rows}x{cols}, must be {shape[0]}x{shape[1]}")
    m = 0 if bits == FLOAT_BITS else (rows if mode == SCALE_PER_ROW else 1)
    scales = np.frombuffer(r.take(2 * m, f"{what}.scales"), dtype="<f2").astype(np.float32)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(scales) | (scales < 0)
    if bad.any():
        first = float(scales[int(np.argmax(bad))])
        _check_float(first, f"{what}.scales")
    n = rows * cols
    data = r.take(packed_size(n, bits), f"{what}.data")
    if bits == FLOAT_BITS:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(rows, cols)
        if not np.isfinite(values).all():
            raise WireError("non_finite", f"{what} holds a NaN or Inf")
        return Tensor(bits, 0, rows, cols, scales, values=values)
    fields = _unpack_raw(data, bits)
    if (fields[:n] == (1 << (bits - 1))).any():
        raise WireError("bad_value", f"{what} holds the invalid code {-(1 << (bits - 1))}")
    if fields[n:].any():
        raise WireError("bad_value", f"{what}: padding bits are not zero")
    codes = _to_signed(fields[:n], bits).reshape(rows, cols)
    return Tensor(bits, mode, rows, cols, scales, codes=codes)


def _decode_hello(r: _Reader) -> Hello:
    node_id = r.node_id("node_id")
    fw_version = r.u32("fw_version")
    model_hash = r.take(MODEL_HASH_LEN, "model_hash")
    n_samples = r.u32("n_samples")
    free_ram = r.u32("free_ram")
    max_payload = r.u32("max_payload")
    embed_dim = r.u16("embed_dim")
    n_classes = r.u16("n_classes")
    uplink_bits = r.u8("uplink_bits")
    if uplink_bits & 0xF0:
        raise WireError("bad_value", f"uplink_bits 0x{uplink_bits:02x} sets unknown bits")
    board = r.u8("board")
    if board > max(Board):
        raise WireError("bad_value", f"board {board} is unknown")
    r.finish("HELLO")
    return Hello(
        node_id,
        fw_version,
        model_hash,
        n_samples,
        free_ram,
        max_payload,
        embed_dim,
        n_classes,
        uplink_bits,
        board,
    )


def _decode_global(r: _Reader) -> Global:
    round_id = r.u32("round_id")
    if round_id == 0:
        raise WireError("bad_value", "round_id must be >= 1")
    model_hash = r.take(MODEL_HASH_LEN, "model_hash")
    embed_dim = r.u16("embed_dim")
    n_classes = r.u16("n_classes")
    epochs = r.u16("epochs")
    if not 1 <= epochs <= MAX_EPOCHS:
        raise WireError("bad_value", f"epochs is {epochs}, must be 1..{MAX_EPOCHS}")
    batch_size = r.u16("batch_size")
    if not 1 <= batch_size <= MAX_BATCH:
        raise WireError("bad_value", f"batch_size is {batch_size}, must be 1..{MAX_BATCH}")
    lr = r.f32("lr")
    _check_float(lr, "lr", positive=True)
    prox_mu = r.f32("prox_mu")
    _check_float(prox_mu, "prox_mu")
    clip_norm = r.f32("clip_norm")
    _check_float(clip_norm, "clip_norm")
    uplink_bits = r.u8("uplink_bits")
    if uplink_bits not in QUANT_BITS and uplink_bits != FLOAT_BITS:
        raise WireError("bad_value", f"uplink_bits is {uplink_bits}")
    uplink_scale_mode = r.u8("uplink_scale_mode")
    if uplink_scale_mode > 1:
        raise WireError("bad_value", f"uplink_scale_mode is {uplink_scale_mode}")
    if r.u16("reserved") != 0:
        raise WireError("bad_value", "reserved field is not 0")
    seed = r.u32("seed")
    n_selected = r.u16("n_selected")
    selected = tuple(r.node_id(f"selected[{i}]") for i in range(n_selected))
    head = _read_tensor(r, "head", (n_classes, embed_dim + 1))
    r.finish("GLOBAL")
    return Global(
        round_id,
        model_hash,
        embed_dim,
        n_classes,
        epochs,
        batch_size,
        lr,
        prox_mu,
        clip_norm,
        uplink_bits,
        uplink_scale_mode,
        seed,
        selected,
        head,
    )


def _decode_update(r: _Reader) -> Update:
    round_id = r.u32("round_id")
    if round_id == 0:
        raise WireError("bad_value", "round_id must be >= 1")
    n_samples = r.u32("n_samples")
    loss = r.f16("loss")
    _check_float(loss, "loss")
    accuracy = r.f16("accuracy")
    _check_float(accuracy, "accuracy", at_most=1.0)
    update_norm = r.f16("update_norm")
    _check_float(update_norm, "update_norm")
    delta = _read_tensor(r, "delta")
    r.finish("UPDATE")
    return Update(round_id, n_samples, loss, accuracy, update_norm, delta)


@dataclass(frozen=True)
class _Frame:
    ftype: int
    auth: int
    body: bytes
    signed: bytes  # the bytes the tag covers after the topic: header and body
    trailer: bytes  # the CRC or the tag


def _split_frame(data: bytes) -> _Frame:
    """Checks the frame around the body (docs/WIRE.md, "Frame"), the CRC included."""
    if len(data) < HEADER_SIZE:
        raise WireError("truncated", f"{len(data)} bytes, a frame header is {HEADER_SIZE}")
    if data[0:2] != MAGIC:
        raise WireError("bad_magic", f"starts with {data[0:2]!r}")
    if data[2] != WIRE_VERSION:
        raise WireError("bad_version", f"version {data[2]}, this build speaks {WIRE_VERSION}")
    ftype, flags, auth = data[3], data[4], data[5]
    if ftype not in (1, 2, 3):
        raise WireError("bad_type", f"frame type {ftype}")
    if flags & ~FLAG_MASKED:
        raise WireError("bad_value", f"unknown flags 0x{flags:02x}")
    if flags & FLAG_MASKED:
        raise WireError("unsupported", "masked updates are not supported in v2")
    if auth not in (AUTH_CRC, AUTH_TAG):
        raise WireError("bad_value", f"auth {auth}, must be {AUTH_CRC} or {AUTH_TAG}")
    trailer_len = TAG_LEN if auth == AUTH_TAG else CRC_LEN
    if len(data) < HEADER_SIZE + trailer_len:
        raise WireError("truncated", f"{len(data)} bytes, no room for the trailer")
    end = len(data) - trailer_len
    trailer = data[end:]
    if auth == AUTH_CRC and zlib.crc32(data[:end]) != int.from_bytes(trailer, "little"):
        raise WireError("bad_crc")
    return _Frame(ftype, auth, data[HEADER_SIZE:end], data[:end], trailer)


def _decode_body(f: _Frame) -> Message:
    r = _Reader(f.body)
    if f.ftype == FrameType.HELLO:
        return _decode_hello(r)
    if f.ftype == FrameType.GLOBAL:
        return _decode_global(r)
    return _decode_update(r)


def decode(data: bytes | bytearray | memoryview) -> Message:
    """Decodes one frame without a key (the CRC is checked, a tag is not); raises WireError
    (reason as the firmware names it) if it is not valid."""
    return _decode_body(_split_frame(bytes(data)))


def frame_tag(key: bytes, topic: str, signed: bytes) -> bytes:
    """The tag of a frame: HMAC-SHA256(key, u8 len(topic) | topic | header and body)[:16]."""
    raw = topic.encode()
    if not 1 <= len(raw) <= MAX_TOPIC:
        raise WireError("bad_value", f"a topic is 1..{MAX_TOPIC} bytes, got {len(raw)}")
    mac = hmac.new(key, bytes([len(raw)]) + raw + signed, hashlib.sha256)
    return mac.digest()[:TAG_LEN]


def frame_auth(data: bytes | bytearray | memoryview) -> int | None:
    """The frame's `auth` byte (AUTH_CRC or AUTH_TAG), or None when there is no header."""
    return data[5] if len(data) >= HEADER_SIZE and bytes(data[0:2]) == MAGIC else None


def verify_frame(data: bytes | bytearray | memoryview, topic: str, key: bytes | None) -> None:
    """A receiver's check of a frame from `topic` before its body is looked at: the header, and
    with a key a tag under it ("unauthenticated" for a CRC frame, "bad_tag"); without one (a
    fleet without keys) the CRC, and a tagged frame is refused ("no_key"): it cannot be checked.
    Raises WireError; a frame that passes came from the key's holder (or, without keys, from
    anyone)."""
    f = _split_frame(bytes(data))
    if key is None:
        if f.auth != AUTH_CRC:
            raise WireError("no_key", "a tagged frame, and no key to check it")
    elif f.auth != AUTH_TAG:
        raise WireError("unauthenticated", "a frame without a tag on a fleet with keys")
    elif not hmac.compare_digest(frame_tag(key, topic, f.signed), f.trailer):
        raise WireError("bad_tag")


def open_frame(data: bytes | bytearray | memoryview, topic: str, key: bytes | None) -> Message:
    """`verify_frame`, then the body: what a receiver does with a frame from `topic`."""
    verify_frame(data, topic, key)
    return decode(data)


# ---------------------------------------------------------------------------------------------
# encoding


class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def pack(self, fmt: str, *values: object, what: str) -> None:
        try:
            self.parts.append(struct.pack("<" + fmt, *values))
        except (struct.error, OverflowError) as exc:
            kind = "non_finite" if isinstance(exc, OverflowError) else "bad_value"
            raise WireError(kind, f"{what}: {exc}") from None

    def raw(self, b: bytes) -> None:
        self.parts.append(bytes(b))

    def node_id(self, node_id: str, what: str) -> None:
        raw = node_id.encode("utf-8")
        self.pack("B", len(raw), what=what)
        self.raw(raw)

    def hash(self, h: bytes) -> None:
        if len(h) != MODEL_HASH_LEN:
            raise WireError("bad_value", f"model_hash must be {MODEL_HASH_LEN} bytes")
        self.raw(h)


def f16_saturated(x: float) -> float:
    """x as the binary16 an encoder sends: finite values beyond +-65504 become +-65504, then
    round to nearest even (NaN and Inf stay, for the decoder to refuse)."""
    if math.isfinite(x) and abs(x) > F16_MAX:
        x = math.copysign(F16_MAX, x)
    return float(np.float16(np.float32(x)))


def _write_tensor(w: _Writer, t: Tensor, what: str) -> None:
    w.pack("BBHH", t.bits, t.scale_mode, t.rows, t.cols, what=what)
    w.raw(t.scales.astype("<f2").tobytes())  # binary16 values already (Tensor's invariant)
    if t.bits == FLOAT_BITS:
        assert t.values is not None
        w.raw(t.values.astype("<f4").tobytes())
        return
    if t.bits not in QUANT_BITS:
        raise WireError("bad_value", f"{what}.bits is {t.bits}")
    assert t.codes is not None
    limit = (1 << (t.bits - 1)) - 1
    if t.codes.size and (int(t.codes.min()) < -limit or int(t.codes.max()) > limit):
        raise WireError("bad_value", f"{what}: codes must lie in [-{limit}, {limit}]")
    w.raw(pack_codes(t.codes, t.bits))


def _body(msg: Message) -> tuple[FrameType, bytes]:
    w = _Writer()
    if isinstance(msg, Hello):
        w.node_id(msg.node_id, "node_id")
        w.pack("I", msg.fw_version, what="fw_version")
        w.hash(msg.model_hash)
        w.pack(
            "IIIHHBB",
            msg.n_samples,
            msg.free_ram,
            msg.max_payload,
            msg.embed_dim,
            msg.n_classes,
            msg.uplink_bits,
            msg.board,
            what="HELLO",
        )
        return FrameType.HELLO, b"".join(w.parts)
    if isinstance(msg, Global):
        w.pack("I", msg.round_id, what="round_id")
        w.hash(msg.model_hash)
        w.pack("HHHH", msg.embed_dim, msg.n_classes, msg.epochs, msg.batch_size, what="GLOBAL")
        w.pack("fff", msg.lr, msg.prox_mu, msg.clip_norm, what="GLOBAL")
        w.pack(
            "BBHIH",
            msg.uplink_bits,
            msg.uplink_scale_mode,
            0,
            msg.seed,
            len(msg.selected),
            what="GLOBAL",
        )
        for i, node_id in enumerate(msg.selected):
            w.node_id(node_id, f"selected[{i}]")
        _write_tensor(w, msg.head, "head")
        return FrameType.GLOBAL, b"".join(w.parts)
    if isinstance(msg, Update):
        w.pack("II", msg.round_id, msg.n_samples, what="UPDATE")
        stats = (msg.loss, msg.accuracy, msg.update_norm)
        w.pack("eee", *(f16_saturated(v) for v in stats), what="UPDATE")
        _write_tensor(w, msg.delta, "delta")
        return FrameType.UPDATE, b"".join(w.parts)
    raise TypeError(f"cannot encode {type(msg).__name__}")


def encode(msg: Message, *, key: bytes | None = None, topic: str | None = None) -> bytes:
    """The frame for `msg`, checked by decoding it; invalid fields raise WireError. With `key`
    (and the `topic` it is published on) the frame ends in a tag, else in a CRC."""
    ftype, body = _body(msg)
    auth = AUTH_CRC if key is None else AUTH_TAG
    signed = MAGIC + struct.pack("<BBBB", WIRE_VERSION, ftype, 0, auth) + body
    if key is None:
        frame = signed + struct.pack("<I", zlib.crc32(signed))
    else:
        if topic is None:
            raise ValueError("a tagged frame needs the topic it is published on")
        frame = signed + frame_tag(key, topic, signed)
    decode(frame)
    return frame


def encode_hello(msg: Hello, *, key: bytes | None = None, topic: str | None = None) -> bytes:
    return encode(msg, key=key, topic=topic)


def encode_global(msg: Global, *, key: bytes | None = None, topic: str | None = None) -> bytes:
    return encode(msg, key=key, topic=topic)


def encode_update(msg: Update, *, key: bytes | None = None, topic: str | None = None) -> bytes:
    return encode(msg, key=key, topic=topic)


# ---------------------------------------------------------------------------------------------
# canonical text


def _f32_hex(v: float) -> str:
    return f"0x{struct.unpack('<I', struct.pack('<f', v))[0]:08x}"


def _f32_list(a: npt.ArrayLike) -> str:
    raw = np.asarray(a, dtype="<f4").tobytes()
    return ",".join(f"0x{b:08x}" for b in np.frombuffer(raw, dtype="<u4").tolist())


def _tensor_text(t: Tensor, name: str) -> list[str]:
    codes = "" if t.codes is None else ",".join(str(c) for c in t.codes.reshape(-1).tolist())
    return [
        f"{name}.bits={t.bits}",
        f"{name}.scale_mode={t.scale_mode}",
        f"{name}.rows={t.rows}",
        f"{name}.cols={t.cols}",
        f"{name}.scales={_f32_list(t.scales)}",
        f"{name}.codes={codes}",
        f"{name}.values={_f32_list(t.dequantized().reshape(-1))}",
    ]


def fields_text(msg: Message) -> str:
    """A canonical dump, one `key=value` per line: what the golden `.fields.txt` files hold.

    Integers in decimal, hashes in lowercase hex, every float as the hex of its float32
    bits (`0x3c23d70a`; binary16 fields widened), lists comma-separated; tensors as bits/scale_mode/rows/cols/scales/codes
    and `values`, the dequantized float32 values (the floats themselves for bits 32).
    """
    if isinstance(msg, Hello):
        lines = [
            "type=hello",
            f"node_id={msg.node_id}",
            f"fw_version={msg.fw_version}",
            f"model_hash={msg.model_hash.hex()}",
            f"n_samples={msg.n_samples}",
            f"free_ram={msg.free_ram}",
            f"max_payload={msg.max_payload}",
            f"embed_dim={msg.embed_dim}",
            f"n_classes={msg.n_classes}",
            f"uplink_bits={msg.uplink_bits}",
            f"board={msg.board}",
        ]
    elif isinstance(msg, Global):
        lines = [
            "type=global",
            f"round_id={msg.round_id}",
            f"model_hash={msg.model_hash.hex()}",
            f"embed_dim={msg.embed_dim}",
            f"n_classes={msg.n_classes}",
            f"epochs={msg.epochs}",
            f"batch_size={msg.batch_size}",
            f"lr={_f32_hex(msg.lr)}",
            f"prox_mu={_f32_hex(msg.prox_mu)}",
            f"clip_norm={_f32_hex(msg.clip_norm)}",
            f"uplink_bits={msg.uplink_bits}",
            f"uplink_scale_mode={msg.uplink_scale_mode}",
            f"seed={msg.seed}",
            f"n_selected={len(msg.selected)}",
            f"selected={','.join(msg.selected)}",
            *_tensor_text(msg.head, "head"),
        ]
    else:
        lines = [
            "type=update",
            f"round_id={msg.round_id}",
            f"n_samples={msg.n_samples}",
            f"loss={_f32_hex(msg.loss)}",
            f"accuracy={_f32_hex(msg.accuracy)}",
            f"update_norm={_f32_hex(msg.update_norm)}",
            *_tensor_text(msg.delta, "delta"),
        ]
    return "\n".join(lines) + "\n"
