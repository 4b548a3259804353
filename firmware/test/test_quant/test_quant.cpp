// The quantizer and the round PRNG against testvectors/quant/ (bit for bit), plus error bounds,
// unbiasedness and argument checks.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "../vectors.h"
#include "tinyfl/half.h"
#include "tinyfl/quant.h"
#include "tinyfl/rng.h"

using namespace tinyfl;

namespace {




Vectors g_vec;  // one loaded file at a time; large, so not on the stack

uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

const char* const kQuantFiles[] = {
    "quant/q_b8_m0.bin", "quant/q_b8_m1.bin",     "quant/q_b4_m0.bin",      "quant/q_b4_m1.bin",
    "quant/q_b2_m0.bin", "quant/q_b2_m1.bin",     "quant/q_odd_b4_m1.bin",  "quant/q_zero_b8_m0.bin",
    "quant/q_halves_b4_m0.bin",
};

constexpr size_t kMaxValues = 6 * 65;
float g_x[kMaxValues];
int8_t g_codes[kMaxValues];
float g_deq[kMaxValues];

}  // namespace

// ---- PRNG ----

TINYFL_TEST(rng_matches_golden_streams) {
  CHECK(g_vec.load("quant/rng.bin"));
  const Array seeds = g_vec.get("seeds"), rounds = g_vec.get("round_ids"), lens = g_vec.get("node_id_lens");
  const Array id_bytes = g_vec.get("node_id_bytes"), fnv = g_vec.get("fnv1a32"), states = g_vec.get("states");
  const Array next16 = g_vec.get("next16"), uni = g_vec.get("uniform8"), shuf = g_vec.get("shuffle20");
  const Array after = g_vec.get("states_after");
  CHECK(seeds.count >= 6);
  uint32_t off = 0;
  for (uint32_t c = 0; c < seeds.count; ++c) {
    char id[40] = {};
    memcpy(id, id_bytes.data + off, lens.u8(c));
    CHECK_EQ(fnv1a32(id), fnv.u32(c));
    CHECK_EQ(fnv1a32(id_bytes.data + off, lens.u8(c)), fnv.u32(c));
    Rng by_bytes = round_rng(seeds.u32(c), id_bytes.data + off, lens.u8(c), rounds.u32(c));
    Rng rng = round_rng(seeds.u32(c), id, rounds.u32(c));
    off += lens.u8(c);
    CHECK_EQ(by_bytes.state(), states.u32(c));
    CHECK_EQ(rng.state(), states.u32(c));
    for (uint32_t i = 0; i < 16; ++i) CHECK_EQ(rng.next(), next16.u32(c * 16 + i));
    for (uint32_t i = 0; i < 8; ++i) CHECK_EQ(bits_of(rng.uniform01()), bits_of(uni.f32(c * 8 + i)));
    uint16_t idx[20];
    for (uint16_t i = 0; i < 20; ++i) idx[i] = i;
    shuffle(idx, 20, rng);
    for (uint32_t i = 0; i < 20; ++i) CHECK_EQ(idx[i], shuf.u16(c * 20 + i));
    CHECK_EQ(rng.state(), after.u32(c));
  }
  const Array mix_in = g_vec.get("mix32_in"), mix_out = g_vec.get("mix32_out");
  for (uint32_t i = 0; i < mix_in.count; ++i) CHECK_EQ(mix32(mix_in.u32(i)), mix_out.u32(i));
  const Array zero = g_vec.get("zero_state_next4");
  Rng z(0);
  CHECK_EQ(z.state(), 1u);
  for (uint32_t i = 0; i < 4; ++i) CHECK_EQ(z.next(), zero.u32(i));
}

TINYFL_TEST(fnv1a32_standard_values) {
  // Published FNV-1a 32-bit test values.
  CHECK_EQ(fnv1a32(""), 0x811C9DC5u);
  CHECK_EQ(fnv1a32("a"), 0xE40C292Cu);
  CHECK_EQ(fnv1a32("foobar"), 0xBF9CF968u);
  static_assert(mix32(0) == 0, "mix32 fixes zero");
}

TINYFL_TEST(uniform01_stays_in_unit_interval_and_shuffle_is_a_permutation) {
  Rng rng(123);
  for (int i = 0; i < 100000; ++i) {
    const float u = rng.uniform01();
    CHECK(u >= 0.0f && u < 1.0f);
  }
  uint16_t idx[513];
  for (uint16_t i = 0; i < 513; ++i) idx[i] = i;
  const uint32_t before = rng.state();
  shuffle(idx, 1, rng);  // n <= 1 draws nothing
  shuffle(idx, 0, rng);
  CHECK_EQ(rng.state(), before);
  shuffle(idx, 513, rng);
  bool seen[513] = {};
  for (uint16_t v : idx) {
    CHECK(v < 513 && !seen[v]);
    seen[v] = true;
  }
}

// ---- quantizer against golden ----

TINYFL_TEST(quantize_matches_golden_bit_for_bit) {
  for (const char* file : kQuantFiles) {
    CHECK(g_vec.load(file));
    const Array x = g_vec.get("x"), codes = g_vec.get("codes"), scales = g_vec.get("scales");
    const Array ncodes = g_vec.get("nearest_codes"), nscales = g_vec.get("nearest_scales");
    const uint16_t rows = static_cast<uint16_t>(x.dims[0]), cols = static_cast<uint16_t>(x.dims[1]);
    const uint8_t bits = g_vec.get("bits").u8(), mode = g_vec.get("mode").u8();
    CHECK(x.count <= kMaxValues);
    for (uint32_t i = 0; i < x.count; ++i) g_x[i] = x.f32(i);

    Rng rng(g_vec.get("rng_state").u32());
    float s[8] = {};
    CHECK(quantize(g_x, rows, cols, bits, mode, rng, g_codes, s) == Status::Ok);
    CHECK_EQ(scales.count, quant_scale_count(rows, mode));
    for (uint32_t i = 0; i < scales.count; ++i) CHECK_EQ(bits_of(s[i]), bits_of(scales.f32(i)));
    uint32_t mismatches = 0;
    for (uint32_t i = 0; i < x.count; ++i) mismatches += g_codes[i] != codes.i8(i);
    CHECK_EQ(mismatches, 0);
    CHECK_EQ(rng.state(), g_vec.get("rng_state_after").u32());

    CHECK(quantize_nearest(g_x, rows, cols, bits, mode, g_codes, s) == Status::Ok);
    for (uint32_t i = 0; i < nscales.count; ++i) CHECK_EQ(bits_of(s[i]), bits_of(nscales.f32(i)));
    mismatches = 0;
    for (uint32_t i = 0; i < x.count; ++i) mismatches += g_codes[i] != ncodes.i8(i);
    CHECK_EQ(mismatches, 0);
    if (mismatches != 0) printf("  in %s\n", file);
  }
}

// ---- properties ----

namespace {

// Fills x with values spanning several magnitudes, one row all zero when rows > 2.
void fill(Rng& rng, float* x, uint16_t rows, uint16_t cols) {
  for (uint16_t r = 0; r < rows; ++r) {
    const float mag = powf(10.0f, static_cast<float>(r % 5) - 2.0f);
    for (uint16_t c = 0; c < cols; ++c)
      x[r * cols + c] = r == 2 ? 0.0f : (2.0f * rng.uniform01() - 1.0f) * mag;
  }
}

// |x - q s| <= bound * s for every value, with a float32 rounding allowance.
bool error_bounded(const float* x, const int8_t* q, const float* s, uint16_t rows, uint16_t cols, uint8_t mode,
                   float bound) {
  for (uint16_t r = 0; r < rows; ++r) {
    const float scale = s[mode == kScalePerRow ? r : 0];
    for (uint16_t c = 0; c < cols; ++c) {
      const float v = x[r * cols + c];
      const float err = fabsf(v - static_cast<float>(q[r * cols + c]) * scale);
      if (!(err <= bound * scale * (1.0f + 4e-6f) + 1e-37f)) {
        printf("  x=%.9g q=%d scale=%.9g err=%.9g\n", static_cast<double>(v), q[r * cols + c],
               static_cast<double>(scale), static_cast<double>(err));
        return false;
      }
    }
  }
  return true;
}

}  // namespace

TINYFL_TEST(dequantize_error_is_within_one_step_stochastic_half_step_nearest) {
  Rng data(7);
  Rng rng(99);
  const uint8_t all_bits[] = {8, 4, 2};
  for (int trial = 0; trial < 40; ++trial) {
    const uint16_t rows = static_cast<uint16_t>(1 + trial % 6), cols = static_cast<uint16_t>(1 + (trial * 7) % 65);
    fill(data, g_x, rows, cols);
    for (uint8_t bits : all_bits) {
      for (uint8_t mode = 0; mode <= 1; ++mode) {
        float s[8];
        CHECK(quantize(g_x, rows, cols, bits, mode, rng, g_codes, s) == Status::Ok);
        CHECK(error_bounded(g_x, g_codes, s, rows, cols, mode, 1.0f));
        CHECK(dequantize(g_codes, s, rows, cols, mode, g_deq) == Status::Ok);
        for (uint32_t i = 0; i < static_cast<uint32_t>(rows) * cols; ++i) {
          const float scale = s[mode == kScalePerRow ? i / cols : 0];
          CHECK_EQ(bits_of(g_deq[i]), bits_of(static_cast<float>(g_codes[i]) * scale));
          CHECK(g_codes[i] >= -quant_qmax(bits) && g_codes[i] <= quant_qmax(bits));
        }
        CHECK(quantize_nearest(g_x, rows, cols, bits, mode, g_codes, s) == Status::Ok);
        CHECK(error_bounded(g_x, g_codes, s, rows, cols, mode, 0.5f));
      }
    }
  }
}

TINYFL_TEST(stochastic_rounding_is_unbiased) {
  // 2-bit codes are the coarsest: each value becomes -s, 0 or s, yet the mean over many draws
  // converges to x. The standard deviation of one draw is at most s/2, so the mean of N draws is
  // within 5 * s / (2 sqrt(N)) of x with overwhelming probability.
  constexpr uint16_t kCols = 64;
  constexpr int kDraws = 4000;
  Rng data(31);
  float x[kCols];
  double sum[kCols] = {};
  for (uint16_t c = 0; c < kCols; ++c) x[c] = 2.0f * data.uniform01() - 1.0f;
  Rng rng(2024);
  float s = 0.0f;
  for (int t = 0; t < kDraws; ++t) {
    CHECK(quantize(x, 1, kCols, 2, kScalePerTensor, rng, g_codes, &s) == Status::Ok);
    for (uint16_t c = 0; c < kCols; ++c) sum[c] += static_cast<double>(g_codes[c]) * s;
  }
  const double tol = 5.0 * s / (2.0 * sqrt(static_cast<double>(kDraws)));
  for (uint16_t c = 0; c < kCols; ++c) CHECK(fabs(sum[c] / kDraws - x[c]) <= tol);
  // Round-to-nearest is biased for the same values (that is why the uplink does not use it).
  CHECK(quantize_nearest(x, 1, kCols, 2, kScalePerTensor, g_codes, &s) == Status::Ok);
  double worst = 0.0;
  for (uint16_t c = 0; c < kCols; ++c) worst = fmax(worst, fabs(g_codes[c] * s - x[c]));
  CHECK(worst > 10.0 * tol);
}

TINYFL_TEST(zero_rows_give_zero_codes_and_still_draw) {
  float x[12] = {0, 0, 0, 0, 1.0f, -2.0f, 0.5f, 0, 0, 0, 0, 0};
  float s[3];
  Rng rng(5);
  Rng ref(5);
  CHECK(quantize(x, 3, 4, 8, kScalePerRow, rng, g_codes, s) == Status::Ok);
  for (int i = 0; i < 12; ++i) ref.next();
  CHECK_EQ(rng.state(), ref.state());
  CHECK(s[0] == 0.0f && s[2] == 0.0f && s[1] == round_to_half(2.0f / 127.0f));
  const int zeros[] = {0, 1, 2, 3, 8, 9, 10, 11};
  for (int i : zeros) CHECK_EQ(g_codes[i], 0);
  CHECK_EQ(g_codes[5], -127);  // the row's extreme maps to -qmax exactly
}

TINYFL_TEST(extreme_magnitudes_stay_in_range) {
  const float big = FLT_MAX;
  const float tiny = 1e-44f;  // subnormal: scale underflows to 0 or a subnormal
  float x[6] = {big, -big, big / 3.0f, tiny, -tiny, 3.0f * tiny};
  float s[2];
  Rng rng(11);
  const uint8_t all_bits[] = {8, 4, 2};
  for (uint8_t bits : all_bits) {
    CHECK(quantize(x, 2, 3, bits, kScalePerRow, rng, g_codes, s) == Status::Ok);
    for (int i = 0; i < 6; ++i) CHECK(g_codes[i] >= -quant_qmax(bits) && g_codes[i] <= quant_qmax(bits));
    CHECK_EQ(g_codes[0], quant_qmax(bits));
    CHECK_EQ(g_codes[1], -quant_qmax(bits));
  }
}

namespace {

// The state whose next() is `out`: xorshift32 is invertible step by step.
uint32_t state_before(uint32_t out) {
  uint32_t x = out;
  for (int i = 0; i < 7; ++i) x = out ^ (x << 5);  // undo x ^= x << 5
  const uint32_t a = x;
  x = a ^ (a >> 17);  // undo x ^= x >> 17 (two rounds cover 32 bits)
  x = a ^ (x >> 17);
  const uint32_t b = x;
  for (int i = 0; i < 3; ++i) x = b ^ (x << 13);  // undo x ^= x << 13
  return x;
}

}  // namespace

TINYFL_TEST(clamp_holds_when_rounding_overshoots) {
  // scale = m / 127 rounds down for some m, so m / scale lands just above 127; with u close to 1
  // the floor would be 128, which does not fit the code range. The clamp must catch it.
  Rng probe(state_before(0xFFFFFFFFu));
  CHECK_EQ(probe.next(), 0xFFFFFFFFu);
  float m = 1.0f;
  int tries = 0;
  while (!(m / (m / 127.0f) > 127.0f) && tries < 100000) {
    m = nextafterf(m, 2.0f);
    ++tries;
  }
  CHECK(m / (m / 127.0f) > 127.0f);
  float s = 0.0f;
  Rng rng(state_before(0xFFFFFFFFu));  // first u = 1 - 2^-24
  CHECK(quantize(&m, 1, 1, 8, kScalePerTensor, rng, g_codes, &s) == Status::Ok);
  CHECK_EQ(g_codes[0], 127);
  const float neg = -m;
  Rng rng2(state_before(0x000000FFu));  // first u = 0
  CHECK(quantize(&neg, 1, 1, 8, kScalePerTensor, rng2, g_codes, &s) == Status::Ok);
  CHECK_EQ(g_codes[0], -127);
}

TINYFL_TEST(bad_arguments_are_rejected) {
  float x[4] = {1, 2, 3, 4};
  float s[2];
  Rng rng(1);
  CHECK(quantize(x, 2, 2, 3, 0, rng, g_codes, s) == Status::BadValue);
  CHECK(quantize(x, 2, 2, 32, 0, rng, g_codes, s) == Status::BadValue);
  CHECK(quantize(x, 2, 2, 8, 2, rng, g_codes, s) == Status::BadValue);
  CHECK(quantize_nearest(x, 2, 2, 0, 0, g_codes, s) == Status::BadValue);
  CHECK(dequantize(g_codes, s, 2, 2, 2, g_deq) == Status::BadValue);
  CHECK_EQ(rng.state(), 1u);
  x[3] = NAN;
  CHECK(quantize(x, 2, 2, 8, 1, rng, g_codes, s) == Status::NonFinite);
  x[3] = -INFINITY;
  CHECK(quantize(x, 2, 2, 8, 0, rng, g_codes, s) == Status::NonFinite);
  CHECK(quantize_nearest(x, 2, 2, 4, 0, g_codes, s) == Status::NonFinite);
  CHECK_EQ(rng.state(), 1u);  // nothing drawn on failure
  static_assert(quant_qmax(8) == 127 && quant_qmax(4) == 7 && quant_qmax(2) == 1 && quant_qmax(3) == 0, "qmax");
}

int main() { return tinyfl_test::run_all(); }
