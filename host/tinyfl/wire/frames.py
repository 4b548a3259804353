"""The frames (docs/WIRE.md), byte for byte as the firmware codes them: HELLO, GLOBAL and UPDATE,
for secure aggregation UNMASK and REVEAL (tinyfl.wire.masked), and an operator's LABEL
(tinyfl.wire.label).

`decode(data)` returns a `Hello`, `Global`, `Update`, `Unmask`, `Reveal` or `Label`, or raises `WireError` whose `reason` is the
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
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from tinyfl.errors import WireError
from tinyfl.wire.fields import (
    MODEL_HASH_LEN,
    Reader,
    Writer,
    check_float,
    f16_saturated,
    is_valid_node_id,
    read_tensor,
    write_tensor,
)
from tinyfl.wire.label import Label, read_label, write_label
from tinyfl.wire.masked import (
    Masked,
    Reveal,
    SecAgg,
    Unmask,
    read_masked,
    read_reveal,
    read_secagg,
    read_unmask,
    write_masked,
    write_reveal,
    write_secagg,
    write_unmask,
)
from tinyfl.wire.tensor import FLOAT_BITS, QUANT_BITS, Tensor

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
    "Label",
    "Message",
    "Update",
    "decode",
    "encode",
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
MAX_EPOCHS = 64
MAX_BATCH = 1024


class FrameType(IntEnum):
    HELLO = 1
    GLOBAL = 2
    UPDATE = 3
    UNMASK = 4
    REVEAL = 5
    LABEL = 6


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
    secagg: SecAgg | None = None  # a secure-aggregation round (the frame's MASKED flag)

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
    delta: Tensor | Masked  # Masked: a secure-aggregation round's answer (MASKED flag)


Message = Hello | Global | Update | Unmask | Reveal | Label


# ---------------------------------------------------------------------------------------------
# decoding


def _decode_hello(r: Reader) -> Hello:
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


def _decode_global(r: Reader, masked: bool) -> Global:
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
    check_float(lr, "lr", positive=True)
    prox_mu = r.f32("prox_mu")
    check_float(prox_mu, "prox_mu")
    clip_norm = r.f32("clip_norm")
    check_float(clip_norm, "clip_norm")
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
    head = read_tensor(r, "head", (n_classes, embed_dim + 1))
    secagg = read_secagg(r, n_selected) if masked else None
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
        secagg,
    )


def _decode_update(r: Reader, masked: bool) -> Update:
    round_id = r.u32("round_id")
    if round_id == 0:
        raise WireError("bad_value", "round_id must be >= 1")
    n_samples = r.u32("n_samples")
    loss = r.f16("loss")
    check_float(loss, "loss")
    accuracy = r.f16("accuracy")
    check_float(accuracy, "accuracy", at_most=1.0)
    update_norm = r.f16("update_norm")
    check_float(update_norm, "update_norm")
    delta = read_masked(r) if masked else read_tensor(r, "delta")
    r.finish("UPDATE")
    return Update(round_id, n_samples, loss, accuracy, update_norm, delta)


@dataclass(frozen=True)
class _Frame:
    ftype: int
    masked: bool
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
    if ftype not in {t.value for t in FrameType}:
        raise WireError("bad_type", f"frame type {ftype}")
    if flags & ~FLAG_MASKED:
        raise WireError("bad_value", f"unknown flags 0x{flags:02x}")
    if flags & FLAG_MASKED and ftype not in (FrameType.GLOBAL, FrameType.UPDATE):
        raise WireError("bad_value", "only a GLOBAL or an UPDATE can be MASKED")  # LABEL neither
    if auth not in (AUTH_CRC, AUTH_TAG):
        raise WireError("bad_value", f"auth {auth}, must be {AUTH_CRC} or {AUTH_TAG}")
    trailer_len = TAG_LEN if auth == AUTH_TAG else CRC_LEN
    if len(data) < HEADER_SIZE + trailer_len:
        raise WireError("truncated", f"{len(data)} bytes, no room for the trailer")
    end = len(data) - trailer_len
    trailer = data[end:]
    if auth == AUTH_CRC and zlib.crc32(data[:end]) != int.from_bytes(trailer, "little"):
        raise WireError("bad_crc")
    return _Frame(ftype, bool(flags & FLAG_MASKED), auth, data[HEADER_SIZE:end], data[:end],
                  trailer)


def _decode_body(f: _Frame) -> Message:
    r = Reader(f.body)
    if f.ftype == FrameType.HELLO:
        return _decode_hello(r)
    if f.ftype == FrameType.GLOBAL:
        return _decode_global(r, f.masked)
    if f.ftype == FrameType.UPDATE:
        return _decode_update(r, f.masked)
    if f.ftype == FrameType.UNMASK:
        return read_unmask(r)
    if f.ftype == FrameType.LABEL:
        return read_label(r)
    return read_reveal(r)


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


def _body(msg: Message) -> tuple[FrameType, int, bytes]:
    """(type, flags, body) of a message."""
    w = Writer()
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
        return FrameType.HELLO, 0, b"".join(w.parts)
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
        write_tensor(w, msg.head, "head")
        if msg.secagg is not None:
            write_secagg(w, msg.secagg)
        return FrameType.GLOBAL, FLAG_MASKED if msg.secagg else 0, b"".join(w.parts)
    if isinstance(msg, Update):
        w.pack("II", msg.round_id, msg.n_samples, what="UPDATE")
        stats = (msg.loss, msg.accuracy, msg.update_norm)
        w.pack("eee", *(f16_saturated(v) for v in stats), what="UPDATE")
        if isinstance(msg.delta, Masked):
            write_masked(w, msg.delta)
            return FrameType.UPDATE, FLAG_MASKED, b"".join(w.parts)
        write_tensor(w, msg.delta, "delta")
        return FrameType.UPDATE, 0, b"".join(w.parts)
    if isinstance(msg, Unmask):
        write_unmask(w, msg)
        return FrameType.UNMASK, 0, b"".join(w.parts)
    if isinstance(msg, Reveal):
        write_reveal(w, msg)
        return FrameType.REVEAL, 0, b"".join(w.parts)
    if isinstance(msg, Label):
        write_label(w, msg)
        return FrameType.LABEL, 0, b"".join(w.parts)
    raise TypeError(f"cannot encode {type(msg).__name__}")


def encode(msg: Message, *, key: bytes | None = None, topic: str | None = None) -> bytes:
    """The frame for `msg`, checked by decoding it; invalid fields raise WireError. With `key`
    (and the `topic` it is published on) the frame ends in a tag, else in a CRC."""
    ftype, flags, body = _body(msg)
    auth = AUTH_CRC if key is None else AUTH_TAG
    signed = MAGIC + struct.pack("<BBBB", WIRE_VERSION, ftype, flags, auth) + body
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


