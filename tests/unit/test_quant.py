"""The quantizer (tinyfl.quant) against testvectors/quant/ (bit for bit, the files the firmware
also reads), plus its error bounds, unbiasedness and argument checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from support.vectors import head_vector_generator
from tinyfl.quant import dequantize, qmax, quantize, quantize_nearest
from tinyfl.rng import Xorshift32
from tinyfl.wire import Tensor

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "testvectors" / "quant").glob("q_*.bin"))


GEN = head_vector_generator()


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_codes_and_scales_match_golden(path: Path) -> None:
    v = GEN.unpack(path.read_bytes())
    bits, mode = int(v["bits"]), int(v["mode"])
    rng = Xorshift32(int(v["rng_state"]))
    codes, scales = quantize(v["x"], bits, mode, rng)
    assert codes.dtype == np.int8 and codes.tobytes() == v["codes"].tobytes()
    assert scales.dtype == np.float32 and scales.tobytes() == v["scales"].tobytes()
    assert rng.state == v["rng_state_after"]
    ncodes, nscales = quantize_nearest(v["x"], bits, mode)
    assert ncodes.tobytes() == v["nearest_codes"].tobytes()
    assert nscales.tobytes() == v["nearest_scales"].tobytes()


def test_golden_set_covers_every_width_and_mode() -> None:
    seen = {(int(v["bits"]), int(v["mode"])) for v in (GEN.unpack(p.read_bytes()) for p in FILES)}
    assert {(b, m) for b in (8, 4, 2) for m in (0, 1)} <= seen


tensors = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=17),
    elements=st.floats(-1e6, 1e6, width=32, allow_nan=False, allow_infinity=False),
)


def _per_value_scale(
    scales: npt.NDArray[np.float32], shape: tuple[int, ...], mode: int
) -> npt.NDArray[np.float64]:
    s = scales.astype(np.float64)
    return np.broadcast_to(s[:, None] if mode == 1 else s[:1, None], shape)


@settings(max_examples=200, deadline=None)
@given(tensors, st.sampled_from([8, 4, 2]), st.sampled_from([0, 1]), st.integers(0, 0xFFFFFFFF))
def test_error_is_at_most_one_step_stochastic_and_half_step_nearest(
    x: npt.NDArray[np.float32], bits: int, mode: int, state: int
) -> None:
    codes, scales = quantize(x, bits, mode, Xorshift32(state))
    assert np.abs(codes.astype(int)).max() <= qmax(bits)
    s = _per_value_scale(scales, x.shape, mode)
    absx = np.abs(x.astype(np.float64))
    top = np.broadcast_to(absx.max(axis=1, keepdims=True) if mode == 1 else absx.max(), x.shape)
    # The scale is rounded to binary16 (docs/WIRE.md): rounded down, the largest values clamp
    # at qmax * scale; that gap is at most 2^-11 of the largest value in the normal range, and
    # more where the scale underflows (below 2^-14) or saturates (above 65504).
    gap = np.maximum(top - qmax(bits) * s, 0.0)
    normal = (top / qmax(bits) >= 2.0**-14) & (top / qmax(bits) <= 65504.0)
    assert (gap[normal] <= top[normal] * 2.0**-11 * 1.0001).all()
    err = np.abs(x.astype(np.float64) - dequantize(codes, scales, mode))
    slack = 4e-6 * s + 1e-37  # float32 rounding of x / scale and of q * scale
    assert (err <= s + slack + gap).all()
    ncodes, nscales = quantize_nearest(x, bits, mode)
    nerr = np.abs(x.astype(np.float64) - dequantize(ncodes, nscales, mode))
    assert (nerr <= 0.5 * s + slack + gap).all()


def test_stochastic_rounding_is_unbiased() -> None:
    # 2-bit codes map every value to -s, 0 or s; the mean over N draws still tends to x.
    # One draw has standard deviation <= s/2, so 5 sigma of the mean is 5 s / (2 sqrt(N)).
    x = (Xorshift32(31).uniform01_array(64) * np.float32(2) - np.float32(1)).reshape(1, 64)
    draws = 4000
    tiled = np.repeat(x, draws, axis=0)  # each row has the same max, so one tensor scale fits all
    codes, scales = quantize(tiled, 2, 0, Xorshift32(2024))
    mean = dequantize(codes, scales, 0).astype(np.float64).mean(axis=0)
    tol = 5 * float(scales[0]) / (2 * np.sqrt(draws))
    assert np.abs(mean - x[0]).max() <= tol
    ncodes, nscales = quantize_nearest(x, 2, 0)
    assert np.abs(dequantize(ncodes, nscales, 0) - x).max() > 10 * tol  # nearest is biased


def test_zero_row_gives_zero_codes_and_still_draws() -> None:
    x = np.array([[0, 0, 0], [1.0, -2.0, 0.5], [0, 0, 0]], np.float32)
    rng, ref = Xorshift32(5), Xorshift32(5)
    codes, scales = quantize(x, 8, 1, rng)
    ref.next_array(9)
    assert rng.state == ref.state
    assert scales.tolist() == [0.0, np.float32(np.float16(np.float32(2.0) / np.float32(127))), 0.0]
    assert codes[0].tolist() == [0, 0, 0] and codes[2].tolist() == [0, 0, 0]
    assert codes[1, 1] == -127


def test_dequantize_agrees_with_the_wire_tensor() -> None:
    x = GEN.quant_input(7, 4, 9)
    for bits in (8, 4, 2):
        for mode in (0, 1):
            codes, scales = quantize(x, bits, mode, Xorshift32(3))
            wire = Tensor.quantized(codes, scales, bits, per_row=mode == 1)
            assert dequantize(codes, scales, mode).tobytes() == wire.dequantized().tobytes()


@pytest.mark.parametrize(
    ("x", "bits", "mode"),
    [
        (np.ones((2, 2)), 3, 0),
        (np.ones((2, 2)), 32, 0),
        (np.ones((2, 2)), 8, 2),
        (np.ones(4), 8, 0),
        (np.array([[1.0, np.nan]]), 8, 0),
        (np.array([[1.0, -np.inf]]), 4, 1),
    ],
)
def test_bad_arguments_raise(x: npt.NDArray[np.float64], bits: int, mode: int) -> None:
    rng = Xorshift32(1)
    with pytest.raises(ValueError):
        quantize(x, bits, mode, rng)
    with pytest.raises(ValueError):
        quantize_nearest(x, bits, mode)
    assert rng.state == 1  # nothing drawn


def test_dequantize_checks_its_scales() -> None:
    codes = np.zeros((2, 3), np.int8)
    with pytest.raises(ValueError):
        dequantize(codes, [1.0], 1)
    with pytest.raises(ValueError):
        dequantize(codes, [1.0, 2.0], 0)
    with pytest.raises(ValueError):
        dequantize(codes, [1.0], 5)
    assert qmax(8) == 127 and qmax(4) == 7 and qmax(2) == 1


def _state_before(out: int) -> int:
    """The xorshift32 state whose next() is `out` (each step of the generator is invertible)."""
    m = 0xFFFFFFFF
    x = out
    for _ in range(7):
        x = out ^ ((x << 5) & m)
    a = x
    x = a ^ (a >> 17)
    x = a ^ (x >> 17)
    b = x
    for _ in range(3):
        x = b ^ ((x << 13) & m)
    return x


def test_clamp_holds_when_rounding_overshoots() -> None:
    # For some m, m / (m / 127) lands just above 127 in float32; with u = 1 - 2^-24 the floor
    # would be 128. The clamp keeps the code at 127, as on the node.
    assert Xorshift32(_state_before(0xFFFFFFFF)).next() == 0xFFFFFFFF
    m = np.float32(1.0)
    while not m / (m / np.float32(127)) > np.float32(127):
        m = np.nextafter(m, np.float32(2))
    codes, _ = quantize(np.array([[m]], np.float32), 8, 0, Xorshift32(_state_before(0xFFFFFFFF)))
    assert codes[0, 0] == 127
    codes, _ = quantize(np.array([[-m]], np.float32), 8, 0, Xorshift32(_state_before(0xFF)))
    assert codes[0, 0] == -127
