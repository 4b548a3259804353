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
    dct_q15,
    fft_q15,
    frame_count,
    hann_q15,
    hz_to_mel,
    log2_q8,
    log_edges,
    log_mel_q8,
    mel_edges,
    mel_frames,
    mel_tables,
    mel_to_hz,
    mel_weights,
    mfcc_q8,
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
def test_moment_sums_fit_64_bits_for_full_scale_squares_dc_silence_and_spikes(n: int) -> None:
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
        else:  # two levels, p of them high: kurtosis 1 / (p (1 - p)) - 3,
            # skewness (1 - 2p) / sqrt(p (1 - p))
            p = float((x == x.max()).mean())
            g1, g2 = (1 - 2 * p) / np.sqrt(p * (1 - p)), 1 / (p * (1 - p)) - 3
            assert abs(skew / 16 - g1) <= 1 / 32 + 0.01
            assert abs(kurt / 16 - g2) <= 1 / 32 + 0.01 * g2


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([2, 3, 16, 128, 500, 1024]), st.integers(0, 2**32 - 1),
       st.sampled_from(["normal", "exp", "cubed", "uniform"]))
def test_skewness_and_kurtosis_are_the_float_moments_within_q4_rounding(n: int, seed: int,
                                                                        kind: str) -> None:
    rng = np.random.default_rng(seed)
    amp = rng.uniform(2000, 32000)
    raw = {"normal": lambda: rng.normal(0, amp / 4, n),
           "exp": lambda: rng.exponential(amp / 4, n) - amp / 2,
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
def test_skew_has_the_sign_of_the_asymmetry_and_spikes_outrank_squares_in_kurtosis(
        seed: int, n: int, amp: int) -> None:
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


def _float_log_mel(x: np.ndarray, n: int, edges: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The float reference of a frame's filter energies, with each filter's sum of weights: the
    Hann window 1/2 - cos(2 pi i / n) / 2, DFT / n, triangles of the same edge bins."""
    p = np.abs(np.fft.rfft(x * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))) / n) ** 2
    k = np.arange(n // 2 + 1)
    weights = np.zeros((len(edges) - 2, k.size))
    for j in range(len(edges) - 2):
        lo, c, hi = edges[j:j + 3]
        rising, falling = (k > lo) & (k < c), (k > c) & (k < hi)
        weights[j, rising] = (k[rising] - lo) / (c - lo)
        weights[j, falling] = (hi - k[falling]) / (hi - c)
        weights[j, c] = 1.0
    return weights @ p, weights.sum(axis=1)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([64, 128, 256, 512, 1024]), st.sampled_from([8000, 16000]),
       st.integers(0, 2**32 - 1))
def test_mfcc_is_the_float_mfcc_within_the_stated_rounding(n: int, rate: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    mels = int(rng.integers(4, min(40, n // 4) + 1))
    coeffs = int(rng.integers(1, mels + 1))
    tables = mel_tables(rate, n, mels, coeffs)
    amp = rng.uniform(500, 32767)
    x = np.clip(np.round(rng.uniform(-amp, amp, n)), -32768, 32767).astype(np.int64)
    log_mel = log_mel_q8(power_spectrum(x), tables.edges)
    energy, wsum = _float_log_mel(x.astype(np.float64), n, tables.edges.astype(int).tolist())
    # The stated tolerance. A spectrum value is within d = 2 + log2(n) / 2 (the FFT's bound) plus
    # 1/2 (the window's rounding) of the float one per component, so |X| within sqrt(2) d, and a
    # filter's sqrt(energy) (a weighted 2-norm) within beta = sqrt(2) d sqrt(sum of weights).
    # Floored weights lose at most 0.2 %, the >> 15 one unit; log2_q8 lies 0..23.1 (Q8) below
    # 256 log2 (its chord and floor).
    beta = np.sqrt(2) * (2.5 + 0.5 * np.log2(n)) * np.sqrt(wsum)
    low = 0.998 * np.maximum(0.0, np.sqrt(energy) - beta) ** 2 - 1
    high = (np.sqrt(energy) + beta) ** 2
    lo_q8 = 256 * np.log2(np.maximum(low, 0.0) + 1) - 23.1
    hi_q8 = 256 * np.log2(high + 1)
    assert ((log_mel >= lo_q8) & (log_mel <= hi_q8)).all()
    # MFCC: the orthonormal DCT-II of the float log energies, within the DCT's sum of the log
    # energies' bounds (and 1 for the Q15 table's and the coefficient's rounding)
    ref_q8 = 256 * np.log2(energy + 1)
    m = np.arange(mels)
    basis = np.array([np.sqrt((1 if k == 0 else 2) / mels)
                      * np.cos(np.pi * k * (2 * m + 1) / (2 * mels)) for k in range(coeffs)])
    spread = np.maximum(hi_q8 - ref_q8, ref_q8 - lo_q8)
    tolerance = np.abs(basis) @ spread + 1
    assert (np.abs(mfcc_q8(log_mel, tables.dct) - basis @ ref_q8) <= tolerance).all()
    # and where the FFT's rounding is small against the signal the typical filter is as close
    # as the chord allows: with loud noise the median error is at most 0.1 octave (26 in Q8;
    # a filter on a single bin near a spectral null can still be further off, within its bound)
    if amp > 16000:
        assert float(np.median(np.abs(log_mel - ref_q8))) <= 26


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 8))
def test_mel_energies_rise_with_input_gain(seed: int, gain: int) -> None:
    rng = np.random.default_rng(seed)
    tables = mel_tables(16000, 256, 20, 0)
    bound = 32767 // gain
    quiet = rng.integers(-bound, bound + 1, 256)
    low = log_mel_q8(power_spectrum(quiet), tables.edges)
    high = log_mel_q8(power_spectrum(quiet * gain), tables.edges)
    assert (high >= low).all()
    # a gain of g is 2 log2(g) octaves of energy: on average over the filters, within the
    # rounding of the quiet side and the chord's 0.09 octave
    assert abs(float((high - low).mean()) - 512 * np.log2(gain)) <= 40


def test_mel_tables_follow_htk_and_the_dct_is_orthonormal() -> None:
    assert abs(hz_to_mel(1000.0) - 1000.0) < 0.05  # HTK's scale puts 1000 mel at 1 kHz
    assert abs(mel_to_hz(hz_to_mel(3456.0)) - 3456.0) < 1e-6
    edges = mel_edges(16000, 512, 40)
    assert edges[0] == 0 and edges[-1] == 256 and edges == sorted(edges)
    assert mel_edges(16000, 512, 40, 300.0, 3400.0)[0] == round(300 * 512 / 16000)
    w = mel_weights(edges, 512)
    for j in range(40):  # a triangle: 2^15 at its centre, 0 at and beyond its edges
        lo, c, hi = edges[j:j + 3]
        assert w[j, c] == 1 << 15 and not w[j, :lo + 1].any() and not w[j, hi:].any()
        assert (np.diff(w[j, lo:c + 1]) > 0).all() and (np.diff(w[j, c:hi + 1]) < 0).all()
    d = dct_q15(40, 13).astype(np.int64)
    gram = d @ d.T
    assert np.abs(gram - (32767**2) * np.eye(13)).max() <= 40 * 32767  # rounding: 1/2 per entry
    # log-spaced: each point a constant ratio above the last, here 2 (10 Hz .. 5120 Hz, 8 bands)
    assert log_edges(16000, 1024, 8, 10.0, 5120.0) == [round(10 * 2**i * 1024 / 16000)
                                                     for i in range(10)]
    assert mel_tables(16000, 1024, 8, 0, 10.0, 5120.0, "log").edges.tolist() == log_edges(
        16000, 1024, 8, 10.0, 5120.0)
    with pytest.raises(ValueError, match="above 0 Hz"):
        log_edges(16000, 1024, 8, 0.0)
    t = mel_tables(8000, 8, 2, 0)
    assert t.edges.tolist() == [0, 1, 2, 4] and t.dct.shape == (0, 2)
    for bad in (lambda: mel_edges(16000, 512, 257), lambda: mel_edges(16000, 96, 8),
                lambda: mel_edges(16000, 512, 8, 0.0, 9000.0), lambda: dct_q15(8, 9)):
        with pytest.raises(ValueError):
            bad()


def test_mel_frames_are_the_frames_one_by_one_and_refuse_bad_settings() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(-20000, 20000, 1000)
    tables = mel_tables(16000, 256, 20, 10)
    out = mel_frames(x, 256, 100, tables.edges, tables.dct, -4096, 6)
    assert out.shape == (frame_count(1000, 256, 100), 10) == (8, 10)
    for f in range(8):  # frame f is samples f hop .. f hop + n - 1, the rest left over
        alone = mel_frames(x[f * 100:f * 100 + 256], 256, 256, tables.edges, tables.dct, -4096, 6)
        assert out[f].tolist() == alone[0].tolist()
    energies = mel_frames(x, 256, 128, tables.edges, np.zeros((0, 20)), 0, 6)
    assert energies.shape == (6, 20)
    silence = mel_frames(np.zeros(512), 256, 256, tables.edges, np.zeros((0, 20)), 0, 0)
    assert (silence == -128).all()  # log2(0 + 1) = 0 in every filter
    with pytest.raises(ValueError, match="no frame"):
        mel_frames(x[:200], 256, 100, tables.edges, tables.dct, 0, 6)
    with pytest.raises(ValueError, match="non-decreasing"):
        mel_frames(x, 256, 100, tables.edges[::-1], tables.dct, 0, 6)
    with pytest.raises(ValueError, match="hop"):
        mel_frames(x, 256, 0, tables.edges, tables.dct, 0, 6)
