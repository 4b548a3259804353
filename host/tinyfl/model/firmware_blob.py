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

import numpy as np

from tinyfl.model.backbone import Conv2D, FullyConnected, Layer, MaxPool2D, Mean, prepare
from tinyfl.model.tflite import ModelError, TfliteModel

__all__ = ["BLOB_MAGIC", "BLOB_VERSION", "OP_CODES", "blob_c_header", "export_blob", "export_layers"]

BLOB_MAGIC = b"TFMB"
BLOB_VERSION = 1
HEADER_SIZE = 32
OP_CODES = {Conv2D: 1, MaxPool2D: 2, Mean: 3, FullyConnected: 4}


def _u16(*values: int) -> bytes:
    for v in values:
        if not 0 <= v <= 0xFFFF:
            raise ModelError(f"dimension {v} does not fit the firmware blob's u16 fields")
    return struct.pack(f"<{len(values)}H", *values)


def _i8(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}b", *values)


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _payload(layer: Layer) -> bytes:
    if isinstance(layer, Conv2D):
        (h, w, cin), (oh, ow, cout) = layer.in_shape, layer.out_shape
        kh, kw = int(layer.weights.shape[1]), int(layer.weights.shape[2])
        return _pad4(
            _u16(h, w, cin, oh, ow, cout, kh, kw, *layer.stride, *layer.dilation, *layer.pad)
            + _i8(layer.in_zp, layer.out_zp, *layer.act)
            + layer.bias.astype("<i4").tobytes()
            + layer.multiplier.astype("<i4").tobytes()
            + layer.shift.astype("i1").tobytes()
            + layer.weights.astype("i1").tobytes()
        )
    if isinstance(layer, MaxPool2D):
        (h, w, c), (oh, ow, _) = layer.in_shape, layer.out_shape
        return _u16(h, w, c, oh, ow, *layer.filter, *layer.stride, *layer.pad) + _i8(*layer.act)
    if isinstance(layer, Mean):
        return (_u16(layer.outer, layer.reduce, layer.inner, 0)
                + struct.pack("<i", layer.multiplier) + _i8(layer.shift, layer.in_zp, layer.out_zp, 0))
    return _pad4(
        _u16(layer.in_features, layer.out_features)
        + _i8(layer.in_zp, layer.out_zp, *layer.act)
        + layer.bias.astype("<i4").tobytes()
        + layer.scale.astype("<f8").tobytes()
        + layer.weights.astype("i1").tobytes()
    )


def export_layers(layers: list[Layer], in_shape: tuple[int, int, int], in_quant: tuple[float, int],
                  out_quant: tuple[float, int]) -> bytes:
    """Serializes prepared layers (docs/MODEL.md): header, layers, CRC32 of everything before."""
    out_len = _output_size(layers[-1])
    body = b"".join(
        struct.pack("<BBHI", OP_CODES[type(layer)], 0, 0, len(p)) + p
        for layer in layers
        for p in [_payload(layer)]
    )
    total = HEADER_SIZE + len(body) + 4
    header = (BLOB_MAGIC + struct.pack("<HHI", BLOB_VERSION, len(layers), total)
              + _u16(*in_shape) + _i8(in_quant[1], 0) + struct.pack("<f", in_quant[0])
              + _u16(out_len) + _i8(out_quant[1], 0) + struct.pack("<f", out_quant[0]))
    assert len(header) == HEADER_SIZE
    blob = header + body
    return blob + struct.pack("<I", zlib.crc32(blob))


def _output_size(layer: Layer) -> int:
    if isinstance(layer, (Conv2D, MaxPool2D)):
        return int(np.prod(layer.out_shape))
    if isinstance(layer, Mean):
        return layer.outer * layer.inner
    return layer.out_features


def export_blob(model: TfliteModel) -> bytes:
    """The firmware blob of a .tflite backbone (ModelError if it cannot run on the node)."""
    layers = prepare(model)
    x = model.tensors[model.inputs[0]]
    y = model.tensors[model.outputs[0]]
    assert x.quant is not None and y.quant is not None  # prepare() checked both are int8
    dims = [d for d in x.shape[1:]] if x.shape and x.shape[0] == 1 else list(x.shape)
    while len(dims) < 3:
        dims.insert(0, 1)
    if len(dims) != 3:
        raise ModelError(f"input shape {list(x.shape)} is not (1, [h,] w, c)")
    return export_layers(layers, (dims[0], dims[1], dims[2]),
                         (x.quant.scale[0], x.quant.zero_point[0]),
                         (y.quant.scale[0], y.quant.zero_point[0]))


def blob_c_header(blob: bytes, name: str = "tinyfl_model_blob", task: str = "") -> str:
    """A C/C++ header holding the blob in flash, with the model hash nodes report in HELLO (the
    first 8 bytes of the blob's SHA-256) and the task name. The symbol name must contain
    "model_blob" so tools/firmware_size.py attributes its bytes to the "model" component. The
    arrays are `static`: each translation unit that includes one header gets one model."""
    if "model_blob" not in name or not name.isidentifier():
        raise ValueError("the array name must be an identifier containing 'model_blob'")
    if not all(c.isalnum() or c in "-_" for c in task):
        raise ValueError("the task name must be [A-Za-z0-9_-]")
    rows = [", ".join(f"0x{b:02x}" for b in blob[i : i + 16]) for i in range(0, len(blob), 16)]
    body = ",\n  ".join(rows)
    digest = ", ".join(f"0x{b:02x}" for b in hashlib.sha256(blob).digest()[:8])
    return (
        "// Generated by tinyfl model build (tinyfl.model.firmware_blob); do not edit.\n"
        "// Format: docs/MODEL.md.\n"
        "#pragma once\n#include <stddef.h>\n#include <stdint.h>\n\n"
        f"alignas(8) static const uint8_t {name}[{len(blob)}] = {{\n  {body}\n}};\n"
        f"static const size_t {name}_len = {len(blob)};\n"
        f"// The model hash: first 8 bytes of the SHA-256 of {name}.\n"
        f"static const uint8_t {name}_hash[8] = {{{digest}}};\n"
        f'static const char {name}_task[] = "{task}";\n'
    )
