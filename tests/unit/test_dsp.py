"""The DSP stage's integer spectral block (tinyfl.dsp): close to the float DFT within its
rounding, exact where it must be (silence, DC), never overflowing int16 range, and the files
both sides read (the cosine table, testvectors/dsp) current. The firmware's test_dsp checks the
same vectors bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyfl.dsp import (
    MAX_FFT,
    MAX_STATS,
    MIN_FFT,
    STATS_PER_CHANNEL,
    band_edges,
    fft_q15,
    hann_q15,
    log2_q8,
    power_spectrum,
    shape_q4,
    shape_sums,
    spectral_bands,
    time_stats,
    window_q15,
)

ROOT = Path(__file__).resolve().parents[2]
LENGTHS = [1 << k for k in range(3, 11)]


def test_tables_and_vectors_are_current() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_dsp_tables.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(LENGTHS), st.integers(0, 2**32 - 1))
def test_the_fft_is_the_dft_over_n_within_its_rounding(n: int, seed: int) -> None:
    x = np.random.default_rng(seed).integers(-32768, 32768, n)
    re, im = fft_q15(x)
    ref = np.fft.fft(x.astype(np.float64)) / n
    # each of log2(n) stages rounds the twiddle product (1/2 LSB) and floors the halving (1 LSB),
    # and halves what came before: the error stays within a few LSB
    bound = 2.0 + 0.5 * np.log2(n)
    assert np.abs(re - ref.real).max() <= bound and np.abs(im - ref.imag).max() <= bound


@pytest.mark.parametrize("n", LENGTHS)
def test_silence_is_zero_and_full_scale_inputs_stay_in_int16_range(n: int) -> None:
    assert not power_spectrum(np.zeros(n, np.int16)).any()
    for x in (np.full(n, 32767), np.full(n, -32768), np.where(np.arange(n) % 2, 32767, -32768),
              np.where((np.arange(n) // max(1, n // 8)) % 2, 32767, -32768)):
        re, im = fft_q15(window_q15(x, hann_q15(n)))
        assert np.abs(re).max() <= 32768 and np.abs(im).max() <= 32768


@pytest.mark.parametrize("n", LENGTHS)
def test_dc_lands_in_bin_0_and_its_hann_neighbour(n: int) -> None:
    p = power_spectrum(np.full(n, 20000))
    # a Hann-windowed constant: half its amplitude at bin 0, a quarter at bin 1, nothing beyond
    assert abs(np.sqrt(p[0]) - 10000) <= 8 and abs(np.sqrt(p[1]) - 5000) <= 8
    assert p[2:].max() <= 16


def test_lengths_other_than_powers_of_two_in_range_are_refused() -> None:
    for n in (MIN_FFT // 2, MAX_FFT * 2, 96):
        with pytest.raises(ValueError, match="power of two"):
            fft_q15(np.zeros(n))
    with pytest.raises(ValueError, match="int16"):
        power_spectrum(np.full(8, 40000))


def test_log2_q8_is_within_its_linear_mantissa_of_the_true_log() -> None:
    v = np.unique(np.random.default_rng(3).integers(1, 2**50, 2000))
    got = log2_q8(v)
    exact = 256 * np.log2(v.astype(np.float64))
    # the chord of log2 lies below it by at most 0.0861 (in units of log2): 22.05 in Q8, plus
    # the floor
    assert ((exact - got) >= -1e-6).all() and ((exact - got) <= 23.1).all()
    assert log2_q8(np.array([1, 2, 4, 1 << 40])).tolist() == [0, 256, 512, 10240]


def test_bands_cover_bins_1_to_n_over_2_once_and_features_rise_with_power() -> None:
    for n in LENGTHS:
        for bands in (1, 3, n // 2):
            edges = band_edges(n, bands)
            assert edges[0] == 1 and edges[-1] == n // 2 + 1 and edges == sorted(edges)
    quiet = np.round(200 * np.sin(np.arange(256) * 0.5)).astype(int)
    loud = quiet * 100
    fq, fl = spectral_bands(quiet, 8, 0, 4), spectral_bands(loud, 8, 0, 4)
    assert (fl >= fq).all() and fl.max() > fq.max()
    assert spectral_bands(np.zeros(64), 4, 0, 4).tolist() == [-128] * 4  # log2(0 + 1) = 0
    with pytest.raises(ValueError, match="do not fit"):
        band_edges(64, 33)


def test_statistics_of_known_signals() -> None:
    n = 256
    silence = time_stats(np.zeros(n), 1)
    assert silence.tolist() == [-128, -128, -128, -128, 0, -128]  # no energy, no crossing, no shape
    nyquist = np.where(np.arange(n) % 2, 1000, -1000)
    rms, peak, crest, zcr, skew, kurt = time_stats(nyquist, 1).tolist()
    assert rms == peak and zcr == 127  # a square wave: crest 1; every step crosses zero
    one_q4 = (int(log2_q8(np.array([16 + 1]))[0]) >> 4) - 128
    assert crest == one_q4 and skew == 0 and kurt == one_q4  # symmetric; kurtosis 1
    quiet, loud = time_stats(nyquist // 10, 1), time_stats(nyquist, 1)
    assert loud[0] > quiet[0] and loud[1] > quiet[1] and loud[2] == quiet[2]
    # interleaving: the second channel's features are those of the signal alone
    both = np.stack([nyquist // 10, nyquist], axis=1).reshape(-1)
    assert time_stats(both, 2).tolist() == quiet.tolist() + loud.tolist()
    assert STATS_PER_CHANNEL == 6
    with pytest.raises(ValueError, match=">= 2 samples"):
        time_stats(np.zeros(5), 2)
    with pytest.raises(ValueError, match="at most 1024"):
        time_stats(np.zeros(2050), 2)


def _extremes(n: int) -> list[np.ndarray]:
    """The inputs that push the moment sums furthest: full-scale square waves of every duty cycle
    step, DC of both signs, silence, and a single full-scale spike on the opposite full scale."""
    t = np.arange(n)
    out = [np.zeros(n, np.int64), np.full(n, 32767), np.full(n, -32768)]
    for high in {1, n // 8, n // 4, n // 2, n - 1}:
        out.append(np.where(t < max(1, high), 32767, -32768))
        out.append(np.where(t < max(1, high), -32768, 32767))
    return [np.asarray(x, np.int64) for x in out]


@pytest.mark.parametrize("n", [2, 3, 8, 100, 1000, MAX_STATS])
def test_the_moment_sums_fit_64_bits_for_full_scale_square_waves_dc_silence_and_spikes(n: int) -> None:
    for x in _extremes(n):
        sums = shape_sums(x)
        # the same sums in Python's unbounded integers: numpy's int64 did not wrap
        u = [(v - sums.mean + ((1 << sums.shift) >> 1)) >> sums.shift for v in x.tolist()]
        assert (sums.s2, sums.s3, sums.s4) == (sum(v**2 for v in u), sum(v**3 for v in u),
                                               sum(v**4 for v in u))
        # the stated bounds: |u| <= 2^13, so S4 <= n 2^52 <= 2^62, |S3| <= n 2^39, S2 <= n 2^26
        assert max(abs(v) for v in u) <= 1 << 13
        assert sums.s4 <= n << 52 < 1 << 63 and abs(sums.s3) <= n << 39 and sums.s2 <= n << 26
        skew, kurt = shape_q4(x)
        if sums.s2 == 0:  # DC and silence: no deviation, no shape
            assert (skew, kurt) == (0, 0)
        else:  # two-level signals: kurtosis 1 / (p (1 - p)) - 3, skewness (1 - 2p) / sqrt(p (1 - p))
            p = float((x == x.max()).mean())
            g1, g2 = (1 - 2 * p) / np.sqrt(p * (1 - p)), 1 / (p * (1 - p)) - 3
            assert abs(skew / 16 - g1) <= 1 / 32 + 0.01 and abs(kurt / 16 - g2) <= 1 / 32 + 0.01 * g2


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([2, 3, 16, 128, 500, 1024]), st.integers(0, 2**32 - 1), st.sampled_from(["normal", "exp", "cubed", "uniform"]))
def test_skewness_and_kurtosis_are_the_float_moments_within_q4_rounding(n: int, seed: int, kind: str) -> None:
    rng = np.random.default_rng(seed)
    amp = rng.uniform(2000, 32000)
    raw = {"normal": lambda: rng.normal(0, amp / 4, n), "exp": lambda: rng.exponential(amp / 4, n) - amp / 2,
           "cubed": lambda: rng.uniform(-amp, amp, n) ** 3 / amp**2,
           "uniform": lambda: rng.uniform(-amp, amp, n)}[kind]()
    x = np.clip(np.round(raw), -32768, 32767).astype(np.int64)
    d = x - x.mean()
    m2 = float((d**2).mean())
    if m2 < 200.0**2:  # the rounded mean's bias, 3 (1/2) / sigma in skewness, stays below 0.01
        return
    g1, g2 = float((d**3).mean()) / m2**1.5, float((d**4).mean()) / m2**2
    skew, kurt = shape_q4(x)
    # both round to Q4 (1/32); prescaling and the rounded mean add under 1 %
    assert abs(skew / 16 - g1) <= 1 / 32 + 0.01
    assert abs(kurt / 16 - g2) <= 1 / 32 + 0.01 * g2


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(16, 1024), st.integers(100, 20000))
def test_skew_has_the_sign_of_the_asymmetry_and_a_spike_outranks_a_square_in_kurtosis(seed: int, n: int, amp: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(-amp // 10, amp // 10 + 1, n)
    bursts = np.where(rng.random(n) < 0.05, amp, 0)
    bursts[0] = amp  # at least one
    up = np.clip(base + bursts, -32768, 32767)  # rare large positive excursions: a right tail
    f_up, f_down = time_stats(up, 1), time_stats(-up, 1)
    assert f_up[4] > 0 > f_down[4]
    spike = np.zeros(n, np.int64)
    spike[rng.integers(0, n)] = amp
    square = np.where(np.arange(n) % 2, amp, -amp)
    assert time_stats(spike, 1)[5] > time_stats(square, 1)[5]
