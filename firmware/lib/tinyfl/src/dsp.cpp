#include "tinyfl/dsp.h"

#include "tinyfl/dsp_tables.h"

namespace tinyfl {

bool dsp_valid_length(size_t n) { return n >= kDspMinFft && n <= kDspMaxFft && (n & (n - 1)) == 0; }

namespace {

// (a * b + 2^14) >> 15 with a 64-bit product (arithmetic shift, as numpy's on int64).
inline int32_t mul_q15(int64_t a, int64_t b) { return static_cast<int32_t>((a * b + (1 << 14)) >> 15); }

}  // namespace

int16_t dsp_hann_q15(size_t i, size_t n) {
  const int32_t c = kDspCosQ15[(i * (kDspCosSize / n)) % kDspCosSize];
  return static_cast<int16_t>((32767 - c + 1) >> 1);
}

Status dsp_fft_q15(int32_t* re, int32_t* im, size_t n) {
  if (!dsp_valid_length(n)) return Status::BadValue;
  unsigned bits = 0;
  while ((size_t{1} << bits) < n) ++bits;
  for (size_t i = 0; i < n; ++i) {  // bit-reversed order
    size_t r = 0;
    for (unsigned b = 0; b < bits; ++b) r |= ((i >> b) & 1u) << (bits - 1u - b);
    if (r > i) {
      const int32_t tr = re[i], ti = im[i];
      re[i] = re[r], im[i] = im[r];
      re[r] = tr, im[r] = ti;
    }
  }
  for (size_t m = 2; m <= n; m <<= 1) {
    const size_t half = m >> 1, step = kDspCosSize / m;
    for (size_t j = 0; j < half; ++j) {
      // W^j = exp(-2 pi i j / m) = cos - i sin; sin t = cos(t - pi/2)
      const int64_t c = kDspCosQ15[j * step];
      const int64_t s = kDspCosQ15[(j * step + kDspCosSize - kDspCosSize / 4) % kDspCosSize];
      for (size_t top = j; top < n; top += m) {
        const size_t bot = top + half;
        const int64_t br = re[bot], bi = im[bot];
        const int32_t tr = static_cast<int32_t>((br * c + bi * s + (1 << 14)) >> 15);
        const int32_t ti = static_cast<int32_t>((bi * c - br * s + (1 << 14)) >> 15);
        const int32_t ar = re[top], ai = im[top];
        re[top] = (ar + tr) >> 1;
        im[top] = (ai + ti) >> 1;
        re[bot] = (ar - tr) >> 1;
        im[bot] = (ai - ti) >> 1;
      }
    }
  }
  return Status::Ok;
}

Status dsp_power_spectrum(const int16_t* x, size_t n, int32_t* re, int32_t* im, uint32_t* power) {
  if (!dsp_valid_length(n)) return Status::BadValue;
  for (size_t i = 0; i < n; ++i) {
    re[i] = mul_q15(x[i], dsp_hann_q15(i, n));
    im[i] = 0;
  }
  const Status s = dsp_fft_q15(re, im, n);
  if (s != Status::Ok) return s;
  for (size_t k = 0; k <= n / 2; ++k)
    power[k] = static_cast<uint32_t>(static_cast<int64_t>(re[k]) * re[k] + static_cast<int64_t>(im[k]) * im[k]);
  return Status::Ok;
}

int32_t dsp_log2_q8(uint64_t v) {
  if (v == 0) return 0;
  static const uint8_t kHalvings[] = {32, 16, 8, 4, 2, 1};  // floor(log2) by halving, as the host's
  uint32_t e = 0;
  for (uint8_t shift : kHalvings)
    if ((v >> (e + shift)) != 0) e += shift;
  return static_cast<int32_t>(256u * e + (((v - (uint64_t{1} << e)) << 8) >> e));
}

int8_t dsp_feature_int8(int64_t v, int32_t offset, uint8_t shift) {
  const int64_t f = ((v - offset) >> shift) - 128;  // 64 bits: no overflow for any offset
  return static_cast<int8_t>(f < -128 ? -128 : (f > 127 ? 127 : f));
}

Status dsp_spectral_bands(const int16_t* x, size_t n, uint16_t bands, int32_t offset, uint8_t shift,
                          int32_t* re, int32_t* im, uint32_t* power, int8_t* out) {
  if (!dsp_valid_length(n) || bands < 1 || bands > n / 2 || shift > 16) return Status::BadValue;
  const Status s = dsp_power_spectrum(x, n, re, im, power);
  if (s != Status::Ok) return s;
  const size_t half = n / 2;
  for (uint16_t b = 0; b < bands; ++b) {
    const size_t first = 1 + b * half / bands, end = 1 + (b + 1u) * half / bands;
    uint64_t sum = 1;  // log2(power + 1): silence is 0, not minus infinity
    for (size_t k = first; k < end; ++k) sum += power[k];
    out[b] = dsp_feature_int8(dsp_log2_q8(sum), offset, shift);
  }
  return Status::Ok;
}

uint32_t dsp_isqrt(uint64_t v) {
  uint64_t root = 0, bit = uint64_t{1} << 62;
  while (bit > v) bit >>= 2;
  while (bit != 0) {  // digit by digit, base 4: exact, no division
    if (v >= root + bit) {
      v -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return static_cast<uint32_t>(root);
}

namespace {

int8_t clamp_int8(int32_t v) { return static_cast<int8_t>(v < -128 ? -128 : (v > 127 ? 127 : v)); }

// Number of bits of v (0 for 0): floor(log2 v) + 1.
unsigned bit_length(uint64_t v) {
  unsigned b = 0;
  while (v != 0) v >>= 1, ++b;
  return b;
}

// The shape statistics of one channel (docs/DSP.md): Q4 skewness, 16 m3 / m2^1.5, and Q4
// kurtosis, 16 m4 / m2^2, of the deviations from the rounded mean, in 64 bits for any int16 input
// of up to kDspMaxStats samples:
//   mean  m = floor((sum + n/2) / n), rounded half up (offset by 32768 n: a non-negative division)
//   dev   d = x - m, |d| <= 65535; prescaled u = (d + 2^(s-1)) >> s with s = max(0, bits(max|d|) - 13),
//         so |u| <= 2^13: u^2 <= 2^26, |u^3| <= 2^39, u^4 <= 2^52
//   sums  S2 = sum u^2 <= 2^36, |S3| <= 2^49, S4 <= 2^62 < 2^63 (n <= 2^10)
//   then  S2 >> 2h = a < 2^16 (h the least that fits), and since |S3| <= S2^1.5 and S4 <= S2^2:
//         b = |S3| >> 3h < 2^24, q = S4 >> 4h < 2^32
//   kurt  (16 n q + a^2 / 2) / a^2, numerator < 2^47
//   skew  sign(S3) ((b * isqrt((n << 32) / a) + (a << 11)) / (a << 12)): sqrt(n / a) in Q16 is
//         <= 2^21, the product < 2^45; magnitudes only, so every division is of non-negative
//         integers. Both quotients round half up (a floor would put a square wave's exact
//         kurtosis 1 a step below, after the shifts by h truncated).
// A channel whose deviations are all zero has skewness and kurtosis 0.
void shape_q4(const int16_t* x, size_t n, size_t stride, int32_t lo, int32_t hi, int64_t sum, int32_t* skew,
              uint32_t* kurt) {
  // sum + 32768 n >= 0: an unsigned division (the one 64-bit division routine the block links)
  const uint64_t len = n, lifted = static_cast<uint64_t>(sum + 32768 * static_cast<int64_t>(n));
  const int64_t mean = static_cast<int64_t>((lifted + len / 2) / len) - 32768;
  const int64_t max_dev = hi - mean > mean - lo ? hi - mean : mean - lo;
  const unsigned bits = bit_length(static_cast<uint64_t>(max_dev));
  const unsigned s = bits > 13 ? bits - 13 : 0;
  const int64_t half = s != 0 ? int64_t{1} << (s - 1) : 0;
  int64_t s2 = 0, s3 = 0, s4 = 0;
  for (size_t t = 0; t < n; ++t) {
    const int64_t u = (x[t * stride] - mean + half) >> s;  // arithmetic shift: floor
    const int64_t u2 = u * u;
    s2 += u2;
    s3 += u2 * u;
    s4 += u2 * u2;
  }
  *skew = 0;
  *kurt = 0;
  if (s2 == 0) return;
  const unsigned over = bit_length(static_cast<uint64_t>(s2));
  const unsigned h = over > 16 ? (over - 16 + 1) / 2 : 0;
  const uint64_t a = static_cast<uint64_t>(s2) >> (2 * h);
  const uint64_t b = static_cast<uint64_t>(s3 < 0 ? -s3 : s3) >> (3 * h);
  const uint64_t q = static_cast<uint64_t>(s4) >> (4 * h);
  *kurt = static_cast<uint32_t>((16 * static_cast<uint64_t>(n) * q + a * a / 2) / (a * a));
  const uint64_t root = dsp_isqrt((static_cast<uint64_t>(n) << 32) / a);
  const int32_t magnitude = static_cast<int32_t>((b * root + (a << 11)) / (a << 12));
  *skew = s3 < 0 ? -magnitude : magnitude;
}

}  // namespace

Status dsp_time_stats(const int16_t* x, size_t n, size_t channels, int8_t* out) {
  if (n < 2 || n > kDspMaxStats || channels == 0) return Status::BadValue;
  for (size_t c = 0; c < channels; ++c) {
    uint64_t sum_sq = 0;
    int64_t sum = 0;
    int32_t lo = x[c], hi = x[c];
    uint32_t peak = 0, crossings = 0;
    for (size_t t = 0; t < n; ++t) {
      const int32_t v = x[t * channels + c];
      sum += v;
      sum_sq += static_cast<uint64_t>(static_cast<int64_t>(v) * v);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
      const uint32_t a = static_cast<uint32_t>(v < 0 ? -v : v);
      if (a > peak) peak = a;
      if (t > 0 && ((x[(t - 1) * channels + c] < 0) != (v < 0))) ++crossings;
    }
    const uint32_t rms = dsp_isqrt(sum_sq / n);
    const uint32_t crest_q4 = rms != 0 ? (peak << 4) / rms : 0;
    const uint32_t zcr_q8 = static_cast<uint32_t>((static_cast<uint64_t>(crossings) << 8) / (n - 1));
    int32_t skew_q4 = 0;
    uint32_t kurt_q4 = 0;
    shape_q4(x + c, n, channels, lo, hi, sum, &skew_q4, &kurt_q4);
    int8_t* f = out + c * kDspStatsPerChannel;
    f[0] = clamp_int8((dsp_log2_q8(uint64_t{rms} + 1) >> 4) - 128);
    f[1] = clamp_int8((dsp_log2_q8(uint64_t{peak} + 1) >> 4) - 128);
    f[2] = clamp_int8((dsp_log2_q8(uint64_t{crest_q4} + 1) >> 4) - 128);
    f[3] = clamp_int8(static_cast<int32_t>(zcr_q8) - 128);
    f[4] = clamp_int8(skew_q4);
    f[5] = clamp_int8((dsp_log2_q8(uint64_t{kurt_q4} + 1) >> 4) - 128);
  }
  return Status::Ok;
}

}  // namespace tinyfl
