"""The firmware model blob ("TFMB"): the prepared int8 layers of a backbone as the node reads them.

Why a blob and not the .tflite: the node has no flatbuffer parser, no room for one, and must not
recompute multipliers with its own floating point. The host does the Prepare step once
(tinyfl.model.backbone.prepare: Q31 multipliers and shifts, activation clamps, paddings, shapes),
and the blob carries its results, so the node's kernels only run the integer arithmetic.
Layout, byte by byte, in docs/MODEL.md; every length is checked by the firmware's parser and the
whole blob is covered by a CRC32 (zlib's).
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from tinyfl.model.graph import Graph, prepare
from tinyfl.model.layers import (
    Add,
    AvgPool2D,
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Layer,
    MaxPool2D,
    Mean,
    Pad,
    Requantize,
)
from tinyfl.model.plan import ArenaPlan, plan_arena
from tinyfl.model.tflite import ModelError, TfliteModel

__all__ = ["BLOB_MAGIC", "BLOB_VERSION", "HEADER_SIZE", "OP_CODES", "RECORD_SIZE", "blob_c_header",
           "check_blob_version", "export_blob", "export_graph", "model_hash"]

BLOB_MAGIC = b"TFMB"
BLOB_VERSION = 2
HEADER_SIZE = 40
RECORD_SIZE = 20  # op, input count, reserved, 2 input refs, output ref, payload length
OP_CODES: dict[type, int] = {Conv2D: 1, MaxPool2D: 2, Mean: 3, FullyConnected: 4,
                             DepthwiseConv2D: 5, AvgPool2D: 6, Add: 7, Pad: 8, Requantize: 9}


def _u16(*values: int) -> bytes:
    for v in values:
        if not 0 <= v <= 0xFFFF:
            raise ModelError(f"dimension {v} does not fit the firmware blob's u16 fields")
    return struct.pack(f"<{len(values)}H", *values)


def _i8(*values: int) -> bytes:
    # a corrupt model can carry an int8 zero point or clamp outside -128..127 (hypothesis found
    # one): a model error, like a dimension that overflows u16
    for v in values:
        if not -128 <= v <= 127:
            raise ModelError(f"value {v} (a zero point, clamp or shift) does not fit int8")
    return struct.pack(f"<{len(values)}b", *values)


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _conv_payload(layer: Conv2D | DepthwiseConv2D) -> bytes:
    (h, w, cin), (oh, ow, cout) = layer.in_shape, layer.out_shape
    kh, kw = ((int(layer.weights.shape[1]), int(layer.weights.shape[2]))
              if isinstance(layer, Conv2D) else
              (int(layer.weights.shape[0]), int(layer.weights.shape[1])))
    return _pad4(
        _u16(h, w, cin, oh, ow, cout, kh, kw, *layer.stride, *layer.dilation, *layer.pad)
        + _i8(layer.in_zp, layer.out_zp, *layer.act)
        + layer.bias.astype("<i4").tobytes()
        + layer.multiplier.astype("<i4").tobytes()
        + layer.shift.astype("i1").tobytes()
        + layer.weights.astype("i1").tobytes()
    )


def _payload(layer: Layer) -> bytes:
    if isinstance(layer, (Conv2D, DepthwiseConv2D)):
        return _conv_payload(layer)
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        (h, w, c), (oh, ow, _) = layer.in_shape, layer.out_shape
        return _u16(h, w, c, oh, ow, *layer.filter, *layer.stride, *layer.pad) + _i8(*layer.act)
    if isinstance(layer, Mean):
        return (_u16(layer.outer, layer.reduce, layer.inner, 0 if layer.rescale else 1)
                + struct.pack("<i", layer.multiplier)
                + _i8(layer.shift, layer.in_zp, layer.out_zp, 0))
    if isinstance(layer, Add):
        return (struct.pack("<I", layer.count)
                + _i8(*layer.in_zp, layer.out_zp, *layer.act, layer.left_shift, 0, 0)
                + struct.pack("<3i", *layer.in_multiplier, layer.out_multiplier)
                + _i8(*layer.in_shift, layer.out_shift, 0))
    if isinstance(layer, Pad):
        return _u16(*layer.in_shape, *layer.out_shape, *layer.before, 0) + _i8(layer.value, 0, 0, 0)
    if isinstance(layer, Requantize):
        return (struct.pack("<I", layer.count) + _i8(layer.in_zp, layer.out_zp, *layer.act)
                + struct.pack("<i", layer.multiplier) + _i8(layer.shift, 0, 0, 0))
    return _pad4(
        _u16(layer.in_features, layer.out_features)
        + _i8(layer.in_zp, layer.out_zp, *layer.act)
        + layer.bias.astype("<i4").tobytes()
        + layer.scale.astype("<f8").tobytes()
        + layer.weights.astype("i1").tobytes()
    )


def _record(layer: Layer, ins: tuple[int, ...], out: int) -> bytes:
    p = _payload(layer)
    refs = (*ins, 0) if len(ins) == 1 else ins
    return struct.pack("<BBHIIII", OP_CODES[type(layer)], len(ins), 0, *refs, out, len(p)) + p


def export_graph(graph: Graph, plan: ArenaPlan) -> bytes:
    """Serializes a prepared graph and its arena plan (docs/MODEL.md, format version 2): header,
    one record per layer, CRC32 of everything before."""
    body = b"".join(_record(step.layer, ins, out)
                    for step, (ins, out) in zip(graph.steps, plan.refs, strict=True))
    total = HEADER_SIZE + len(body) + 4
    (s_in, zp_in), (s_out, zp_out) = graph.in_quant, graph.out_quant
    header = (BLOB_MAGIC + struct.pack("<HHI", BLOB_VERSION, len(graph.steps), total)
              + _u16(*graph.in_shape) + _i8(zp_in, 0) + struct.pack("<f", s_in)
              + _u16(graph.embedding_len) + _i8(zp_out, 0) + struct.pack("<f", s_out)
              + struct.pack("<II", plan.arena_bytes, 0))
    assert len(header) == HEADER_SIZE
    blob = header + body
    return blob + struct.pack("<I", zlib.crc32(blob))


def export_blob(model: TfliteModel) -> bytes:
    """The firmware blob of a .tflite backbone (ModelError if it cannot run on the node)."""
    graph = prepare(model)
    return export_graph(graph, plan_arena(graph))


def check_blob_version(blob: bytes, what: str = "firmware model blob") -> None:
    """ModelError unless `blob` starts like a version-2 firmware model blob. Version 1 (chains
    without an arena plan) is refused by the node too; the fix is to re-export the .tflite."""
    if len(blob) < 6 or blob[:4] != BLOB_MAGIC:
        raise ModelError(f"{what} is not a firmware model blob (no TFMB magic)")
    version = struct.unpack_from("<H", blob, 4)[0]
    if version != BLOB_VERSION:
        raise ModelError(f"{what} is firmware model blob version {version}; nodes read version "
                         f"{BLOB_VERSION} only: re-export it from its .tflite with "
                         "tools/export_firmware_model.py (the model hash changes)")


def model_hash(blob: bytes, dsp_record: bytes = b"") -> bytes:
    """The 8-byte model hash nodes report in HELLO: the first 8 bytes of the SHA-256 of the blob,
    followed by the DSP stage's record when the model has one (so a different front-end is a
    different model)."""
    return hashlib.sha256(blob + dsp_record).digest()[:8]


def blob_c_header(blob: bytes, name: str = "tinyfl_model_blob", task: str = "",
                  dsp_record: bytes = b"") -> str:
    """A C/C++ header holding the blob in flash, with the model hash nodes report in HELLO
    (`model_hash`) and the task name, and the DSP stage's record (`NAME_dsp`) when the model has
    one. The symbol name must contain "model_blob" so tools/firmware_size.py attributes its bytes
    to the "model" component. The arrays are `static`: each translation unit that includes one
    header gets one model."""
    if "model_blob" not in name or not name.isidentifier():
        raise ValueError("the array name must be an identifier containing 'model_blob'")
    if not all(c.isalnum() or c in "-_" for c in task):
        raise ValueError("the task name must be [A-Za-z0-9_-]")

    def rows(data: bytes) -> str:
        return ",\n  ".join(", ".join(f"0x{b:02x}" for b in data[i : i + 16])
                            for i in range(0, len(data), 16))

    digest = ", ".join(f"0x{b:02x}" for b in model_hash(blob, dsp_record))
    of = f"{name} and {name}_dsp" if dsp_record else name
    dsp = ""
    if dsp_record:
        dsp = (f"// The DSP stage run before the backbone (docs/DSP.md, \"The stage record\").\n"
               f"alignas(4) static const uint8_t {name}_dsp[{len(dsp_record)}] = {{\n"
               f"  {rows(dsp_record)}\n}};\n"
               f"static const size_t {name}_dsp_len = {len(dsp_record)};\n")
    return (
        "// Generated by tinyfl model build (tinyfl.model.firmware_blob); do not edit.\n"
        "// Format: docs/MODEL.md.\n"
        "#pragma once\n#include <stddef.h>\n#include <stdint.h>\n\n"
        f"alignas(8) static const uint8_t {name}[{len(blob)}] = {{\n  {rows(blob)}\n}};\n"
        f"static const size_t {name}_len = {len(blob)};\n"
        f"{dsp}"
        f"// The model hash: first 8 bytes of the SHA-256 of {of}.\n"
        f"static const uint8_t {name}_hash[8] = {{{digest}}};\n"
        f'static const char {name}_task[] = "{task}";\n'
    )
