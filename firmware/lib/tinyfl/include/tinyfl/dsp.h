// The node's DSP stage, in integers bit for bit as the host's tinyfl.dsp (docs/DSP.md): the
// spectral block (Q15 Hann window, radix-2 fixed-point FFT, power spectrum, log2 bands), the
// statistics block and the mel block (framed log mel energies or MFCC, dsp_mel.cpp).
//
// Every operation is an integer one with a stated rounding, so the host's numpy mirror gives the
// same numbers: a Q15 product rounds half up, (a * b + 2^14) >> 15 with a 64-bit product; each FFT
// stage floors its sum and difference, (a +- t) >> 1, which also keeps the values in int16 range:
// X = DFT(window * x) / n, no overflow for any int16 input. Twiddles and window come from one
// generated Q15 cosine table (tools/gen_dsp_tables.py).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/status.h"

namespace tinyfl {

constexpr size_t kDspMinFft = 8;
constexpr size_t kDspMaxFft = 1024;

// Q15 Hann window value i of an n-point window: (32767 - cos(2 pi i / n) + 1) >> 1.
int16_t dsp_hann_q15(size_t i, size_t n);

// n is a power of two in kDspMinFft..kDspMaxFft: a length the FFT takes.
bool dsp_valid_length(size_t n);

// In place: re/im (n values each, n a power of two in 8..1024) become DFT(re + i im) / n.
// BadValue for another n. Inputs must lie in int16 range (the outputs then do too).
[[nodiscard]] Status dsp_fft_q15(int32_t* re, int32_t* im, size_t n);

// power[k] = |X[k]|^2, k = 0..n/2, of the Hann-windowed int16 window x (X = DFT / n). `re` and
// `im` are n-value work buffers (in place: they hold X afterwards).
[[nodiscard]] Status dsp_power_spectrum(const int16_t* x, size_t n, int32_t* re, int32_t* im, uint32_t* power);

// floor(256 * log2(v)) with a linear mantissa, v >= 1 (0 for v = 0): e = floor(log2 v),
// 256 e + (((v - 2^e) << 8) >> e). v below 2^55.
int32_t dsp_log2_q8(uint64_t v);

// The int8 feature of a Q8 log2 value or a coefficient of them, the rule every spectral output
// follows: clamp(((v - offset) >> shift) - 128, -128, 127), an arithmetic (floor) shift.
int8_t dsp_feature_int8(int64_t v, int32_t offset, uint8_t shift);

// int8 features of one int16 window: the Q8 log2 power of `bands` linear bands over bins 1..n/2
// (band b sums bins 1 + b*(n/2)/bands up to the next band's first), each
// f = clamp(((log2_q8(power + 1) - offset) >> shift) - 128, -128, 127). BadValue for a length
// dsp_fft_q15 refuses, bands outside 1..n/2 or shift above 16. Work buffers as
// dsp_power_spectrum's.
[[nodiscard]] Status dsp_spectral_bands(const int16_t* x, size_t n, uint16_t bands, int32_t offset, uint8_t shift,
                                        int32_t* re, int32_t* im, uint32_t* power, int8_t* out);

// The statistics block: per channel of an interleaved int16 window (sample t of channel c at
// t * channels + c, n samples per channel, 2 <= n <= kDspMaxStats), kDspStatsPerChannel int8
// features, channel after channel: rms = isqrt(sum x^2 / n), peak = max |x|,
// crest = (peak << 4) / rms (Q4, 0 for rms 0), zcr = (sign changes << 8) / (n - 1) (Q8),
// skew = 16 m3 / m2^1.5 and kurt = 16 m4 / m2^2 (Q4, rounded; central moments about the
// rounded mean of prescaled deviations, in 64 bits without overflow: docs/DSP.md; 0 for a constant
// channel); features (log2_q8(v + 1) >> 4) - 128 for rms, peak, crest and kurt, zcr - 128, and
// skew itself (Q4: +-8), clamped to int8, in that order. BadValue for n outside 2..kDspMaxStats
// or no channel.
constexpr size_t kDspStatsPerChannel = 6;  // rms, peak, crest, zcr, skew, kurt
constexpr size_t kDspMaxStats = 1024;      // the moments' 64-bit bound holds up to here
[[nodiscard]] Status dsp_time_stats(const int16_t* x, size_t n, size_t channels, int8_t* out);

// floor(sqrt(v)), exact.
uint32_t dsp_isqrt(uint64_t v);

// The mel block's tables, made by the host (tinyfl.dsp.mel_tables: mel or log-spaced edges), stored in the DSP
// record of the model: the node computes no logarithm or cosine. Filter j (0..mels-1) has the edge bins
// l = edges[j], c = edges[j + 1], r = edges[j + 2] and the Q15 weights 2^15 at bin c,
// ((k - l) << 15) / (c - l) for l < k < c, ((r - k) << 15) / (r - c) for c < k < r, 0 elsewhere.
struct DspMelBank {
  const uint16_t* edges;  // mels + 2 non-decreasing bins in 0..n/2
  const int16_t* dct;     // coeffs x mels, row after row, Q15 DCT-II; unused (may be null) for coeffs 0
  uint16_t mels;          // 1..n/2
  uint16_t coeffs;        // 0..mels; 0: the log mel energies are the output
};

// Frames of n samples every hop samples in a window of `samples`: 1 + (samples - n) / hop, 0 when
// the window is shorter than a frame or hop is 0. constexpr: callers size their output with it.
constexpr size_t dsp_frame_count(size_t samples, size_t n, size_t hop) {
  return hop == 0 || samples < n ? 0 : 1 + (samples - n) / hop;
}

// The mel block over a 1-channel int16 window: frame f is x[f * hop .. f * hop + n - 1]; per
// frame the power spectrum (dsp_power_spectrum), each filter's energy E = (sum w P) >> 15, the
// Q8 log energy L = log2_q8(E + 1), with coeffs > 0 the DCT c_k = (sum_m dct[k][m] L[m] + 2^14) >> 15
// (Q8, arithmetic shift), then dsp_feature_int8 of each value. `out` gets frames x (coeffs, or
// mels for coeffs 0) int8, frame after frame. Work buffers as dsp_power_spectrum's (n, n and
// n/2 + 1 values); `re` also holds a frame's log energies. BadValue for a length the FFT refuses,
// hop 0, a window shorter than a frame, mels or coeffs out of range, missing tables, edges out of
// order or past n/2, or shift above 16; BufferFull when out_size is below the output's size.
[[nodiscard]] Status dsp_mel_frames(const int16_t* x, size_t samples, size_t n, size_t hop, const DspMelBank& bank,
                                    int32_t offset, uint8_t shift, int32_t* re, int32_t* im, uint32_t* power,
                                    int8_t* out, size_t out_size);

}  // namespace tinyfl
