"""The int8 backbone in numpy, bit-exact with LiteRT's reference kernels (and the node's C++).

Why: the coordinator evaluates and exports models on machines without TensorFlow, and the node's
embedding must equal the host's byte for byte, so both follow one arithmetic: TFLite's integer-only
inference (Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", CVPR 2018; TFLite's int8 quantization spec).

This module is the entry point; the pieces live by concern:
- tinyfl.model.fixedpoint: QuantizeMultiplier, MultiplyByQuantizedMultiplier and friends;
- tinyfl.model.graph: `prepare` (the model check and Prepare step: .tflite -> Graph of layers);
- tinyfl.model.layers: the layers and their numpy kernels;
- tinyfl.model.plan: the arena plan (offsets of the intermediate tensors in the node's arena).

`prepare(model)` checks the whole model once; `run(graph, x)` is then a pure function of the int8
input. The firmware blob (tinyfl.model.firmware_blob) serializes exactly these layers and the arena
plan, so the C++ kernels see the same multipliers, shifts and clamps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tinyfl.model.fixedpoint import (
    activation_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    tflite_round,
)
from tinyfl.model.graph import SUPPORTED_OPS, Graph, Step, mean_multiplier, prepare
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
    apply,
)
from tinyfl.model.plan import arena_bytes
from tinyfl.model.tflite import TfliteModel

__all__ = [
    "SUPPORTED_OPS",
    "Add",
    "AvgPool2D",
    "Conv2D",
    "DepthwiseConv2D",
    "FullyConnected",
    "Graph",
    "Layer",
    "MaxPool2D",
    "Mean",
    "Pad",
    "Requantize",
    "Step",
    "activation_range",
    "arena_bytes",
    "check_model",
    "mean_multiplier",
    "multiply_by_quantized_multiplier",
    "prepare",
    "quantize_multiplier",
    "round_half_away",
    "rounding_divide_by_pot",
    "run",
    "run_model",
    "saturating_rounding_doubling_high_mul",
    "tflite_round",
]

I8 = npt.NDArray[np.int8]


def check_model(model: TfliteModel) -> None:
    """ModelError (exit code 8) unless the node can run this model: the op, its operator index
    and output tensor are named, and the supported ops listed. Nothing is written."""
    from tinyfl.model.plan import plan_arena

    plan_arena(prepare(model))


def run(graph: Graph, x: I8) -> I8:
    """The backbone's int8 output (flattened) for one int8 input."""
    values: dict[int, I8] = {graph.input: np.asarray(x, dtype=np.int8).reshape(-1)}
    for step in graph.steps:
        values[step.output] = apply(step.layer, [values[t] for t in step.inputs])
    return values[graph.output]


def run_model(model: TfliteModel, x: I8) -> I8:
    """Convenience: prepare + run (prepare once and reuse the graph for many inputs)."""
    return run(prepare(model), x)
