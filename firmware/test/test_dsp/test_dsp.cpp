// The DSP stage (tinyfl/dsp.h) against testvectors/dsp/spectra.bin, which the host's tinyfl.dsp
// computed (tools/gen_dsp_tables.py): the same FFT and power spectrum, bit for bit, for silence,
// full-scale DC and square waves, the Nyquist alternation, a sine, a ramp and noise at every length
// 8..1024; the statistics block's features of them, and the mel / MFCC block's.
#include "../check.h"
#include <initializer_list>

#include "tinyfl/dsp.h"

using namespace tinyfl;

namespace {

unsigned char g_file[1 << 18];
int16_t g_x[kDspMaxFft];
int32_t g_re[kDspMaxFft], g_im[kDspMaxFft];
uint32_t g_power[kDspMaxFft / 2 + 1];

int32_t i32_at(const unsigned char* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
                              (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24));
}

}  // namespace

TINYFL_TEST(spectra_match_the_host_bit_for_bit) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("dsp/spectra.bin"), g_file, sizeof g_file);
  CHECK(len > 0);
  long pos = 0;
  int cases = 0, bad = 0;
  while (pos + 2 <= len) {
    const size_t n = static_cast<size_t>(g_file[pos] | (g_file[pos + 1] << 8));
    pos += 2;
    CHECK(n <= kDspMaxFft && pos + static_cast<long>(n * 2 + n * 8 + (n / 2 + 1) * 4) <= len);
    for (size_t i = 0; i < n; ++i) g_x[i] = static_cast<int16_t>(g_file[pos + 2 * i] | (g_file[pos + 2 * i + 1] << 8));
    pos += static_cast<long>(2 * n);
    const unsigned char* want_re = g_file + pos;
    const unsigned char* want_im = want_re + 4 * n;
    const unsigned char* want_power = want_im + 4 * n;
    pos += static_cast<long>(8 * n + 4 * (n / 2 + 1));
    CHECK(dsp_power_spectrum(g_x, n, g_re, g_im, g_power) == Status::Ok);
    for (size_t i = 0; i < n; ++i)
      if (g_re[i] != i32_at(want_re + 4 * i) || g_im[i] != i32_at(want_im + 4 * i)) ++bad;
    for (size_t k = 0; k <= n / 2; ++k)
      if (g_power[k] != static_cast<uint32_t>(i32_at(want_power + 4 * k))) ++bad;
    ++cases;
  }
  CHECK_EQ(bad, 0);
  CHECK(cases >= 40);
}

TINYFL_TEST(band_features_match_the_host_bit_for_bit) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("dsp/bands.bin"), g_file, sizeof g_file);
  CHECK(len > 0);
  long pos = 0;
  int cases = 0, bad = 0;
  static int8_t features[kDspMaxFft / 2];
  while (pos + 9 <= len) {
    const size_t n = static_cast<size_t>(g_file[pos] | (g_file[pos + 1] << 8));
    const uint16_t bands = static_cast<uint16_t>(g_file[pos + 2] | (g_file[pos + 3] << 8));
    const int32_t offset = i32_at(g_file + pos + 4);
    const uint8_t shift = g_file[pos + 8];
    pos += 9;
    CHECK(n <= kDspMaxFft && bands <= n / 2 && pos + static_cast<long>(2 * n + bands) <= len);
    for (size_t i = 0; i < n; ++i) g_x[i] = static_cast<int16_t>(g_file[pos + 2 * i] | (g_file[pos + 2 * i + 1] << 8));
    pos += static_cast<long>(2 * n);
    CHECK(dsp_spectral_bands(g_x, n, bands, offset, shift, g_re, g_im, g_power, features) == Status::Ok);
    for (uint16_t b = 0; b < bands; ++b)
      if (features[b] != static_cast<int8_t>(g_file[pos + b])) ++bad;
    pos += bands;
    ++cases;
  }
  CHECK_EQ(bad, 0);
  CHECK(cases >= 40);
  // log2 in Q8: exact powers of two, and the linear mantissa between them
  CHECK_EQ(dsp_log2_q8(1), 0);
  CHECK_EQ(dsp_log2_q8(2), 256);
  CHECK_EQ(dsp_log2_q8(3), 384);
  CHECK_EQ(dsp_log2_q8(uint64_t{1} << 40), 10240);
  CHECK(dsp_spectral_bands(g_x, 64, 33, 0, 0, g_re, g_im, g_power, features) == Status::BadValue);
  CHECK(dsp_spectral_bands(g_x, 64, 4, 0, 17, g_re, g_im, g_power, features) == Status::BadValue);
}

TINYFL_TEST(statistics_match_the_host_bit_for_bit) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("dsp/stats.bin"), g_file, sizeof g_file);
  CHECK(len > 0);
  static int16_t window[3 * kDspMaxFft];
  static int8_t features[3 * kDspStatsPerChannel];
  long pos = 0;
  int cases = 0, bad = 0;
  while (pos + 4 <= len) {
    const size_t n = static_cast<size_t>(g_file[pos] | (g_file[pos + 1] << 8));
    const size_t channels = static_cast<size_t>(g_file[pos + 2] | (g_file[pos + 3] << 8));
    pos += 4;
    CHECK(n <= kDspMaxFft && channels <= 3 &&
          pos + static_cast<long>(2 * n * channels + kDspStatsPerChannel * channels) <= len);
    for (size_t i = 0; i < n * channels; ++i)
      window[i] = static_cast<int16_t>(g_file[pos + 2 * i] | (g_file[pos + 2 * i + 1] << 8));
    pos += static_cast<long>(2 * n * channels);
    CHECK(dsp_time_stats(window, n, channels, features) == Status::Ok);
    for (size_t f = 0; f < kDspStatsPerChannel * channels; ++f)
      if (features[f] != static_cast<int8_t>(g_file[pos + static_cast<long>(f)])) ++bad;
    pos += static_cast<long>(kDspStatsPerChannel * channels);
    ++cases;
  }
  CHECK_EQ(bad, 0);
  CHECK(cases >= 120);
  CHECK(dsp_time_stats(window, 1, 1, features) == Status::BadValue);
  CHECK(dsp_time_stats(window, kDspMaxStats + 1, 1, features) == Status::BadValue);
  CHECK_EQ(dsp_isqrt(0), 0u);
  CHECK_EQ(dsp_isqrt(15), 3u);
  CHECK_EQ(dsp_isqrt(16), 4u);
  CHECK_EQ(dsp_isqrt(0xFFFFFFFFFFFFFFFFull), 0xFFFFFFFFu);
}

// The moments' widest case: one full-scale spike on the opposite full scale, 1024 samples (the
// deviations reach 65535, the prescale shift is 3, S4 near its 2^62 bound). Skewness 31.95 clamps
// to 127 (Q4); kurtosis 1022 in Q4 is 16352, feature (log2_q8(16353) >> 4) - 128 = 95. A full-scale
// square wave: skewness 0, kurtosis exactly 1 (Q4 16: feature -63).
TINYFL_TEST(skewness_and_kurtosis_of_full_scale_extremes) {
  static int16_t x[kDspMaxStats];
  int8_t f[kDspStatsPerChannel];
  for (size_t i = 0; i < kDspMaxStats; ++i) x[i] = -32768;
  x[0] = 32767;
  CHECK(dsp_time_stats(x, kDspMaxStats, 1, f) == Status::Ok);
  CHECK_EQ(f[4], 127);
  CHECK_EQ(f[5], 95);
  for (size_t i = 0; i < kDspMaxStats; ++i) x[i] = static_cast<int16_t>(i % 2 ? 32767 : -32768);
  CHECK(dsp_time_stats(x, kDspMaxStats, 1, f) == Status::Ok);
  CHECK_EQ(f[4], 0);
  CHECK_EQ(f[5], -63);
  for (size_t i = 0; i < kDspMaxStats; ++i) x[i] = -32768;  // DC: no shape
  CHECK(dsp_time_stats(x, kDspMaxStats, 1, f) == Status::Ok);
  CHECK_EQ(f[4], 0);
  CHECK_EQ(f[5], -128);
}

uint16_t u16_at(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// testvectors/dsp/mel.bin: each record carries its setting, the host's tables (edges, DCT), the
// window and the host's int8 features; the node's dsp_mel_frames must give the same features.
TINYFL_TEST(mel_and_mfcc_features_match_the_host_bit_for_bit) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("dsp/mel.bin"), g_file, sizeof g_file);
  CHECK(len > 0);
  static uint16_t edges[kDspMaxFft / 2 + 2];
  static int16_t dct[kDspMaxFft / 2 * (kDspMaxFft / 2)];
  static int16_t x[4 * kDspMaxFft];
  static int8_t features[4 * kDspMaxFft];
  long pos = 0;
  int cases = 0, bad = 0, mfcc = 0;
  while (pos + 15 <= len) {
    const size_t samples = u16_at(g_file + pos), n = u16_at(g_file + pos + 2), hop = u16_at(g_file + pos + 4);
    const uint16_t mels = u16_at(g_file + pos + 6), coeffs = u16_at(g_file + pos + 8);
    const int32_t offset = i32_at(g_file + pos + 10);
    const uint8_t shift = g_file[pos + 14];
    pos += 15;
    const size_t frames = dsp_frame_count(samples, n, hop), width = coeffs > 0 ? coeffs : mels;
    CHECK(samples <= 4 * kDspMaxFft && mels <= kDspMaxFft / 2 && coeffs <= mels && frames * width <= sizeof features);
    CHECK(pos + static_cast<long>(2 * (mels + 2u) + 2 * coeffs * mels + 2 * samples + frames * width) <= len);
    for (size_t j = 0; j < mels + 2u; ++j) edges[j] = u16_at(g_file + pos + 2 * static_cast<long>(j));
    pos += 2 * (mels + 2);
    for (size_t j = 0; j < size_t{coeffs} * mels; ++j) dct[j] = static_cast<int16_t>(u16_at(g_file + pos + 2 * static_cast<long>(j)));
    pos += 2 * coeffs * mels;
    for (size_t i = 0; i < samples; ++i) x[i] = static_cast<int16_t>(u16_at(g_file + pos + 2 * static_cast<long>(i)));
    pos += static_cast<long>(2 * samples);
    const DspMelBank bank{edges, dct, mels, coeffs};
    CHECK(dsp_mel_frames(x, samples, n, hop, bank, offset, shift, g_re, g_im, g_power, features, sizeof features) ==
          Status::Ok);
    for (size_t f = 0; f < frames * width; ++f)
      if (features[f] != static_cast<int8_t>(g_file[pos + static_cast<long>(f)])) ++bad;
    pos += static_cast<long>(frames * width);
    ++cases;
    if (coeffs > 0) ++mfcc;
  }
  CHECK_EQ(bad, 0);
  CHECK_EQ(pos, len);
  CHECK(cases >= 70 && mfcc >= 40);
}

TINYFL_TEST(the_mel_block_refuses_bad_parameters) {
  static const uint16_t edges[] = {0, 1, 3, 5, 8};  // 3 filters over a 16-point spectrum
  static const int16_t dct[3 * 3] = {};
  static int8_t out[64];
  int16_t* x = g_x;
  for (size_t i = 0; i < 64; ++i) x[i] = static_cast<int16_t>(i * 100);
  const DspMelBank ok{edges, dct, 3, 2};
  CHECK(dsp_mel_frames(x, 64, 16, 8, ok, 0, 4, g_re, g_im, g_power, out, sizeof out) == Status::Ok);
  CHECK_EQ(dsp_frame_count(64, 16, 8), 7u);
  CHECK(dsp_mel_frames(x, 64, 16, 8, ok, 0, 4, g_re, g_im, g_power, out, 13) == Status::BufferFull);
  CHECK(dsp_mel_frames(x, 64, 12, 8, ok, 0, 4, g_re, g_im, g_power, out, sizeof out) == Status::BadValue);  // n
  CHECK(dsp_mel_frames(x, 64, 16, 0, ok, 0, 4, g_re, g_im, g_power, out, sizeof out) == Status::BadValue);  // hop
  CHECK(dsp_mel_frames(x, 15, 16, 8, ok, 0, 4, g_re, g_im, g_power, out, sizeof out) == Status::BadValue);  // short
  CHECK(dsp_mel_frames(x, 64, 16, 8, ok, 0, 17, g_re, g_im, g_power, out, sizeof out) == Status::BadValue);  // shift
  CHECK(dsp_mel_frames(x, 64, 8, 8, ok, 0, 4, g_re, g_im, g_power, out, sizeof out) == Status::BadValue);  // past n/2
  const DspMelBank too_many{edges, dct, 3, 4}, no_dct{edges, nullptr, 3, 2}, no_edges{nullptr, dct, 3, 0};
  const DspMelBank no_mels{edges, dct, 0, 0};
  for (const DspMelBank* bad : {&too_many, &no_dct, &no_edges, &no_mels})
    CHECK(dsp_mel_frames(x, 64, 16, 8, *bad, 0, 4, g_re, g_im, g_power, out, sizeof out) == Status::BadValue);
  static const uint16_t unordered[] = {0, 3, 1, 5, 8};
  const DspMelBank disordered{unordered, dct, 3, 0};
  CHECK(dsp_mel_frames(x, 64, 16, 8, disordered, 0, 4, g_re, g_im, g_power, out, sizeof out) == Status::BadValue);
  // log mel energies out: silence gives log2(0 + 1) = 0 in every filter
  for (size_t i = 0; i < 64; ++i) x[i] = 0;
  const DspMelBank energies{edges, nullptr, 3, 0};
  CHECK(dsp_mel_frames(x, 64, 16, 16, energies, 0, 0, g_re, g_im, g_power, out, sizeof out) == Status::Ok);
  for (size_t i = 0; i < 4 * 3; ++i) CHECK_EQ(out[i], -128);
}

TINYFL_TEST(lengths_outside_8_to_1024_or_not_powers_of_two_are_refused) {
  CHECK(dsp_fft_q15(g_re, g_im, 4) == Status::BadValue);
  CHECK(dsp_fft_q15(g_re, g_im, 2048) == Status::BadValue);
  CHECK(dsp_fft_q15(g_re, g_im, 96) == Status::BadValue);
  CHECK(dsp_power_spectrum(g_x, 100, g_re, g_im, g_power) == Status::BadValue);
}

TINYFL_TEST(the_hann_window_is_symmetric_and_zero_at_the_ends) {
  for (size_t n = kDspMinFft; n <= kDspMaxFft; n <<= 1) {
    CHECK_EQ(dsp_hann_q15(0, n), 0);
    CHECK_EQ(dsp_hann_q15(n / 2, n), 32767);
    for (size_t i = 1; i < n; ++i) CHECK_EQ(dsp_hann_q15(i, n), dsp_hann_q15(n - i, n));
  }
}

int main() { return tinyfl_test::run_all(); }
