"""The deployable model: the int8 backbone, a trained head and a softmax as one .tflite file.

What it computes: int8 window (the backbone's input quantization, what a node feeds it) -> the
backbone's int8 embedding -> DEQUANTIZE to float32 ((q - zp) * scale, the node's own view of the
embedding) -> FULLY_CONNECTED with the head's float32 weights (k, d) and bias (k) -> SOFTMAX ->
float32 class probabilities (1, k). The head is the TinyFL head (k, d + 1): weights, then the
bias column, as `tinyfl.coordinator.task.evaluate` applies it.

How the file is made, without TensorFlow or the `flatbuffers` package: FlatBuffers offsets only
point forward (a u32 `uoffset` is added to its own position; https://flatbuffers.dev/internals/),
and tables reach their vtables through a signed offset. So new tables written *in front of* the
untouched backbone file may point into it: the exported file is a new header, a new Model root
with new SubGraph/operator/tensor/buffer lists (whose entries are the backbone's own tables,
referred to where they are, plus the new ones), padding to 16 bytes, then the backbone file byte
for byte. The backbone's weights are not re-encoded, so they cannot change; its first 8 bytes
(its own root offset and identifier) become dead bytes. The shift by a multiple of 16 keeps every
alignment of the backbone's data.

Field slots are those of TFLite's schema.fbs (tensorflow/compiler/mlir/lite/schema/schema.fbs):
Model{0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers, 5 metadata_buffer,
6 metadata, 7 signature_defs}, SubGraph{0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name},
Tensor{0 shape, 1 type, 2 buffer, 3 name, 4 quantization, 7 shape_signature},
Operator{0 opcode_index, 1 inputs, 2 outputs, 3 builtin_options_type, 4 builtin_options},
OperatorCode{0 deprecated_builtin_code, 2 version, 3 builtin_code}, Buffer{0 data, 1 offset},
SignatureDef{0 inputs, 1 outputs, 2 signature_key, 4 subgraph_index}, TensorMap{0 name,
1 tensor_index}, SoftmaxOptions{0 beta}.

Checks (ModelError, exit 8, unless said otherwise): the backbone must be a one-input, one-output
model whose output is a per-tensor int8 embedding with all its data inside the flatbuffer; the
head must be finite and (k, d + 1) for the embedding's d. `check_run` (CheckpointError, exit 7)
refuses a run trained for another model. The result is read back with TinyFL's own reader before
it is returned, and `verify` runs it with LiteRT against the host's numpy backbone + head.
"""

from __future__ import annotations

import importlib
import re
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

# The reader's bounds-checked cursor gives the positions of the backbone's tables, which the new
# tables point to; reusing it keeps one flatbuffer walker in the package.
from tinyfl.model.tflite import FlatBuffer, FlatTable, ModelError, read_model

if TYPE_CHECKING:
    from tinyfl.dsp.stage import DspStage
    from tinyfl.model.artifacts import ModelArtifacts

__all__ = [
    "DEFAULT_HEADER_NAME",
    "PROB_TOLERANCE",
    "Verification",
    "build_deploy_model",
    "c_header",
    "check_head",
    "host_probabilities",
    "litert_probabilities",
    "sample_inputs",
    "verify",
]

DEFAULT_HEADER_NAME = "tinyfl_deploy_model"
PROB_TOLERANCE = 1e-5  # |p_litert - p_host|: float32 head vs the host's float64 head

# schema.fbs enums
_FLOAT32, _INT8 = 0, 9
_DEQUANTIZE, _FULLY_CONNECTED, _SOFTMAX = 6, 9, 25
_OPTIONS_FULLY_CONNECTED, _OPTIONS_SOFTMAX = 8, 9
# Operator versions as TFLite's op_version.cc assigns them to these type signatures: DEQUANTIZE
# of int8 is version 2, float FULLY_CONNECTED and float SOFTMAX are version 1.
_NEW_OPS = ((_DEQUANTIZE, 2), (_FULLY_CONNECTED, 1), (_SOFTMAX, 1))

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


# --- a forward FlatBuffers writer ------------------------------------------------------------


@dataclass(frozen=True)
class _Old:
    """An object of the backbone file, by its position in that file."""

    pos: int


class _Vector:
    """A vector of scalars (packed little-endian), or a string (a trailing NUL is added)."""

    def __init__(self, data: bytes, count: int, align: int = 4, string: bool = False) -> None:
        self.data, self.count, self.align, self.string = data, count, align, string


class _Offsets:
    """A vector of offsets to tables or strings, new or old."""

    def __init__(self, items: Sequence[_Obj | _Old]) -> None:
        self.items = list(items)


Scalar = tuple[str, float]  # (struct format character, value)


class _TableObj:
    """A table: field slot -> scalar or offset to another object."""

    def __init__(self, fields: dict[int, Scalar | _Obj | _Old]) -> None:
        self.fields = fields


_Obj = _Vector | _Offsets | _TableObj


def _olds(tables: Sequence[FlatTable]) -> list[_Old]:
    """References to tables of the backbone file, in order."""
    return [_Old(t.pos) for t in tables]


def _scalars(fmt: str, values: Sequence[float]) -> _Vector:
    return _Vector(struct.pack(f"<{len(values)}{fmt}", *values), len(values),
                   align=max(4, struct.calcsize("<" + fmt)))


def _string(text: str) -> _Vector:
    raw = text.encode()
    return _Vector(raw, len(raw), string=True)


def _pad(out: bytearray, align: int, before: int = 0) -> None:
    """Zero bytes until (len(out) + before) is a multiple of `align`."""
    out.extend(bytes(-(len(out) + before) % align))


def _emit(out: bytearray, obj: _Obj, fixups: list[tuple[int, _Obj | _Old]]) -> int:
    """Appends `obj`, records where its offsets must point, returns its position."""
    if isinstance(obj, _Vector):
        _pad(out, max(obj.align, 4), before=4)  # the elements start aligned, the count before
        pos = len(out)
        out += struct.pack("<I", obj.count) + obj.data + (b"\0" if obj.string else b"")
        return pos
    if isinstance(obj, _Offsets):
        _pad(out, 4)
        pos = len(out)
        out += struct.pack("<I", len(obj.items))
        for item in obj.items:
            fixups.append((len(out), item))
            out += bytes(4)
        return pos
    slots = sorted(obj.fields)
    vt_size = 4 + 2 * (slots[-1] + 1 if slots else 0)
    _pad(out, 2)
    vt = len(out)
    out += bytes(vt_size)
    _pad(out, 4)
    pos = len(out)
    out += struct.pack("<i", pos - vt)  # vtable = table - soffset: the vtable just before
    where = {}
    for slot in slots:
        value = obj.fields[slot]
        if isinstance(value, tuple):
            fmt, scalar = value
            size = struct.calcsize("<" + fmt)
            _pad(out, size)
            where[slot] = len(out) - pos
            out += struct.pack("<" + fmt, scalar)
        else:
            _pad(out, 4)
            where[slot] = len(out) - pos
            fixups.append((len(out), value))
            out += bytes(4)
    struct.pack_into("<HH", out, vt, vt_size, len(out) - pos)
    for slot, off in where.items():
        struct.pack_into("<H", out, vt + 4 + 2 * slot, off)
    return pos


def _serialize(root: _TableObj, tail: bytes, identifier: bytes) -> bytes:
    """root offset + identifier, the new objects parents-first (breadth first, so every offset
    points forward), padding to 16, then `tail` (the old file) whose objects `_Old` refers to."""
    out = bytearray(struct.pack("<I", 0) + identifier)
    fixups: list[tuple[int, _Obj | _Old]] = [(0, root)]
    placed: dict[int, int] = {}
    queue: deque[_Obj] = deque([root])
    while queue:
        obj = queue.popleft()
        first = len(fixups)
        placed[id(obj)] = _emit(out, obj, fixups)
        queue.extend(t for _, t in fixups[first:] if not isinstance(t, _Old))
    _pad(out, 16)
    base = len(out)
    out += tail
    for at, target in fixups:
        dest = base + target.pos if isinstance(target, _Old) else placed[id(target)]
        if dest <= at:  # an object referred to twice would be placed after one of its referrers
            raise AssertionError(f"backward flatbuffer offset {at} -> {dest}")
        struct.pack_into("<I", out, at, dest - at)
    return bytes(out)


# --- the deployable model --------------------------------------------------------------------


def check_head(head: npt.ArrayLike, embed_dim: int) -> F32:
    """The head as float32 (k, embed_dim + 1); ModelError if it has another shape, is not finite,
    or does not fit float32."""
    w = np.asarray(head)
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] != embed_dim + 1:
        raise ModelError(f"the head is {list(w.shape)}, the backbone needs (k, {embed_dim + 1}): "
                         f"one row of {embed_dim} weights and a bias per class")
    if not np.issubdtype(w.dtype, np.floating) and not np.issubdtype(w.dtype, np.integer):
        raise ModelError(f"the head has dtype {w.dtype}, not a number type")
    w64 = w.astype(np.float64)
    if not np.isfinite(w64).all():
        raise ModelError("the head has non-finite values (NaN or inf)")
    if w64.size and np.abs(w64).max() > np.finfo(np.float32).max:
        raise ModelError("the head has values too large for float32")
    out: F32 = w64.astype(np.float32)
    return out


def build_deploy_model(backbone: bytes, head: npt.ArrayLike, description: str = "") -> bytes:
    """The .tflite of backbone + DEQUANTIZE + FULLY_CONNECTED(head) + SOFTMAX (module docstring).

    The backbone's input stays the model's input; the only output is the float32 probabilities.
    The backbone's signature (if any) keeps its key and inputs, and its output becomes
    "probabilities". ModelError for a backbone or head this cannot work with.
    """
    data = bytes(backbone)
    model = read_model(data)  # bounds-checks everything the code below walks through again
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"the backbone has {len(model.inputs)} inputs and {len(model.outputs)} "
                         "outputs; a deployable model needs exactly one of each")
    emb = model.tensors[model.outputs[0]]
    if emb.type != _INT8 or emb.quant is None or len(emb.quant.scale) != 1 or not emb.shape:
        raise ModelError(f"the backbone's output {emb.name!r} is not a per-tensor int8 embedding "
                         f"({emb.type_name}, shape {list(emb.shape)})")
    d = emb.shape[-1]
    w = check_head(head, d)
    k = w.shape[0]

    buf = FlatBuffer(data)
    root = buf.table(buf.deref(0, "root"), "Model")
    buffers = root.tables(4, "Buffer")
    if any(b.scalar(1, "<Q", 0) > 1 for b in buffers):
        raise ModelError("the backbone keeps buffers outside its flatbuffer (a model over 2 GB); "
                         "not supported")
    opcodes = root.tables(1, "OperatorCode")
    subgraphs = root.tables(2, "SubGraph")
    sg = subgraphs[0]
    tensors = sg.tables(0, "Tensor")
    operators = sg.tables(3, "Operator")

    def old(pos: int | None) -> _Old | None:
        return None if pos is None else _Old(pos)

    # New tensors follow the backbone's; new buffers (head weights, bias) follow its buffers.
    t_float, t_w, t_b, t_logits, t_probs = range(len(tensors), len(tensors) + 5)
    b_w, b_b = len(buffers), len(buffers) + 1
    batch = int(np.prod(emb.shape[:-1], dtype=np.int64))
    # shape_signature: -1 marks a resizable dimension, e.g. [-1, 64] for a resizable batch.
    emb_signature = tensors[emb.index].vector(7, "<i")
    rows = -1 if any(v < 0 for v in emb_signature[:-1]) else batch
    out_signature = (rows, k) if emb_signature else None

    def tensor(name: str, shape: Sequence[int], buffer: int = 0,
               signature: Sequence[int] | None = None) -> _TableObj:
        fields: dict[int, Scalar | _Obj | _Old] = {
            0: _scalars("i", shape), 1: ("b", _FLOAT32), 2: ("I", buffer), 3: _string(name)}
        if signature:
            fields[7] = _scalars("i", signature)
        return _TableObj(fields)

    def operator(code_index: int, inputs: Sequence[int], outputs: Sequence[int],
                 options: tuple[int, _TableObj] | None = None) -> _TableObj:
        fields: dict[int, Scalar | _Obj | _Old] = {
            0: ("I", code_index), 1: _scalars("i", inputs), 2: _scalars("i", outputs)}
        if options is not None:
            fields[3] = ("B", options[0])
            fields[4] = options[1]
        return _TableObj(fields)

    def buffer(raw: bytes) -> _TableObj:
        return _TableObj({0: _Vector(raw, len(raw), align=16)})

    new_tensors = [
        tensor("tinyfl/embedding_float", emb.shape, signature=emb_signature),
        tensor("tinyfl/head_weights", (k, d), b_w),
        tensor("tinyfl/head_bias", (k,), b_b),
        tensor("tinyfl/logits", (batch, k), signature=out_signature),
        tensor("tinyfl/probabilities", (batch, k), signature=out_signature),
    ]
    c0 = len(opcodes)
    new_operators = [
        operator(c0, [emb.index], [t_float]),
        operator(c0 + 1, [t_float, t_w, t_b], [t_logits],
                 (_OPTIONS_FULLY_CONNECTED, _TableObj({}))),  # defaults: no fused activation
        # beta must be written: TFLite leaves it 0 (uniform output) when the options are absent
        operator(c0 + 2, [t_logits], [t_probs], (_OPTIONS_SOFTMAX, _TableObj({0: ("f", 1.0)}))),
    ]
    new_subgraph = _TableObj({
        0: _Offsets([*_olds(tensors), *new_tensors]),
        1: old(sg.ref(1)) or _scalars("i", model.inputs),
        2: _scalars("i", [t_probs]),
        3: _Offsets([*_olds(operators), *new_operators]),
    })
    if (name := old(sg.ref(4))) is not None:
        new_subgraph.fields[4] = name

    fields: dict[int, Scalar | _Obj | _Old] = {
        0: ("I", model.version),
        1: _Offsets([*_olds(opcodes), *(
            _TableObj({0: ("b", code), 2: ("i", version), 3: ("i", code)})
            for code, version in _NEW_OPS)]),
        2: _Offsets([new_subgraph, *_olds(subgraphs[1:])]),
        4: _Offsets([*_olds(buffers), buffer(w[:, :-1].astype("<f4").tobytes()),
                     buffer(w[:, -1].astype("<f4").tobytes())]),
    }
    if (text := _string(description) if description else old(root.ref(3))) is not None:
        fields[3] = text
    for slot in (5, 6):  # metadata_buffer, metadata: buffer indices, unchanged
        if (ref := old(root.ref(slot))) is not None:
            fields[slot] = ref
    signatures: list[_Obj | _Old] = []
    for sig_def in root.tables(7, "SignatureDef"):
        if sig_def.scalar(4, "<I", 0) != 0:
            signatures.append(_Old(sig_def.pos))
            continue
        sig_fields: dict[int, Scalar | _Obj | _Old] = {
            1: _Offsets([_TableObj({0: _string("probabilities"), 1: ("I", t_probs)})]),
            4: ("I", 0),
        }
        for slot in (0, 2):  # inputs, signature_key
            if (ref := old(sig_def.ref(slot))) is not None:
                sig_fields[slot] = ref
        signatures.append(_TableObj(sig_fields))
    if signatures:
        fields[7] = _Offsets(signatures)

    out = _serialize(_TableObj(fields), data, data[4:8])
    _check_exported(out, model.inputs[0], k, d)
    return out


def _check_exported(data: bytes, input_index: int, k: int, d: int) -> None:
    """Reads the new file back with TinyFL's reader: a writer bug fails here, not on a device."""
    model = read_model(data)
    ops = [op.name for op in model.operators[-3:]]
    probs = model.tensors[model.outputs[0]] if len(model.outputs) == 1 else None
    weights = model.tensors[model.operators[-2].inputs[1]] if len(model.operators) >= 3 else None
    if (ops != ["DEQUANTIZE", "FULLY_CONNECTED", "SOFTMAX"] or model.inputs != (input_index,)
            or probs is None or probs.shape[-1] != k or probs.type != _FLOAT32
            or weights is None or weights.array().shape != (k, d)):
        raise AssertionError(f"the exported model does not read back as built: {ops}")


# --- verification ------------------------------------------------------------------------------


def _softmax(logits: F64) -> F64:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: F64 = z / z.sum(axis=1, keepdims=True)
    return out


def host_probabilities(art: ModelArtifacts, head: npt.ArrayLike, codes: I8) -> F64:
    """What the host computes for int8 inputs: the numpy backbone (bit-exact with the node and
    LiteRT's reference kernels), the node's float32 dequantization, the head in float64."""
    x = art.dequantize(art.embed(codes)).astype(np.float64)
    w = np.asarray(head, dtype=np.float64)
    return _softmax(x @ w[:, :-1].T + w[:, -1])


def _litert() -> ModuleType | None:
    try:
        return importlib.import_module("ai_edge_litert.interpreter")
    except ImportError:
        return None


def litert_probabilities(tflite: bytes, codes: I8, reference: bool = True) -> F32 | None:
    """The exported model's probabilities (n, k) for n int8 inputs, in one batch, from LiteRT;
    None when ai-edge-litert is not installed. `reference` selects LiteRT's reference kernels
    without a delegate (the bit-exact ground truth, docs/MODEL.md); otherwise its default
    (XNNPACK), which a deployment on a host would use."""
    lite = _litert()
    if lite is None:
        return None
    kwargs = {"experimental_op_resolver_type": lite.OpResolverType.BUILTIN_REF} if reference else {}
    try:
        interp = lite.Interpreter(model_content=bytes(tflite), **kwargs)
        inp = interp.get_input_details()[0]
        out = interp.get_output_details()[0]
        codes = np.asarray(codes, dtype=np.int8)
        if tuple(inp["shape"]) != codes.shape:
            interp.resize_tensor_input(inp["index"], list(codes.shape))
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], codes)
        interp.invoke()
        probs: F32 = np.array(interp.get_tensor(out["index"]), dtype=np.float32)
    except (RuntimeError, ValueError) as exc:  # LiteRT's errors for a model it cannot run
        raise ModelError(f"LiteRT cannot run the exported model: {exc}") from exc
    return probs.reshape(codes.shape[0], -1)


@dataclass(frozen=True)
class Verification:
    """LiteRT against the host on `n` inputs: how many argmaxes agree, the largest probability
    difference."""

    n: int
    argmax_equal: int
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.argmax_equal == self.n and self.max_abs_diff <= PROB_TOLERANCE


def sample_inputs(shape: Sequence[int], zero_point: int, n: int, seed: int = 0) -> I8:
    """n deterministic int8 inputs of `shape`: half uniform over all codes, half moderate codes
    around the zero point, so both saturated and typical embeddings are compared."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(-128, 128, size=(n - n // 2, *shape))
    narrow = np.clip(np.round(rng.normal(zero_point, 24.0, size=(n // 2, *shape))), -128, 127)
    out: I8 = np.concatenate([wide, narrow.astype(np.int64)]).astype(np.int8)
    return out


def verify(tflite: bytes, art: ModelArtifacts, head: npt.ArrayLike, codes: I8) -> Verification | None:
    """Runs the exported model with LiteRT's reference kernels on `codes` and compares with
    `host_probabilities`; None when LiteRT is not installed."""
    # The exported model starts at the backbone: a model with a DSP stage takes its features.
    got = litert_probabilities(tflite, art.stage.run(codes) if art.stage is not None else codes)
    if got is None:
        return None
    want = host_probabilities(art, head, codes)
    same = int(np.sum(np.argmax(got, axis=1) == np.argmax(want, axis=1)))
    diff = float(np.max(np.abs(got.astype(np.float64) - want))) if len(codes) else 0.0
    return Verification(len(codes), same, diff)


# --- output files ------------------------------------------------------------------------------


def _c_string(text: str) -> str:
    """A C string literal; octal escapes (fixed 3 digits) for anything but plain ASCII."""
    safe = re.compile(r"[A-Za-z0-9 _\-+.,:;/()\[\]{}=<>!?@#$%^&*|~']")
    return '"' + "".join(ch if safe.fullmatch(ch) else "".join(f"\\{b:03o}" for b in ch.encode())
                         for ch in text) + '"'


def _c_bytes(data: bytes) -> str:
    return ",\n  ".join(", ".join(f"0x{b:02x}" for b in data[i : i + 16])
                        for i in range(0, len(data), 16))


def c_header(tflite: bytes, model_hash: bytes, task: str, classes: Sequence[str],
             name: str = DEFAULT_HEADER_NAME, stage: DspStage | None = None) -> str:
    """A C/C++ header holding the .tflite bytes for firmware (e.g. TFLite Micro's
    `tflite::GetModel(name)`): the array aligned to 16 bytes (TFLite Micro reads tensor data in
    place), its length, the backbone's model hash, the task and the class names in output order.
    With a DSP stage also its record (`NAME_dsp`, for tinyfl/dsp_stage.h's dsp_stage_parse and
    dsp_stage_run, which make the model's input from a raw window) and its configuration."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a C identifier")
    digest = ", ".join(f"0x{b:02x}" for b in model_hash)
    names = ", ".join(_c_string(c) for c in classes)
    flow = "int8 input window -> backbone"
    dsp = ""
    if stage is not None:
        record = stage.to_record()
        flow = (f"raw int8 window ({stage.window} x {stage.channels}) -> DSP stage ({name}_dsp) -> "
                f"{stage.features} int8 features -> backbone")
        dsp = ("// The DSP stage the model's input comes from (docs/DSP.md): "
               f"{stage.describe()};\n"
               f"// raw codes: scale {stage.input_scale!r}, zero point {stage.input_zero_point}. "
               "Parse with tinyfl::dsp_stage_parse, run with tinyfl::dsp_stage_run.\n"
               f"alignas(4) static const uint8_t {name}_dsp[{len(record)}] = {{\n"
               f"  {_c_bytes(record)}\n}};\n"
               f"static const size_t {name}_dsp_len = {len(record)};\n"
               f"#define {name.upper()}_DSP_WINDOW {stage.window}\n"
               f"#define {name.upper()}_DSP_CHANNELS {stage.channels}\n"
               f"#define {name.upper()}_DSP_FEATURES {stage.features}\n")
    return (
        "// Generated by `tinyfl export` (tinyfl.model.export); do not edit.\n"
        f"// {flow} -> trained head -> float32 class probabilities.\n"
        "#pragma once\n#include <stddef.h>\n#include <stdint.h>\n"
        "#ifndef __cplusplus\n#include <stdalign.h>\n#endif\n\n"
        f"alignas(16) static const uint8_t {name}[{len(tflite)}] = {{\n  {_c_bytes(tflite)}\n}};\n"
        f"static const size_t {name}_len = {len(tflite)};\n"
        f"{dsp}"
        "// The backbone's model hash (what the fleet's nodes reported).\n"
        f"static const uint8_t {name}_hash[8] = {{{digest}}};\n"
        f"static const char {name}_task[] = {_c_string(task)};\n"
        f"static const char* const {name}_classes[{len(classes)}] = {{{names}}};\n"
    )
