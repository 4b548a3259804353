// The DSP stage (tinyfl/dsp.h) against testvectors/dsp/spectra.bin, which the host's tinyfl.dsp
// computed (tools/gen_dsp_tables.py): the same FFT and power spectrum, bit for bit, for silence,
// full-scale DC and square waves, the Nyquist alternation, a sine, a ramp and noise at every length
// 8..1024; the statistics block's features of them, and the mel / MFCC block's.
#include "../check.h"
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
