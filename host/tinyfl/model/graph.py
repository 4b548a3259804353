"""From a .tflite subgraph to the prepared int8 layers the node runs: the model check.

`prepare(model)` walks the operators in their stored (topological) order, refuses anything the
node cannot run, and turns every supported op into a layer of tinyfl.model.layers with every
multiplier, shift, clamp and padding derived as LiteRT's Prepare step derives it. Reshapes
(RESHAPE, EXPAND_DIMS, SQUEEZE) move no data (activations are contiguous NHWC): their output is
an alias of their input. Each error is a ModelError (exit code 8) that names the op, its operator
index and its output tensor, and lists the supported ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyfl.model.fixedpoint import activation_range, quantize_multiplier
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
    input_sizes,
    output_size,
)
from tinyfl.model.tflite import ModelError, Operator, Tensor, TfliteModel

__all__ = ["COMPUTE_OPS", "MAX_LAYERS", "RESHAPE_OPS", "SUPPORTED_OPS", "Graph", "Step",
           "mean_multiplier", "prepare"]

RESHAPE_OPS = frozenset({"EXPAND_DIMS", "RESHAPE", "SQUEEZE"})
COMPUTE_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D",
                         "AVERAGE_POOL_2D", "MEAN", "ADD", "PAD", "RELU", "RELU6", "QUANTIZE"})
SUPPORTED_OPS = RESHAPE_OPS | COMPUTE_OPS
MAX_LAYERS = 32  # kBackboneMaxLayers of the firmware core
INT8 = 9


@dataclass(frozen=True)
class Step:
    """One layer of the graph: its input tensors and its output tensor (tensor indices of the
    .tflite, reshape aliases resolved to the tensor that holds the bytes)."""

    layer: Layer
    inputs: tuple[int, ...]
    output: int
    op_index: int
    op_name: str


@dataclass(frozen=True)
class Graph:
    """A backbone as the node runs it: steps in execution order, the model input and output
    tensors, and the quantization of both ends. The last step writes the output."""

    steps: tuple[Step, ...]
    input: int
    output: int
    in_shape: tuple[int, int, int]  # (h, w, c) of the input window
    in_quant: tuple[float, int]
    out_quant: tuple[float, int]

    @property
    def layers(self) -> list[Layer]:
        return [s.layer for s in self.steps]

    @property
    def embedding_len(self) -> int:
        return output_size(self.steps[-1].layer)


class _OpError(Exception):
    """Raised inside one op's preparation; prepare() adds which op it was."""


def _where(model: TfliteModel, op: Operator) -> str:
    out = model.tensors[op.outputs[0]].name if op.outputs else "?"
    return f"{op.name} (operator {op.index}, output tensor '{out}')"


def _supported() -> str:
    return ", ".join(sorted(SUPPORTED_OPS))


def _hwc(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    """(h, w, c) of a batch-1 tensor of rank 1 to 4 (leading 1s fill missing dims)."""
    if not shape or len(shape) > 4:
        raise _OpError(f"{what} has shape {list(shape)}; tensors of rank 1 to 4 are supported")
    dims = list(shape)
    if len(dims) >= 2:
        if dims[0] != 1:
            raise _OpError(f"{what} has batch {dims[0]}; only batch 1 is supported")
        dims = dims[1:]
    while len(dims) < 3:
        dims.insert(0, 1)
    return dims[0], dims[1], dims[2]


def _quant(t: Tensor) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor int8 activation tensor."""
    if t.type != INT8 or t.quant is None or len(t.quant.scale) != 1:
        raise _OpError(f"tensor {t.index} ('{t.name}') is {t.type_name}"
                       f"{'' if t.quant is None else f' with {len(t.quant.scale)} scales'}; "
                       "activations must be per-tensor quantized INT8")
    if t.data is not None:
        raise _OpError(f"tensor {t.index} ('{t.name}') is a constant; the node takes constants "
                       "only as weights and biases")
    scale = t.quant.scale[0]
    if not math.isfinite(scale) or scale <= 0:
        raise _OpError(f"tensor {t.index} ('{t.name}') has scale {scale}; a scale is finite "
                       "and > 0")
    return scale, t.quant.zero_point[0]


def _multiplier(real: float) -> tuple[int, int]:
    """quantize_multiplier of a rescale factor the scales imply; _OpError when they make it
    infinite or not a number (a corrupt file, not a model)."""
    if not math.isfinite(real) or real < 0:
        raise _OpError(f"the tensor scales give the rescale factor {real}; it must be finite "
                       "and >= 0")
    return quantize_multiplier(real)


def _operand(model: TfliteModel, op: Operator, k: int, what: str) -> Tensor:
    """The op's k-th input tensor; a missing one (absent or -1) is an error, not tensors[-1]."""
    if len(op.inputs) <= k or op.inputs[k] < 0:
        raise _OpError(f"{what} (input {k}) is missing")
    return model.tensors[op.inputs[k]]


def _size(t: Tensor) -> int:
    return int(np.prod(t.shape, dtype=np.int64))


def _padding(padding: int, size: int, filt: int, stride: int, dilation: int, out: int) -> int:
    """ComputePaddingHeightWidth: SAME pads (total // 2) before; VALID pads nothing. Checks that
    the stored output size is the one the padding implies."""
    eff = (filt - 1) * dilation + 1
    expected = (size + stride - 1) // stride if padding == 0 else (size + stride - eff) // stride
    if padding not in (0, 1) or expected != out or out <= 0:
        raise _OpError(f"output size {out} does not follow from input {size}, filter {filt}, "
                       f"stride {stride}, padding {'SAME' if padding == 0 else 'VALID'}")
    return max((out - 1) * stride + eff - size, 0) // 2


def _per_channel(model: TfliteModel, op: Operator, n_out: int, axis: int
                 ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """int8 weights, int32 bias and the per-channel weight scales of a conv/FC op. Weights must
    be symmetric per-channel int8 along `axis` (TFLite's int8 spec), the bias int32."""
    w = _operand(model, op, 1, "weights")
    if w.type != INT8 or w.quant is None or w.data is None:
        raise _OpError(f"weights must be constant INT8, are {w.type_name}")
    if any(z != 0 for z in w.quant.zero_point):
        raise _OpError("int8 weights must be symmetric (zero point 0)")
    scales = w.quant.scale
    if not all(math.isfinite(v) and v >= 0 for v in scales):
        raise _OpError("weight scales must be finite and >= 0")
    if len(scales) != n_out or (n_out > 1 and w.quant.quantized_dimension != axis):
        raise _OpError(f"{len(scales)} weight scales for {n_out} output channels (per-tensor "
                       "weights: only per-channel int8 weights are supported)")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = model.tensors[op.inputs[2]]
        if b.type != 2:
            raise _OpError(f"bias must be INT32, is {b.type_name}")
        bias = b.array().astype(np.int32).reshape(-1)
        if bias.size != n_out:
            raise _OpError(f"{bias.size} biases for {n_out} channels")
    else:
        bias = np.zeros(n_out, dtype=np.int32)
    return w.array().astype(np.int8), bias, list(scales)


def _conv_multipliers(s_in: float, scales: list[float], s_out: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """PopulateConvolutionQuantizationParams: M_c = double(S_in) * double(S_w[c]) / double(S_out)."""
    mult = np.zeros(len(scales), dtype=np.int32)
    shift = np.zeros(len(scales), dtype=np.int32)
    for c, sw in enumerate(scales):
        mult[c], shift[c] = _multiplier(float(s_in) * float(sw) / float(s_out))
    return mult, shift


def _window(o: dict[str, int | bool], keys: tuple[str, ...]) -> list[int]:
    vals = [int(o[k]) for k in keys]
    if min(vals) < 1:
        raise _OpError(f"{', '.join(keys)} must be positive, are {vals}")
    return vals


def _conv(model: TfliteModel, op: Operator, x: Tensor, out: Tensor) -> Layer:
    w = _operand(model, op, 1, "filter")
    h, wd, cin = _hwc(x.shape, "input")
    oh, ow, cout = _hwc(out.shape, "output")
    depthwise = op.name == "DEPTHWISE_CONV_2D"
    if len(w.shape) != 4:
        raise _OpError(f"filter shape {list(w.shape)} is not 4-D")
    if depthwise:
        if w.shape[0] != 1 or w.shape[3] != cout or cout % cin:
            raise _OpError(f"filter {list(w.shape)} does not match {cin} -> {cout} channels")
        mult_opt = int(op.options.get("depth_multiplier", 0))
        if mult_opt not in (0, cout // cin):  # 0: older converters leave it unset
            raise _OpError(f"depth multiplier {mult_opt} is not {cout // cin}")
    elif w.shape[0] != cout or w.shape[3] != cin:
        raise _OpError(f"filter {list(w.shape)} does not match input channels {cin} / output "
                       f"channels {cout} (grouped convolution is not supported)")
    kh, kw = int(w.shape[1]), int(w.shape[2])
    o = op.options
    sh, sw, dh, dw = _window(o, ("stride_h", "stride_w", "dilation_h_factor", "dilation_w_factor"))
    pt = _padding(int(o["padding"]), h, kh, sh, dh, oh)
    pl = _padding(int(o["padding"]), wd, kw, sw, dw, ow)
    weights, bias, scales = _per_channel(model, op, cout, 3 if depthwise else 0)
    s_in, zp_in = _quant(x)
    s_out, zp_out = _quant(out)
    mult, shift = _conv_multipliers(s_in, scales, s_out)
    act = activation_range(int(o["fused_activation_function"]), s_out, zp_out)
    if depthwise:
        return DepthwiseConv2D((h, wd, cin), (oh, ow, cout), (sh, sw), (dh, dw), (pt, pl),
                               weights.reshape(kh, kw, cout), bias, mult, shift, zp_in, zp_out,
                               act)
    return Conv2D((h, wd, cin), (oh, ow, cout), (sh, sw), (dh, dw), (pt, pl), weights, bias, mult,
                  shift, zp_in, zp_out, act)


def _pool(op: Operator, x: Tensor, out: Tensor) -> Layer:
    h, w, c = _hwc(x.shape, "input")
    oh, ow, oc = _hwc(out.shape, "output")
    if _quant(x) != _quant(out) or oc != c:
        raise _OpError("input and output must share channels and quantization")
    o = op.options
    fh, fw, sh, sw = _window(o, ("filter_height", "filter_width", "stride_h", "stride_w"))
    pt = _padding(int(o["padding"]), h, fh, sh, 1, oh)
    pl = _padding(int(o["padding"]), w, fw, sw, 1, ow)
    act = activation_range(int(o.get("fused_activation_function", 0)), *_quant(out))
    cls = MaxPool2D if op.name == "MAX_POOL_2D" else AvgPool2D
    return cls((h, w, c), (oh, ow, c), (fh, fw), (sh, sw), (pt, pl), act)


def mean_multiplier(real: float, n: int) -> tuple[int, int]:
    """(multiplier, shift) of S_in / (S_out * n): QuantizeMultiplier(S_in / S_out), then the
    multiplier is scaled by 2^k / n (k = floor(log2 n), at most 32 and at most 31 + shift so the
    final shift stays >= -31) with truncating integer division, and the shift lowered by k."""
    mult, shift = _multiplier(real)
    k = min(n.bit_length() - 1, 32, 31 + shift)
    if k < 0:
        raise _OpError(f"MEAN rescale {real} is too small to represent")
    return (mult << k) // n, shift - k


def _mean(model: TfliteModel, op: Operator, x: Tensor, out: Tensor) -> Mean:
    s_in, zp_in = _quant(x)
    s_out, zp_out = _quant(out)
    dims = x.shape
    _hwc(dims, "input")
    axes = sorted({int(a) % len(dims) for a in _operand(model, op, 1, "axes").array().reshape(-1)})
    if not axes or axes != list(range(axes[0], axes[-1] + 1)) or axes[0] == 0:
        raise _OpError(f"axes {axes} are not one contiguous run of non-batch axes")
    if len(dims) == 4 and axes == [1, 2] and bool(op.options.get("keep_dims", False)):
        # LiteRT routes this case to a third integer kernel (reference_integer_ops::Mean).
        raise _OpError("MEAN over axes 1, 2 of a 4-D tensor with keep_dims is not supported "
                       "(use keepdims=False)")
    outer = int(np.prod(dims[: axes[0]], dtype=np.int64))
    red = int(np.prod(dims[axes[0] : axes[-1] + 1], dtype=np.int64))
    inner = int(np.prod(dims[axes[-1] + 1 :], dtype=np.int64))
    if red < 1 or red > 1 << 23 or outer * inner != _size(out):
        raise _OpError(f"output shape {list(out.shape)} does not match")
    if (s_in, zp_in) == (s_out, zp_out):  # LiteRT's reference_ops::Mean: no rescale
        return Mean(outer, red, inner, zp_in, 0, 0, zp_out, rescale=False)
    mult, shift = mean_multiplier(float(s_in) / float(s_out), red)
    return Mean(outer, red, inner, zp_in, mult, shift, zp_out)


def _fully_connected(model: TfliteModel, op: Operator, x: Tensor, out: Tensor) -> FullyConnected:
    w = _operand(model, op, 1, "weights")
    if len(w.shape) != 2:
        raise _OpError(f"weights must be 2-D, are {list(w.shape)}")
    m, n = w.shape
    if _size(x) != n or _size(out) != m:
        raise _OpError(f"only batch 1 ({n} -> {m}) is supported; input {list(x.shape)}")
    if int(op.options.get("weights_format", 0)) != 0:
        raise _OpError("shuffled weights are not supported")
    weights, bias, scales = _per_channel(model, op, m, 0)
    s_in, zp_in = _quant(x)
    s_out, zp_out = _quant(out)
    eff = np.array([float(s_in) * float(sc) / float(s_out) for sc in scales], dtype=np.float64)
    act = activation_range(int(op.options.get("fused_activation_function", 0)), s_out, zp_out)
    return FullyConnected(n, m, weights, bias, eff, zp_in, zp_out, act)


def _squeeze_leading(shape: tuple[int, ...]) -> tuple[int, ...]:
    dims = list(shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    return tuple(dims)


def _add(model: TfliteModel, op: Operator, out: Tensor) -> Add:
    """TFLite's int8 ADD Prepare: left shift 20, both inputs rescaled to 2 * max(S1, S2), the
    sum rescaled by 2 * max(S1, S2) / (2^20 * S_out) (QuantizeMultiplierSmallerThanOneExp)."""
    if len(op.inputs) != 2:
        raise _OpError(f"{len(op.inputs)} inputs; ADD takes two")
    a, b = _operand(model, op, 0, "input"), _operand(model, op, 1, "second input")
    # Shapes that differ only by leading 1s (the converter emits (1, n) + (n,)) broadcast to an
    # elementwise add; LiteRT's broadcasting kernel does the same arithmetic per element.
    if _squeeze_leading(a.shape) != _squeeze_leading(b.shape) or _size(a) != _size(out):
        raise _OpError(f"inputs {list(a.shape)} and {list(b.shape)} differ (broadcasting is not "
                       "supported)")
    _hwc(out.shape, "output")
    (s1, z1), (s2, z2), (so, zo) = _quant(a), _quant(b), _quant(out)
    left_shift = 20
    twice_max = float(2 * np.float32(max(s1, s2)))  # float in TFLite, exact (times 2)
    real_out = twice_max / float(np.float32(1 << left_shift) * np.float32(so))
    (m1, e1), (m2, e2), (mo, eo) = (_multiplier(r) for r in
                                    (float(s1) / twice_max, float(s2) / twice_max, real_out))
    if max(e1, e2, eo) > 0:
        raise _OpError("input or output scales too far apart for int8 ADD")
    act = activation_range(int(op.options.get("fused_activation_function", 0)), so, zo)
    return Add(_size(out), (z1, z2), (m1, m2), (e1, e2), left_shift, mo, eo, zo, act)


def _pad(model: TfliteModel, op: Operator, x: Tensor, out: Tensor) -> Pad:
    if _quant(x) != _quant(out):
        raise _OpError("input and output quantization differ")
    paddings = _operand(model, op, 1, "paddings").array().astype(np.int64).reshape(-1, 2)
    rank = len(x.shape)
    if paddings.shape[0] != rank or (paddings < 0).any() or (rank >= 2 and paddings[0].any()):
        raise _OpError(f"paddings {paddings.tolist()} do not fit input {list(x.shape)} (no "
                       "batch padding)")
    dims = list(x.shape[1:]) if rank >= 2 else list(x.shape)
    before = [int(p) for p in (paddings[1:, 0] if rank >= 2 else paddings[:, 0])]
    after = [int(p) for p in (paddings[1:, 1] if rank >= 2 else paddings[:, 1])]
    while len(dims) < 3:
        dims.insert(0, 1)
        before.insert(0, 0)
        after.insert(0, 0)
    in_hwc = (dims[0], dims[1], dims[2])
    out_hwc = tuple(d + b + e for d, b, e in zip(dims, before, after, strict=True))
    if out_hwc != _hwc(out.shape, "output"):
        raise _OpError(f"output {list(out.shape)} does not match padded input")
    return Pad(in_hwc, (out_hwc[0], out_hwc[1], out_hwc[2]), (before[0], before[1], before[2]),
               _quant(out)[1])


def _requantize(op: Operator, x: Tensor, out: Tensor) -> Requantize:
    s_in, zp_in = _quant(x)
    s_out, zp_out = _quant(out)
    if _size(x) != _size(out):
        raise _OpError("input and output sizes differ")
    if op.name == "QUANTIZE":  # quantize.cc: double(S_in) / double(S_out), no clamp
        mult, shift = _multiplier(float(s_in) / float(s_out))
        return Requantize(_size(out), zp_in, zp_out, mult, shift, (-128, 127))
    # activations.cc ReluPrepare divides the float32 scales in float32.
    mult, shift = _multiplier(float(np.float32(s_in) / np.float32(s_out)))
    act = activation_range(1 if op.name == "RELU" else 3, s_out, zp_out)
    return Requantize(_size(out), zp_in, zp_out, mult, shift, act)


def _layer(model: TfliteModel, op: Operator) -> Layer:
    x, out = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return _conv(model, op, x, out)
    if op.name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return _pool(op, x, out)
    if op.name == "MEAN":
        return _mean(model, op, x, out)
    if op.name == "FULLY_CONNECTED":
        return _fully_connected(model, op, x, out)
    if op.name == "ADD":
        return _add(model, op, out)
    if op.name == "PAD":
        return _pad(model, op, x, out)
    return _requantize(op, x, out)


def _activation_inputs(op: Operator) -> tuple[int, ...]:
    """The op's inputs that carry activations (weights, biases and shape/axis operands not)."""
    if op.name == "ADD":
        return op.inputs[:2]
    return op.inputs[:1]


def _prepare_op(model: TfliteModel, op: Operator, alias: dict[int, int]) -> Step | None:
    """The op's step (None for a reshape, which only records the alias)."""
    if op.name not in SUPPORTED_OPS:
        raise _OpError("unsupported op")
    if len(op.outputs) != 1 or not op.inputs or op.inputs[0] < 0:
        raise _OpError("expected one output and an activation input")
    ins = _activation_inputs(op)
    for i in ins:
        if i < 0 or i not in alias:
            raise _OpError(f"input tensor {i} is not the model input or an earlier op's output "
                           "(constant or unknown activation)")
    x, out = model.tensors[ins[0]], model.tensors[op.outputs[0]]
    if op.name in RESHAPE_OPS:
        _hwc(out.shape, "output")
        if _size(x) != _size(out) or _quant(x) != _quant(out):
            raise _OpError("changes size or quantization")
        alias[op.outputs[0]] = alias[ins[0]]
        return None
    try:
        layer = _layer(model, op)
    except (KeyError, IndexError) as exc:  # a corrupted file can lack an option the op needs
        raise _OpError(f"missing or malformed option {exc}") from None
    if input_sizes(layer) != tuple(_size(model.tensors[i]) for i in ins):
        raise _OpError("input sizes do not match the op's shapes")
    alias[op.outputs[0]] = op.outputs[0]
    return Step(layer, tuple(alias[i] for i in ins), op.outputs[0], op.index, op.name)


def prepare(model: TfliteModel) -> Graph:
    """The model check and Prepare step: the graph of layers the node runs.

    Raises ModelError, naming the op (name, operator index, output tensor) and listing the
    supported ops, for an unsupported op, a non-int8 or per-channel activation, per-tensor
    weights, batch > 1, or a graph the node cannot run.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"a backbone has one input and one output, this model has "
                         f"{len(model.inputs)} and {len(model.outputs)}")
    x = model.tensors[model.inputs[0]]
    try:
        in_shape, in_quant = _hwc(x.shape, "the model input"), _quant(x)
    except _OpError as exc:
        raise ModelError(f"model input '{x.name}': {exc}") from None
    alias = {model.inputs[0]: model.inputs[0]}
    steps: list[Step] = []
    for op in model.operators:
        try:
            step = _prepare_op(model, op, alias)
        except (_OpError, ModelError) as exc:
            raise ModelError(f"{_where(model, op)}: {exc}; supported ops: {_supported()}"
                             ) from None
        if step is not None:
            steps.append(step)
    return _check_graph(model, steps, alias, in_shape, in_quant)


def _check_graph(model: TfliteModel, steps: list[Step], alias: dict[int, int],
                 in_shape: tuple[int, int, int], in_quant: tuple[float, int]) -> Graph:
    y = model.tensors[model.outputs[0]]
    if model.outputs[0] not in alias:
        raise ModelError(f"the model output '{y.name}' is not produced by any op")
    if not steps:
        raise ModelError("model has no compute layer (supported ops: " + _supported() + ")")
    if len(steps) > MAX_LAYERS:
        raise ModelError(f"{len(steps)} compute layers; the node runs at most {MAX_LAYERS}")
    out = alias[model.outputs[0]]
    if steps[-1].output != out:
        raise ModelError(f"the model output '{y.name}' is not written by the last op (the node "
                         "writes the embedding last)")
    try:
        out_quant = _quant(y)
    except _OpError as exc:
        raise ModelError(f"model output: {exc}") from None
    return Graph(tuple(steps), model.inputs[0], out, in_shape, in_quant, out_quant)
