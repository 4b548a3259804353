"""The wire format written out with `struct` straight from docs/WIRE.md: frames, masked deltas,
secure-aggregation frames and data blobs as the spec lays them out (valid or not). A second
implementation, independent of host/tinyfl/wire, that tools/gen_testvectors.py builds the golden
vectors from."""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
import zlib
from dataclasses import dataclass, field

MODEL_HASH = hashlib.sha256(b"tinyfl golden model").digest()[:8]
OTHER_HASH = hashlib.sha256(b"tinyfl other model").digest()[:8]
TEST_KEY = hashlib.sha256(b"tinyfl golden test key").digest()  # 32 bytes, public: vectors only
TEST_TOPIC = "tinyfl/golden/nodes/node-01/update"

HELLO, GLOBAL, UPDATE, UNMASK, REVEAL, LABEL = 1, 2, 3, 4, 5, 6
LABEL_TOPIC = "tinyfl/golden/nodes/node-01/label"
NAN = float("nan")
INF = float("inf")


# ---------------------------------------------------------------------------------------------
# spec primitives


def f32(x: float) -> bytes:
    return struct.pack("<f", x)


def f32hex(x: float) -> str:
    return f"0x{struct.unpack('<I', f32(x))[0]:08x}"


def f32round(x: float) -> float:
    return float(struct.unpack("<f", f32(x))[0])


def f16(x: float) -> bytes:
    """binary16 as the spec has encoders write it: saturate finite values at 65504, then round
    to nearest even (struct's 'e' rounds to nearest even; it refuses values beyond the range)."""
    if math.isfinite(x) and abs(x) > 65504.0:
        x = 65504.0 if x > 0 else -65504.0
    return struct.pack("<e", f32round(x))


def f16value(x: float) -> float:
    return float(struct.unpack("<e", f16(x))[0])


def tag(key: bytes, topic: str, signed: bytes) -> bytes:
    raw = topic.encode()
    return hmac.new(key, bytes([len(raw)]) + raw + signed, hashlib.sha256).digest()[:16]


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return bytes([len(raw)]) + raw


def frame(
    ftype: int,
    body: bytes,
    *,
    key: bytes | None = None,
    topic: str = TEST_TOPIC,
    magic: bytes = b"TF",
    version: int = 2,
    flags: int = 0,
    auth: int | None = None,
    crc_xor: int = 0,
    tag_xor: int = 0,
    trailing: bytes = b"",
) -> bytes:
    """A v2 frame: header, body, then the CRC (no key) or the 16-byte tag under `key`."""
    auth_byte = (0 if key is None else 16) if auth is None else auth
    signed = magic + bytes([version, ftype, flags, auth_byte]) + body
    if key is None:
        return signed + struct.pack("<I", zlib.crc32(signed) ^ crc_xor) + trailing
    mac = bytearray(tag(key, topic, signed))
    mac[0] ^= tag_xor
    return signed + bytes(mac) + trailing


def pack(codes: list[int], bits: int, pad_value: int = 0) -> bytes:
    """LSB-first packing, bit by bit, as the spec words it; `pad_value` fills the unused bits."""
    total_bits = len(codes) * bits
    nbytes = (total_bits + 7) // 8
    out = bytearray(nbytes)
    for i, c in enumerate(codes):
        u = c & ((1 << bits) - 1)
        for b in range(bits):
            if u >> b & 1:
                pos = i * bits + b
                out[pos // 8] |= 1 << (pos % 8)
    if total_bits % 8:
        out[-1] |= (pad_value << (total_bits % 8)) & 0xFF
    return bytes(out)


@dataclass
class T:
    """A tensor as the spec lays it out (possibly invalid)."""

    bits: int
    scale_mode: int
    rows: int
    cols: int
    scales: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    pad_value: int = 0

    def to_bytes(self) -> bytes:
        out = struct.pack("<BBHH", self.bits, self.scale_mode, self.rows, self.cols)
        out += b"".join(f16(x) for x in self.scales)
        if self.bits == 32:
            return out + b"".join(f32(x) for x in self.values)
        return out + pack(self.codes, self.bits, self.pad_value)

    def fields(self, name: str) -> list[str]:
        if self.bits == 32:
            values = [f32hex(v) for v in self.values]
        else:
            values = []
            for i, c in enumerate(self.codes):
                scale = f16value(self.scales[i // self.cols if self.scale_mode == 1 else 0])
                values.append(f32hex(float(c) * scale))  # exact in double, one rounding to f32
        return [
            f"{name}.bits={self.bits}",
            f"{name}.scale_mode={self.scale_mode}",
            f"{name}.rows={self.rows}",
            f"{name}.cols={self.cols}",
            f"{name}.scales={','.join(f32hex(f16value(x)) for x in self.scales)}",
            f"{name}.codes={','.join(str(c) for c in self.codes)}",
            f"{name}.values={','.join(values)}",
        ]


@dataclass
class HelloSpec:
    node_id: bytes = b"node-01"
    fw_version: int = (0 << 16) | (1 << 8) | 0
    model_hash: bytes = MODEL_HASH
    n_samples: int = 412
    free_ram: int = 23552
    max_payload: int = 4032
    embed_dim: int = 64
    n_classes: int = 5
    uplink_bits: int = 0x0F
    board: int = 1
    key: bytes | None = None

    def body(self) -> bytes:
        return (
            s(self.node_id)
            + struct.pack("<I", self.fw_version)
            + self.model_hash
            + struct.pack("<IIIHHBB", self.n_samples, self.free_ram, self.max_payload,
                          self.embed_dim, self.n_classes, self.uplink_bits, self.board)
        )

    def topic(self) -> str:
        return f"tinyfl/golden/nodes/{self.node_id.decode(errors='replace')}/hello"

    def to_bytes(self) -> bytes:
        return frame(HELLO, self.body(), key=self.key, topic=self.topic())

    def fields(self) -> str:
        return lines(
            "type=hello",
            f"node_id={self.node_id.decode()}",
            f"fw_version={self.fw_version}",
            f"model_hash={self.model_hash.hex()}",
            f"n_samples={self.n_samples}",
            f"free_ram={self.free_ram}",
            f"max_payload={self.max_payload}",
            f"embed_dim={self.embed_dim}",
            f"n_classes={self.n_classes}",
            f"uplink_bits={self.uplink_bits}",
            f"board={self.board}",
        )


def head_8bit_per_row() -> T:
    return T(8, 1, 3, 5, scales=[0.0125, 0.5, 0.0],
             codes=[127, -127, 0, 1, -1, 64, -64, 32, -32, 100, 0, 0, 0, 0, 0])


@dataclass
class GlobalSpec:
    round_id: int = 1
    model_hash: bytes = MODEL_HASH
    embed_dim: int = 4
    n_classes: int = 3
    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.05
    prox_mu: float = 0.0
    clip_norm: float = 0.0
    uplink_bits: int = 8
    uplink_scale_mode: int = 1
    reserved: int = 0
    seed: int = 12345
    selected: list[bytes] = field(default_factory=list)
    n_selected: int | None = None
    head: T = field(default_factory=head_8bit_per_row)
    key: bytes | None = None
    # (mask_bits, reserved, threshold, scale, noise_var)
    secagg: tuple[int, int, int, float, int] | None = None

    def body(self) -> bytes:
        n_sel = len(self.selected) if self.n_selected is None else self.n_selected
        tail = b"" if self.secagg is None else struct.pack("<BBH", *self.secagg[:3]) + f32(
            self.secagg[3]) + struct.pack("<I", self.secagg[4])
        return (
            struct.pack("<I", self.round_id)
            + self.model_hash
            + struct.pack("<HHHH", self.embed_dim, self.n_classes, self.epochs, self.batch_size)
            + f32(self.lr) + f32(self.prox_mu) + f32(self.clip_norm)
            + struct.pack("<BBHIH", self.uplink_bits, self.uplink_scale_mode, self.reserved,
                          self.seed, n_sel)
            + b"".join(s(x) for x in self.selected)
            + self.head.to_bytes()
            + tail
        )

    def topic(self) -> str:
        return "tinyfl/golden/global"

    def to_bytes(self) -> bytes:
        return frame(GLOBAL, self.body(), key=self.key, topic=self.topic(),
                     flags=0 if self.secagg is None else 1)

    def fields(self) -> str:
        return lines(
            "type=global",
            f"round_id={self.round_id}",
            f"model_hash={self.model_hash.hex()}",
            f"embed_dim={self.embed_dim}",
            f"n_classes={self.n_classes}",
            f"epochs={self.epochs}",
            f"batch_size={self.batch_size}",
            f"lr={f32hex(self.lr)}",
            f"prox_mu={f32hex(self.prox_mu)}",
            f"clip_norm={f32hex(self.clip_norm)}",
            f"uplink_bits={self.uplink_bits}",
            f"uplink_scale_mode={self.uplink_scale_mode}",
            f"seed={self.seed}",
            f"n_selected={len(self.selected)}",
            f"selected={','.join(x.decode() for x in self.selected)}",
            *self.head.fields("head"),
            *([] if self.secagg is None else [
                f"secagg.mask_bits={self.secagg[0]}", f"secagg.threshold={self.secagg[2]}",
                f"secagg.scale={f32hex(self.secagg[3])}", f"secagg.noise_var={self.secagg[4]}"]),
        )


@dataclass
class M:
    """A masked delta as the spec lays it out: b-bit unsigned values, LSB-first."""

    bits: int
    rows: int
    cols: int
    values: list[int]
    pad_value: int = 0

    def to_bytes(self) -> bytes:
        total = len(self.values) * self.bits
        out = bytearray((total + 7) // 8)
        for i, v in enumerate(self.values):
            for b in range(self.bits):
                if v >> b & 1:
                    pos = i * self.bits + b
                    out[pos // 8] |= 1 << (pos % 8)
        if total % 8:
            out[-1] |= (self.pad_value << (total % 8)) & 0xFF
        return struct.pack("<BHH", self.bits, self.rows, self.cols) + bytes(out)

    def fields(self) -> list[str]:
        return [f"delta.masked_bits={self.bits}", f"delta.rows={self.rows}",
                f"delta.cols={self.cols}", f"delta.masked={','.join(str(v) for v in self.values)}"]


@dataclass
class UnmaskSpec:
    round_id: int = 21
    n_survivors: int = 5
    dropped: list[bytes] = field(default_factory=lambda: [b"node-02", b"node-07"])
    key: bytes | None = None

    def body(self) -> bytes:
        return (struct.pack("<IHH", self.round_id, self.n_survivors, len(self.dropped))
                + b"".join(s(x) for x in self.dropped))

    def topic(self) -> str:
        return "tinyfl/golden/global"

    def to_bytes(self) -> bytes:
        return frame(UNMASK, self.body(), key=self.key, topic=self.topic())

    def fields(self) -> str:
        return lines("type=unmask", f"round_id={self.round_id}", f"n_survivors={self.n_survivors}",
                     f"n_dropped={len(self.dropped)}",
                     f"dropped={','.join(x.decode() for x in self.dropped)}")


@dataclass
class RevealSpec:
    round_id: int = 21
    seeds: list[tuple[bytes, bytes]] = field(default_factory=lambda: [
        (b"node-02", hashlib.sha256(b"round seed 02").digest()),
        (b"node-07", hashlib.sha256(b"round seed 07").digest())])
    key: bytes | None = None

    def body(self) -> bytes:
        return struct.pack("<IH", self.round_id, len(self.seeds)) + b"".join(
            s(peer) + seed for peer, seed in self.seeds)

    def topic(self) -> str:
        return TEST_TOPIC

    def to_bytes(self) -> bytes:
        return frame(REVEAL, self.body(), key=self.key, topic=self.topic())

    def fields(self) -> str:
        return lines("type=reveal", f"round_id={self.round_id}", f"n={len(self.seeds)}",
                     f"peers={','.join(p.decode() for p, _ in self.seeds)}",
                     f"seeds={','.join(x.hex() for _, x in self.seeds)}")


@dataclass
class UpdateSpec:
    round_id: int = 7
    n_samples: int = 412
    loss: float = 0.9876
    accuracy: float = 0.8125
    update_norm: float = 0.734
    delta: T = field(default_factory=lambda: T(8, 1, 3, 5, scales=[0.001, 0.002, 0.0035],
                                               codes=[(i * 37) % 255 - 127 for i in range(15)]))
    key: bytes | None = None
    masked: M | None = None  # a secure-aggregation answer instead of `delta`

    def body(self) -> bytes:
        return (
            struct.pack("<II", self.round_id, self.n_samples)
            + f16(self.loss) + f16(self.accuracy) + f16(self.update_norm)
            + (self.delta.to_bytes() if self.masked is None else self.masked.to_bytes())
        )

    def topic(self) -> str:
        return TEST_TOPIC

    def to_bytes(self) -> bytes:
        return frame(UPDATE, self.body(), key=self.key, topic=self.topic(),
                     flags=0 if self.masked is None else 1)

    def fields(self) -> str:
        return lines(
            "type=update",
            f"round_id={self.round_id}",
            f"n_samples={self.n_samples}",
            f"loss={f32hex(f16value(self.loss))}",
            f"accuracy={f32hex(f16value(self.accuracy))}",
            f"update_norm={f32hex(f16value(self.update_norm))}",
            *(self.delta.fields("delta") if self.masked is None else self.masked.fields()),
        )


@dataclass
class LabelSpec:
    """LABEL: round_id, u64 seq, u8 n, then n x (u32 start_ms, u32 duration_ms, i16 label)."""

    round_id: int = 1733140000
    seq: int = 1733140123456
    intervals: list[tuple[int, int, int]] = field(default_factory=lambda: [
        (0, 5000, 2), (5000, 2500, -1), (10000, 60000, 0)])
    n: int | None = None  # the count written, when it must differ from len(intervals)
    key: bytes | None = None

    def body(self) -> bytes:
        n = len(self.intervals) if self.n is None else self.n
        return struct.pack("<IQB", self.round_id, self.seq, n) + b"".join(
            struct.pack("<IIh", *iv) for iv in self.intervals)

    def topic(self) -> str:
        return LABEL_TOPIC

    def to_bytes(self) -> bytes:
        return frame(LABEL, self.body(), key=self.key, topic=self.topic())

    def fields(self) -> str:
        return lines("type=label", f"round_id={self.round_id}", f"seq={self.seq}",
                     f"n={len(self.intervals)}",
                     f"starts={','.join(str(iv[0]) for iv in self.intervals)}",
                     f"durations={','.join(str(iv[1]) for iv in self.intervals)}",
                     f"labels={','.join(str(iv[2]) for iv in self.intervals)}")


def lines(*items: str) -> str:
    return "\n".join(items) + "\n"


@dataclass
class BlobSpec:
    kind: int
    n_classes: int
    scale: float
    zero_point: int
    labels: list[int]
    samples: list[list[int]]
    dim: int | None = None
    magic: bytes = b"TFDB"
    version: int = 1
    reserved: int = 0
    model_hash: bytes = MODEL_HASH
    pad_value: int = 0

    def to_bytes(self) -> bytes:
        n = len(self.labels)
        dim = self.dim if self.dim is not None else (len(self.samples[0]) if self.samples else 4)
        header = self.magic + struct.pack("<BBHIHHfi", self.version, self.kind, self.reserved, n,
                                          dim, self.n_classes, self.scale, self.zero_point)
        pad = (-n) % 4
        covered = (header + self.model_hash + bytes(self.labels) + bytes([self.pad_value] * pad)
                   + b"".join(struct.pack(f"<{len(r)}b", *r) for r in self.samples))
        return covered + struct.pack("<I", zlib.crc32(covered))

    def fields(self) -> str:
        dim = self.dim if self.dim is not None else (len(self.samples[0]) if self.samples else 4)
        return lines(
            f"kind={self.kind}",
            f"n_samples={len(self.labels)}",
            f"dim={dim}",
            f"n_classes={self.n_classes}",
            f"scale={f32hex(self.scale)}",
            f"zero_point={self.zero_point}",
            f"model_hash={self.model_hash.hex()}",
            f"labels={','.join(str(x) for x in self.labels)}",
            f"samples={','.join(str(v) for r in self.samples for v in r)}",
        )


