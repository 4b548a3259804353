"""The numpy int8 backbone and the .tflite reader against the stored reference vectors.

The expected outputs in testvectors/backbone/ come from LiteRT's reference interpreter
(tools/gen_backbone_vectors.py); these tests need neither TensorFlow nor ai-edge-litert, so they
compare against the stored bytes only (`python tools/gen_backbone_vectors.py --check` re-runs the
live interpreter where it is installed).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.vectors import head_vector_generator
from tinyfl.errors import TinyFLError
from tinyfl.model import backbone as bb
from tinyfl.model.firmware_blob import blob_c_header, export_blob
from tinyfl.model.plan import arena_bytes
from tinyfl.model.tflite import ModelError, read_model

VECTORS = Path(__file__).resolve().parents[2] / "testvectors" / "backbone"
TFLITE = (VECTORS / "tiny.tflite").read_bytes()


@pytest.fixture(scope="module")
def io() -> dict[str, np.ndarray]:
    return head_vector_generator().unpack((VECTORS / "tiny_io.bin").read_bytes())  # type: ignore[no-any-return]


def test_numpy_backbone_equals_reference_interpreter_on_all_inputs(io: dict[str, np.ndarray]) -> None:
    layers = bb.prepare(read_model(TFLITE))
    x, y = io["x"], io["y"]
    assert x.shape == (64, 128, 6) and y.shape == (64, 32)
    out = np.stack([bb.run(layers, x[i]) for i in range(x.shape[0])])
    assert out.tobytes() == y.tobytes()


def test_branchy_graph_equals_reference_interpreter() -> None:
    """The graph vectors: an ADD branch, depthwise (multiplier 2), PAD, average pool."""
    model = read_model((VECTORS / "branchy.tflite").read_bytes())
    io = head_vector_generator().unpack((VECTORS / "branchy_io.bin").read_bytes())
    graph = bb.prepare(model)
    names = [s.op_name for s in graph.steps]
    assert {"ADD", "DEPTHWISE_CONV_2D", "PAD", "AVERAGE_POOL_2D"} <= set(names)
    add = graph.steps[names.index("ADD")]
    assert len(add.inputs) == 2 and add.inputs[0] != add.inputs[1]
    out = np.stack([bb.run(graph, x) for x in io["x"]])
    assert out.tobytes() == io["y"].tobytes()
    assert (VECTORS / "branchy.tfmb").read_bytes() == export_blob(model)


def test_reader_sees_the_converted_graph() -> None:
    model = read_model(TFLITE)
    assert [op.name for op in model.operators] == [
        "EXPAND_DIMS", "CONV_2D", "RESHAPE", "EXPAND_DIMS", "MAX_POOL_2D", "RESHAPE",
        "EXPAND_DIMS", "CONV_2D", "RESHAPE", "MEAN", "FULLY_CONNECTED",
    ]
    x = model.tensors[model.inputs[0]]
    assert x.shape == (1, 128, 6) and x.type_name == "INT8" and x.quant is not None
    conv = model.operators[1]
    w = model.tensors[conv.inputs[1]]
    assert w.array().shape == (8, 1, 5, 6) and w.quant is not None and len(w.quant.scale) == 8
    assert conv.options["fused_activation_function"] == 1


def test_stored_blob_is_the_export_of_the_stored_model() -> None:
    assert (VECTORS / "tiny.tfmb").read_bytes() == export_blob(read_model(TFLITE))


def test_blob_header_and_crc() -> None:
    blob = (VECTORS / "tiny.tfmb").read_bytes()
    magic, version, layers, total = struct.unpack_from("<4sHHI", blob)
    assert (magic, version, layers, total) == (b"TFMB", 2, 5, len(blob))
    assert struct.unpack_from("<I", blob, 32)[0] == arena_bytes(read_model(TFLITE)) == 1488
    assert struct.unpack_from("<I", blob, len(blob) - 4)[0] == zlib.crc32(blob[:-4])
    header = blob_c_header(blob, "tiny_model_blob")
    assert f"uint8_t tiny_model_blob[{len(blob)}] = {{" in header
    assert header.count("0x") == len(blob) + 8  # the blob, then its 8-byte hash
    digest = ", ".join(f"0x{b:02x}" for b in hashlib.sha256(blob).digest()[:8])
    assert f"tiny_model_blob_hash[8] = {{{digest}}};" in header
    with pytest.raises(ValueError):
        blob_c_header(blob, "weights")  # firmware_size.py could not attribute it to "model"


@pytest.mark.parametrize(
    ("real", "expected"),
    [(0.0, (0, 0)), (0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)), (0.25, (1 << 30, -1)),
     (2.0**-40, (0, 0)), (0.75, (3 << 29, 0)), (1.0 - 2.0**-40, (1 << 30, 1))],
)
def test_quantize_multiplier(real: float, expected: tuple[int, int]) -> None:
    assert bb.quantize_multiplier(real) == expected


def test_fixed_point_primitives_match_gemmlowp_cases() -> None:
    i32min = -(2**31)
    srdhm = bb.saturating_rounding_doubling_high_mul
    assert int(srdhm(np.int64(i32min), np.int64(i32min))) == 2**31 - 1  # the saturating case
    assert int(srdhm(np.int64(1 << 30), np.int64(1 << 30))) == 1 << 29
    assert int(srdhm(np.int64(-3), np.int64(1 << 30))) == -1  # -1.5 rounds away from zero
    rdp = bb.rounding_divide_by_pot
    assert [int(rdp(np.int64(v), np.int64(1))) for v in (5, -5, 3, -3, 4)] == [3, -3, 2, -2, 2]
    assert int(bb.multiply_by_quantized_multiplier(np.int64(100), np.int64(1 << 30), np.int64(-1))) == 25
    assert bb.tflite_round(2.5) == 3 and bb.tflite_round(-2.5) == -3
    assert bb.tflite_round(0.49999999999999994) == 0  # x + 0.5 would round this up


def test_truncated_files_are_model_errors() -> None:
    for n in (0, 3, 8, 100, len(TFLITE) // 2, len(TFLITE) - 1000):
        with pytest.raises(ModelError):
            bb.prepare(read_model(TFLITE[:n]))


def test_not_a_tflite_file() -> None:
    with pytest.raises(ModelError, match="TFL3"):
        read_model(b"\x10\x00\x00\x00ABCD" + bytes(64))


def test_unsupported_op_is_named() -> None:
    model = read_model(TFLITE)
    ops = list(model.operators)
    ops[4] = type(ops[4])(ops[4].index, 25, "SOFTMAX", ops[4].inputs, ops[4].outputs, {})
    patched = type(model)(model.version, model.tensors, tuple(ops), model.inputs, model.outputs)
    out_name = model.tensors[ops[4].outputs[0]].name
    with pytest.raises(ModelError) as err:
        bb.prepare(patched)
    assert f"SOFTMAX (operator 4, output tensor '{out_name}'): unsupported op" in str(err.value)
    assert "supported ops: ADD, AVERAGE_POOL_2D, CONV_2D, DEPTHWISE_CONV_2D" in str(err.value)
    with pytest.raises(ModelError, match="unsupported op CONV_2D"):
        read_model(TFLITE, supported=frozenset({"RESHAPE", "EXPAND_DIMS"}))


def test_model_error_is_a_tinyfl_error_with_its_exit_code() -> None:
    assert issubclass(ModelError, TinyFLError) and ModelError.exit_code == 8


@pytest.mark.parametrize("name", ["tiny", "branchy"])
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corruption_parses_or_raises_model_error(name: str, data: st.DataObject) -> None:
    """Flip bytes anywhere (offsets, vtables, lengths) of the chain and of the graph: the reader,
    the model check, the arena plan and the blob writer either work or raise ModelError, never
    another exception."""
    raw = bytearray((VECTORS / f"{name}.tflite").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        model = read_model(bytes(raw))
        layers = bb.prepare(model)
        export_blob(model)
        bb.run(layers, np.zeros(layers.in_shape, dtype=np.int8))
    except ModelError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_parse_or_raise_model_error(raw: bytes) -> None:
    try:
        read_model(raw)
    except ModelError:
        pass


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, 1e-38])
def test_a_scale_that_is_not_a_positive_finite_number_is_a_model_error(bad: float) -> None:
    """Every stored scale of the graph replaced, one at a time, by NaN, infinity, 0 or a
    denormal-sized value: the model check raises ModelError (not a NaN conversion, an overflow or
    a division by zero from the rescale factors) or the model stays valid."""
    raw = (VECTORS / "branchy.tflite").read_bytes()
    model = read_model(raw)
    refused = 0
    for scale in {t.quant.scale[0] for t in model.tensors if t.quant is not None}:
        packed = struct.pack("<f", scale)
        at = raw.find(packed)
        while at >= 0:
            patched = raw[:at] + struct.pack("<f", bad) + raw[at + 4:]
            try:
                bb.prepare(read_model(patched))
            except ModelError:
                refused += 1
            at = raw.find(packed, at + 1)
    assert refused > 0
