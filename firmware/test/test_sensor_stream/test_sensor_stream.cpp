// The sensor path (tinyfl/sensor_stream.h) on the compiled HAR backbone: windows cut from a stream
// of readings embed exactly as the same windows run through the backbone directly; strides,
// labels, overruns and the class-balancing reservoir behave as documented.
#include <string.h>

#include "../check.h"
#include "tinyfl/cache.h"
#include "tinyfl/models.h"
#include "tinyfl/rng.h"
#include "tinyfl/sensor_stream.h"

using namespace tinyfl;

namespace {

constexpr uint16_t kT = 128, kC = 6;
BackboneWork g_work;   // the stream's
BackboneWork g_check;  // the direct path's
CacheStorage<> g_storage;
EmbeddingCache g_cache(g_storage);
CacheStorage<32, kMaxDim> g_small_storage;
EmbeddingCache g_small(g_small_storage);
int8_t g_readings[10240 * kC];  // the longest stream below

const CompiledModel* har() {
  for (size_t i = 0; i < compiled_model_count(); ++i)
    if (strcmp(compiled_model(i).task, "har") == 0) return &compiled_model(i);
  return nullptr;
}

void fill_random(uint32_t n, uint32_t seed) {
  Rng rng(seed);
  for (uint32_t i = 0; i < n * kC; ++i) g_readings[i] = static_cast<int8_t>(rng.next() >> 24);
}

// The dequantized embedding of the window starting at reading `start`, run directly.
void direct(uint32_t start, float* out) {
  int8_t e[kMaxDim];
  CHECK(backbone_run(g_check.model, g_readings + start * kC, kT * kC, e, g_check.model.embedding_len, g_check.arena,
                     sizeof g_check.arena) == Status::Ok);
  for (uint16_t j = 0; j < g_check.model.embedding_len; ++j)
    out[j] = (static_cast<float>(e[j]) - static_cast<float>(g_check.model.out_zp)) * g_check.model.out_scale;
}

bool same_embedding(const EmbeddingCache& cache, uint32_t i, const float* want) {
  float got[kMaxDim];
  cache.embedding(i, got);
  return memcmp(got, want, cache.dim() * sizeof(float)) == 0;
}

void feed(SensorStream& s, uint32_t from, uint32_t to, bool step_each) {
  for (uint32_t r = from; r < to; ++r) {
    CHECK(s.add_codes(g_readings + r * kC) == Status::Ok);
    if (step_each) CHECK(s.step() == Status::Ok);
  }
}

}  // namespace

TINYFL_TEST(windows_cut_from_readings_embed_as_the_backbone_run_directly) {
  const CompiledModel* m = har();
  CHECK(m != nullptr);
  CHECK(prepare_compiled_model(*m, g_check) == Status::Ok);
  SensorStream s(g_work, g_cache, 7);
  CHECK(s.begin(*m, 64, 6) == Status::Ok);
  CHECK_EQ(s.window(), kT);
  CHECK_EQ(s.channels(), kC);
  fill_random(kT + 3 * 64, 1);
  CHECK(s.set_label(2) == Status::Ok);
  feed(s, 0, kT + 3 * 64, true);
  CHECK_EQ(s.counters().windows, 4u);  // readings 0.., 64.., 128.., 192..
  CHECK_EQ(s.counters().embedded, 4u);
  CHECK_EQ(g_cache.size(), 4u);
  float want[kMaxDim];
  for (uint32_t w = 0; w < 4; ++w) {
    direct(w * 64, want);
    CHECK(same_embedding(g_cache, w, want));
    CHECK_EQ(g_cache.label(w), 2);
  }
}

TINYFL_TEST(unlabelled_and_mixed_windows_are_counted_not_trained) {
  SensorStream s(g_work, g_cache, 7);
  CHECK(s.begin(*har(), kT, 6) == Status::Ok);
  fill_random(4 * kT, 2);
  feed(s, 0, kT, true);  // no label yet
  CHECK(s.set_label(1) == Status::Ok);
  feed(s, kT, kT + 10, true);
  CHECK(s.set_label(3) == Status::Ok);  // changes inside the second window
  feed(s, kT + 10, 2 * kT, true);
  feed(s, 2 * kT, 3 * kT, true);  // the third window is all label 3
  CHECK_EQ(s.counters().windows, 3u);
  CHECK_EQ(s.counters().unlabelled, 1u);
  CHECK_EQ(s.counters().mixed, 1u);
  CHECK_EQ(s.counters().embedded, 1u);
  CHECK_EQ(g_cache.size(), 1u);
  CHECK_EQ(g_cache.label(0), 3);
  CHECK(s.set_label(6) == Status::BadValue);
  CHECK(s.set_label(-2) == Status::BadValue);
  CHECK(s.set_label(kNoLabel) == Status::Ok);
}

TINYFL_TEST(a_window_that_completes_before_step_is_an_overrun) {
  SensorStream s(g_work, g_cache, 7);
  CHECK(s.begin(*har(), 32, 6) == Status::Ok);
  CHECK(s.set_label(0) == Status::Ok);
  fill_random(kT + 32, 3);
  feed(s, 0, kT + 32, false);  // two windows, no step between them
  CHECK(s.pending());
  CHECK_EQ(s.counters().overruns, 1u);
  CHECK(s.step() == Status::Ok);
  CHECK(!s.pending());
  CHECK_EQ(g_cache.size(), 1u);
  float want[kMaxDim];
  direct(0, want);  // the first window was kept, the second lost
  CHECK(same_embedding(g_cache, 0, want));
}

TINYFL_TEST(bad_readings_and_settings_are_refused) {
  SensorStream s(g_work, g_cache, 7);
  const int8_t codes[kC] = {};
  CHECK(s.add_codes(codes) == Status::NotConnected);
  CHECK(s.begin(*har(), 0, 6) == Status::Ok);  // stride 0: windows side by side
  CHECK(s.set_label(0) == Status::Ok);
  fill_random(2 * kT, 6);
  feed(s, 0, 2 * kT - 1, true);
  CHECK_EQ(s.counters().windows, 1u);  // the second needs a full window of new readings
  feed(s, 2 * kT - 1, 2 * kT, true);
  CHECK_EQ(s.counters().windows, 2u);
  CHECK(s.begin(*har(), kT + 1, 6) == Status::WrongShape);
  CHECK(s.begin(*har(), kT, 1) == Status::BadValue);
  CHECK(s.begin(*har(), kT, 6) == Status::Ok);
  float values[kC] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, NAN};
  CHECK(s.add_reading(values) == Status::NonFinite);
  values[5] = 0.6f;
  CHECK(s.add_reading(values) == Status::Ok);
  const int16_t counts[kC] = {1000, -1000, 0, 32767, -32768, 5};
  CHECK(s.add_counts(counts, 1.0f / 4096.0f) == Status::Ok);
  CHECK_EQ(s.counters().readings, 2u);
}

TINYFL_TEST(readings_are_quantized_half_to_even_with_the_models_raw_scale) {
  SensorStream s(g_work, g_cache, 7);
  CHECK(s.begin(*har(), kT, 6) == Status::Ok);
  CHECK(s.set_label(0) == Status::Ok);
  const float q = s.scale();
  fill_random(kT, 4);
  for (uint32_t r = 0; r < kT; ++r) {
    float v[kC];
    for (uint16_t c = 0; c < kC; ++c) v[c] = static_cast<float>(g_readings[r * kC + c]) * q;
    if (r == 0) v[0] = 2.5f * q;  // a tie: 2 (even), as numpy.round
    if (r == 0) g_readings[0] = 2;
    if (r == 1) v[1] = 1000.0f * q;  // past int8: clamped
    if (r == 1) g_readings[kC + 1] = 127;
    CHECK(s.add_reading(v) == Status::Ok);
    CHECK(s.step() == Status::Ok);
  }
  float want[kMaxDim];
  direct(0, want);
  CHECK(same_embedding(g_cache, 0, want));
}

TINYFL_TEST(the_reservoir_keeps_a_rare_class_and_a_uniform_sample_of_a_common_one) {
  // 32 slots, windows every 32 readings; blocks of 256 readings under one label: nine of class 0
  // for each one of class 1. Ring-buffer caching would keep only the newest class-0 windows.
  constexpr uint32_t kBlock = 256, kBlocks = 40, kStride = 32;
  const uint32_t n = kBlock * kBlocks;
  fill_random(n, 5);
  SensorStream s(g_work, g_small, 11);
  CHECK(s.begin(*har(), kStride, 2) == Status::Ok);
  for (uint32_t b = 0; b < kBlocks; ++b) {
    CHECK(s.set_label(b % 10 == 9 ? 1 : 0) == Status::Ok);
    feed(s, b * kBlock, (b + 1) * kBlock, true);
  }
  const StreamCounters& c = s.counters();
  CHECK(c.seen[1] >= 16u && c.seen[0] > 5 * c.seen[1]);
  CHECK_EQ(c.kept + c.dropped, c.embedded);
  uint32_t held[2] = {};
  for (uint32_t i = 0; i < g_small.size(); ++i) ++held[g_small.label(i)];
  CHECK_EQ(g_small.size(), 32u);
  CHECK_EQ(held[1], 16u);  // the rare class reached half the cache and holds it
  // Where the class-0 samples came from: each is one window's embedding (windows start every
  // kStride readings); count those from the first half of the stream.
  uint32_t early = 0, found = 0;
  float want[kMaxDim];
  for (uint32_t start = 0; start + kT <= n; start += kStride) {
    direct(start, want);
    for (uint32_t i = 0; i < g_small.size(); ++i)
      if (g_small.label(i) == 0 && same_embedding(g_small, i, want)) {
        ++found;
        if (start < n / 2) ++early;
      }
  }
  CHECK_EQ(found, held[0]);
  CHECK(early >= 4 && early <= 12);  // uniform over the stream: about half of 16
}

int main() { return tinyfl_test::run_all(); }
