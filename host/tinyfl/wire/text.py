"""The canonical text of a frame's fields (what the golden `.fields.txt` files hold; the
firmware's test prints the same from its own decoder)."""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from tinyfl.wire.frames import Global, Hello, Label, Message
from tinyfl.wire.masked import Masked, Reveal, Unmask
from tinyfl.wire.tensor import Tensor

__all__ = ["fields_text"]


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


def _masked_text(m: Masked) -> list[str]:
    rows, cols = m.shape
    return [f"delta.masked_bits={m.bits}", f"delta.rows={rows}", f"delta.cols={cols}",
            f"delta.masked={','.join(str(v) for v in m.values.reshape(-1).tolist())}"]


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
        if msg.secagg is not None:
            lines += [f"secagg.mask_bits={msg.secagg.mask_bits}",
                      f"secagg.threshold={msg.secagg.threshold}",
                      f"secagg.scale={_f32_hex(msg.secagg.scale)}",
                      f"secagg.noise_var={msg.secagg.noise_var}"]
    elif isinstance(msg, Unmask):
        lines = ["type=unmask", f"round_id={msg.round_id}", f"n_survivors={msg.n_survivors}",
                 f"n_dropped={len(msg.dropped)}", f"dropped={','.join(msg.dropped)}"]
    elif isinstance(msg, Label):
        lines = ["type=label", f"round_id={msg.round_id}", f"seq={msg.seq}",
                 f"n={len(msg.intervals)}",
                 f"starts={','.join(str(iv.start_ms) for iv in msg.intervals)}",
                 f"durations={','.join(str(iv.duration_ms) for iv in msg.intervals)}",
                 f"labels={','.join(str(iv.label) for iv in msg.intervals)}"]
    elif isinstance(msg, Reveal):
        lines = ["type=reveal", f"round_id={msg.round_id}", f"n={len(msg.seeds)}",
                 f"peers={','.join(peer for peer, _ in msg.seeds)}",
                 f"seeds={','.join(seed.hex() for _, seed in msg.seeds)}"]
    else:
        lines = [
            "type=update",
            f"round_id={msg.round_id}",
            f"n_samples={msg.n_samples}",
            f"loss={_f32_hex(msg.loss)}",
            f"accuracy={_f32_hex(msg.accuracy)}",
            f"update_norm={_f32_hex(msg.update_norm)}",
            *(_masked_text(msg.delta) if isinstance(msg.delta, Masked)
              else _tensor_text(msg.delta, "delta")),
        ]
    return "\n".join(lines) + "\n"
