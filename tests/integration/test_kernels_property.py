"""Property test: random int8 models from every supported op run byte for byte like LiteRT.

Each case builds a random small Keras model (tests/support/random_models.py: 1-D windows, feature
vectors, 2-D inputs; convolutions, depthwise convolutions, pooling, zero padding, ReLU/ReLU6,
residual Add branches), converts it to full int8 with the project's converter, and runs 64 random
int8 inputs (half uniform over all codes, half near the input zero point) through
(a) LiteRT's reference interpreter (BUILTIN_REF, the ground truth),
(b) the numpy backbone (tinyfl.model.backbone), and
(c) the firmware core compiled natively once per session (firmware/tools/backbone_runner.cpp
    with firmware/lib/tinyfl/src/*.cpp), fed the v2 firmware blob.
All three must agree on every byte, and the core must accept the host's arena plan.

Seeds: a fresh base seed every run (printed in the test ids; TINYFL_KERNEL_SEED=N reproduces a
run), plus FIXED_SEEDS, models known to contain DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, PAD, ADD,
RELU, RELU6 and a dilated convolution, so every op is covered on every run. TINYFL_KERNEL_MODELS sets the random count.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from support.random_models import SPECIAL_MODELS, build_int8, build_special_int8
from tinyfl.model import backbone as bb
from tinyfl.model.build import embed
from tinyfl.model.firmware_blob import export_graph
from tinyfl.model.plan import plan_arena
from tinyfl.model.tflite import read_model

ROOT = Path(__file__).resolve().parents[2]
BASE_SEED = int(os.environ.get("TINYFL_KERNEL_SEED", str(secrets.randbelow(10**6) * 100)))
N_RANDOM = int(os.environ.get("TINYFL_KERNEL_MODELS", "48"))
FIXED_SEEDS = (6, 36, 38, 46)
N_INPUTS = 64
OPS_SEEN: set[str] = set()


@pytest.fixture(scope="session")
def core_runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The firmware core's backbone, compiled for this machine (the same sources as the node)."""
    out = tmp_path_factory.mktemp("core") / "backbone_runner"
    sources = sorted(str(p) for p in (ROOT / "firmware/lib/tinyfl/src").glob("*.cpp"))
    subprocess.run(["g++", "-std=c++17", "-O2", "-Wall", "-Werror", "-fno-exceptions", "-fno-rtti",
                    f"-I{ROOT / 'firmware/lib/tinyfl/include'}",
                    str(ROOT / "firmware/tools/backbone_runner.cpp"), *sources, "-o", str(out)],
                   check=True, timeout=300)
    return out


def _inputs(seed: int, shape: tuple[int, ...], zp: int) -> npt.NDArray[np.int8]:
    rng = np.random.default_rng(seed)
    half = N_INPUTS // 2
    uniform = rng.integers(-128, 128, size=(half, *shape))
    near = np.clip(zp + rng.integers(-20, 21, size=(N_INPUTS - half, *shape)), -128, 127)
    return np.concatenate([uniform, near]).astype(np.int8)


@pytest.mark.parametrize("seed", [*FIXED_SEEDS, *range(BASE_SEED, BASE_SEED + N_RANDOM)])
def test_random_model_is_bit_exact(seed: int, core_runner: Path, tmp_path: Path) -> None:
    tflite, shape = build_int8(seed)
    _check_bit_exact(tflite, shape, seed, core_runner, tmp_path)


@pytest.mark.parametrize("name", SPECIAL_MODELS)
def test_special_graph_is_bit_exact(name: str, core_runner: Path, tmp_path: Path) -> None:
    tflite, shape = build_special_int8(name)
    _check_bit_exact(tflite, shape, 11, core_runner, tmp_path)


def _check_bit_exact(tflite: bytes, shape: tuple[int, ...], seed: int, core_runner: Path,
                     tmp_path: Path) -> None:
    model = read_model(tflite)
    graph = bb.prepare(model)
    plan = plan_arena(graph)
    OPS_SEEN.update(op.name for op in model.operators)
    if any(int(op.options.get(f"dilation_{a}_factor", 1)) > 1 for op in model.operators
           for a in "hw"):
        OPS_SEEN.add("dilation")
    x = _inputs(seed, shape, graph.in_quant[1])

    reference = embed(tflite, x, batch=1)  # the models have a static batch of 1
    host = np.stack([bb.run(graph, xi) for xi in x])
    assert host.tobytes() == reference.tobytes(), (
        f"seed {seed}: numpy differs in {int((host != reference).sum())} bytes; ops "
        f"{[op.name for op in model.operators]}")

    (tmp_path / "m.tfmb").write_bytes(export_graph(graph, plan))
    x.tofile(tmp_path / "x.bin")
    run = subprocess.run([str(core_runner), str(tmp_path / "m.tfmb"), str(tmp_path / "x.bin"),
                          str(tmp_path / "y.bin")], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"arena_bytes={plan.arena_bytes}"
    core = np.fromfile(tmp_path / "y.bin", dtype=np.int8).reshape(reference.shape)
    assert core.tobytes() == reference.tobytes(), (
        f"seed {seed}: firmware core differs in {int((core != reference).sum())} bytes")


def test_every_op_was_exercised() -> None:
    """Runs after the cases above (file order): the fixed seeds cover every op LiteRT's converter
    emits for these layers, so a kernel cannot silently go untested."""
    if not OPS_SEEN:
        pytest.fail("run with the property cases (this test checks their coverage)")
    expected = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "ADD",
                "PAD", "RELU", "RELU6", "FULLY_CONNECTED", "RESHAPE", "dilation"}
    assert expected <= OPS_SEEN, f"not exercised: {sorted(expected - OPS_SEEN)}"


@pytest.mark.parametrize("seed", range(8))
def test_requantize_layer_numpy_equals_core(seed: int, core_runner: Path, tmp_path: Path) -> None:
    """QUANTIZE (int8 -> int8) has no Keras layer that makes the converter emit it, so its layer
    (shared with RELU/RELU6, which LiteRT checks above) is compared between numpy and the core
    alone, over random scales and zero points, every input code, and clamps."""
    from tinyfl.model.fixedpoint import quantize_multiplier
    from tinyfl.model.graph import Graph, Step
    from tinyfl.model.layers import Requantize

    rng = np.random.default_rng(seed)
    ratio = float(np.float32(rng.uniform(0.05, 3.0)))
    mult, shift = quantize_multiplier(ratio)
    zp_in, zp_out = (int(v) for v in rng.integers(-128, 128, 2))
    lo = int(rng.integers(-128, 0))
    layer = Requantize(256, zp_in, zp_out, mult, shift, (lo, int(rng.integers(lo, 128))))
    graph = Graph((Step(layer, (0,), 1, 0, "QUANTIZE"),), 0, 1, (1, 1, 256), (1.0, zp_in),
                  (ratio, zp_out))
    x = np.arange(-128, 128, dtype=np.int8)
    expected = bb.run(graph, x)
    real = np.clip(np.round((x.astype(np.float64) - zp_in) * ratio) + zp_out, *layer.act)
    assert np.abs(expected.astype(np.float64) - real).max() <= 1  # the rescale is what it says
    (tmp_path / "q.tfmb").write_bytes(export_graph(graph, plan_arena(graph)))
    x.tofile(tmp_path / "x.bin")
    run = subprocess.run([str(core_runner), str(tmp_path / "q.tfmb"), str(tmp_path / "x.bin"),
                          str(tmp_path / "y.bin")], capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert np.fromfile(tmp_path / "y.bin", dtype=np.int8).tobytes() == expected.tobytes()
